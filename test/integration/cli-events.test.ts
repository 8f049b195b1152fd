import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { EVENT, emitEvent } from '../../src/shared/events.js';
import { redisKeys } from '../../src/shared/keys.js';
import { REPO, startHarness, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait-for.js';

const CLI = ['--import', 'tsx', 'src/cli.ts'];

function emitter(h: Harness) {
  const key = redisKeys(h.prefix, h.queueName).events;
  return (type: Parameters<typeof emitEvent>[3], data: Record<string, unknown>) => emitEvent(h.redis, key, 100_000, type, data as never);
}

const lines = (out: string) => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id: string; type: string; data: Record<string, unknown> });

test('`fluxq events` prints the stream as JSON lines { id, type, data }; --batch, --job, --types combine; --after prints what follows an id; bad flags exit 2', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t);
  const emit = emitter(h);
  const done = { images: [], attempts: 1, possibly_billed: 0, output_mp: 1, input_mp: 0 };
  const ids = [
    await emit(EVENT.jobCompleted, { jobId: 'a1', batchId: 'A', ...done }),
    await emit(EVENT.jobFailed, { jobId: 'a2', batchId: 'A', error: 'permanent: refused', attempts: 1, possibly_billed: 0 }),
    await emit(EVENT.queuePaused, { reason: 'operator' }),
    await emit(EVENT.jobCompleted, { jobId: 'b1', batchId: 'B', ...done }),
    await emit(EVENT.jobFailed, { jobId: 'a2', batchId: 'A', error: 'permanent: again', attempts: 2, possibly_billed: 0 }),
  ];
  const all = await h.cli(['events']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stderr, '');
  assert.deepEqual(lines(all.stdout), [
    { id: ids[0], type: 'job.completed', data: { jobId: 'a1', batchId: 'A', ...done } },
    { id: ids[1], type: 'job.failed', data: { jobId: 'a2', batchId: 'A', error: 'permanent: refused', attempts: 1, possibly_billed: 0 } },
    { id: ids[2], type: 'queue.paused', data: { reason: 'operator' } },
    { id: ids[3], type: 'job.completed', data: { jobId: 'b1', batchId: 'B', ...done } },
    { id: ids[4], type: 'job.failed', data: { jobId: 'a2', batchId: 'A', error: 'permanent: again', attempts: 2, possibly_billed: 0 } },
  ]);
  const idsOf = async (args: string[]) => {
    const r = await h.cli(['events', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return lines(r.stdout).map((l) => l.id);
  };
  assert.deepEqual(await idsOf(['--batch', 'A']), [ids[0], ids[1], ids[4]]);
  assert.deepEqual(await idsOf(['--batch', 'A', '--job', 'a2', '--types', 'job.failed']), [ids[1], ids[4]]);
  assert.deepEqual(await idsOf(['--types', 'job.completed,queue.paused']), [ids[0], ids[2], ids[3]]);
  assert.deepEqual(await idsOf(['--after', ids[1] as string]), [ids[2], ids[3], ids[4]]);
  assert.deepEqual(await idsOf(['--after', ids[1] as string, '--batch', 'A']), [ids[4]]);
  assert.deepEqual(await idsOf(['--after', '0', '--job', 'b1']), [ids[3]]);
  assert.deepEqual(await idsOf(['--after', ids[4] as string]), []);

  const badAfter = await h.cli(['events', '--after', 'yesterday']);
  assert.equal(badAfter.code, 2);
  assert.match(badAfter.stderr, /--after "yesterday" is not a stream entry id/);
  const badTypes = await h.cli(['events', '--types', 'job.completed,Nope']);
  assert.equal(badTypes.code, 2);
  assert.match(badTypes.stderr, /--types: "Nope" is not an event type/);
});

test('`fluxq events --follow` prints new entries as they come (after --after, or from now on) and exits 0 on SIGTERM', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t);
  const emit = emitter(h);
  const before = await emit(EVENT.queuePaused, { reason: 'before' });
  const follow = (args: string[]) => {
    const proc = spawn(process.execPath, [...CLI, 'events', '--follow', ...args], { cwd: REPO, env: { ...process.env, ...h.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => proc.kill('SIGKILL'));
    const out = { text: '', err: '' };
    proc.stdout.on('data', (c: Buffer) => (out.text += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out.err += c.toString()));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    return { proc, out, exited };
  };
  const fromNow = follow(['--types', 'queue.resumed']);
  const fromStart = follow(['--after', '0']);
  await waitFor(() => fromStart.out.text.includes(before), { what: 'the replay of the entry from before', timeoutMs: 30_000 });
  // Give the from-now follower time to start; then it must see only what comes next.
  await new Promise((r) => setTimeout(r, 1500));
  const later = [await emit(EVENT.queueResumed, { by: 'test' }), await emit(EVENT.queuePaused, { reason: 'later' }), await emit(EVENT.queueResumed, { by: 'test 2' })];
  await waitFor(() => fromStart.out.text.includes(later[2] as string) && fromNow.out.text.includes(later[2] as string), { what: 'both followers to print the new entries', timeoutMs: 30_000 });
  fromNow.proc.kill('SIGTERM');
  fromStart.proc.kill('SIGTERM');
  assert.equal(await fromNow.exited, 0, fromNow.out.err);
  assert.equal(await fromStart.exited, 0, fromStart.out.err);
  assert.deepEqual(lines(fromStart.out.text).map((l) => l.id), [before, ...later]);
  assert.deepEqual(lines(fromNow.out.text), [
    { id: later[0], type: 'queue.resumed', data: { by: 'test' } },
    { id: later[2], type: 'queue.resumed', data: { by: 'test 2' } },
  ]);
});

test('`fluxq events | head -n 1` ends quietly with 0 when the pipe closes (EPIPE), also with --follow', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t);
  const key = redisKeys(h.prefix, h.queueName).events;
  // More than a pipe's buffer holds, so the writer meets the closed pipe.
  for (let i = 0; i < 4000; i += 500) {
    const p = h.redis.pipeline();
    for (let j = i; j < i + 500; j++) p.xadd(key, '*', 'type', 'job.failed', 'data', JSON.stringify({ jobId: `pipe-${j}`, error: 'permanent: x'.padEnd(200, '.'), attempts: 1, possibly_billed: 0 }));
    await p.exec();
  }
  for (const extra of ['', '--follow --after 0']) {
    const sh = spawn('bash', ['-c', `${process.execPath} ${CLI.join(' ')} events ${extra} | head -n 1; echo "exit=\${PIPESTATUS[0]}" >&2`], { cwd: REPO, env: { ...process.env, ...h.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => sh.kill('SIGKILL'));
    let out = '';
    let err = '';
    sh.stdout.on('data', (c: Buffer) => (out += c.toString()));
    sh.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise((r) => sh.on('exit', r));
    assert.equal(err.trim(), 'exit=0', `fluxq events ${extra}: ${err}`);
    const [first] = lines(out);
    assert.equal(first?.data.jobId, 'pipe-0');
  }
});
