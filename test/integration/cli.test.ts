import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startHarness } from '../helpers/harness.js';

async function jsonl(lines: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-cli-'));
  const file = join(dir, 'in.jsonl');
  await writeFile(file, lines.join('\n'));
  return file;
}

test('a bad JSONL line: exit 2, each bad line named with its field, nothing enqueued', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const file = await jsonl([
    JSON.stringify({ prompt: 'fine' }),
    JSON.stringify({ prompt: 'too narrow', width: 100 }),
    '{not json',
    '',
    JSON.stringify({ prompt: 'ok', seed: 1.5, colour: 'red' }),
    JSON.stringify({ prompt: 'ok', id: 'a:b' }),
  ]);
  const run = await h.cli(['enqueue', file]);
  assert.equal(run.code, 2);
  assert.equal(run.stdout, '');
  const err = run.stderr.split('\n');
  assert.equal(err[0], `fluxq: 5 invalid line(s) in ${file}; nothing was enqueued`);
  assert.ok(err.includes('line 2: width: must be ≥ 64 and a multiple of 32, got 100'), run.stderr);
  assert.ok(err.some((l) => /^line 3: not valid JSON/.test(l)), run.stderr);
  assert.ok(err.includes('line 5: seed: must be an integer'), run.stderr);
  assert.ok(err.includes('line 5: colour: is not a known field'), run.stderr);
  assert.ok(err.some((l) => l.startsWith('line 6: id: must be 1–128 characters')), run.stderr);
  assert.ok(!run.stderr.includes('    at '), 'no stack trace');
  assert.deepEqual(await h.redis.keys(`${h.prefix}:*`), [], 'nothing enqueued: no key under the prefix');
});

test('enqueue prints the batch and count; ids are {batch}-{line}; re-running the same file enqueues nothing twice', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const file = await jsonl([JSON.stringify({ prompt: 'one' }), '', JSON.stringify({ prompt: 'three', id: 'own-id' }), JSON.stringify({ prompt: 'four', batch: 'other' })]);
  const first = await h.cli(['enqueue', file, '--batch', 'nightly']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout.trim(), 'batch nightly: 3 jobs (3 new, 0 already enqueued or done, 0 retried)');
  const ids = (await h.producer().queue.getJobs(['waiting'])).map((j) => j.id).sort();
  assert.deepEqual(ids, ['nightly-1', 'other-4', 'own-id']);
  const again = await h.cli(['enqueue', file, '--batch', 'nightly']);
  assert.equal(again.stdout.trim(), 'batch nightly: 3 jobs (0 new, 3 already enqueued or done, 0 retried)');
  assert.equal((await h.producer().queue.getJobCounts('waiting')).waiting, 3);
  // --json without --wait: the summary goes to stderr, stdout only lists jobs already final.
  const quiet = await h.cli(['enqueue', file, '--batch', 'nightly', '--json']);
  assert.equal(quiet.stdout, '');
  assert.match(quiet.stderr, /^batch nightly: 3 jobs/);
  const generated = await h.cli(['enqueue', '-'], { input: JSON.stringify({ prompt: 'from stdin' }) });
  assert.match(generated.stdout.trim(), /^batch b-\d{8}-\d{6}-[0-9a-f]{6}: 1 jobs \(1 new/);
});

test('status prints a job state; unknown ids exit 1; --json prints one object; pause and resume say what they did', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  await producer.enqueue({ id: 'st-1', prompt: 'status please', metadata: { k: 'v' } });
  assert.equal((await h.cli(['status', 'st-1'])).stdout, 'waiting\n');
  const paused = await h.cli(['pause']);
  assert.equal(paused.code, 0);
  assert.match(paused.stdout, /^paused: queue generate/);
  assert.equal((await h.cli(['status', 'st-1'])).stdout, 'paused\n');
  const resumed = await h.cli(['resume']);
  assert.match(resumed.stdout, /^resumed: queue generate/);
  await h.worker();
  await producer.waitFor('st-1');
  const json = await h.cli(['status', 'st-1', '--json']);
  const obj = JSON.parse(json.stdout) as { id: string; state: string; attempts: number; possibly_billed: number; result: { images: { key: string }[]; metadata: unknown; model: string } };
  assert.equal(obj.state, 'completed');
  assert.equal(obj.attempts, 1);
  assert.equal(obj.possibly_billed, 0);
  assert.equal(obj.result.images[0]?.key, 'images/st-1/0.png');
  assert.deepEqual(obj.result.metadata, { k: 'v' });
  assert.equal(obj.result.model, 'flux-2-pro');
  const unknown = await h.cli(['status', 'no-such-id']);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, 'fluxq: no job or batch with id "no-such-id"\n');
  const events = (await h.events()).map((e) => e.type);
  assert.deepEqual(events.filter((e) => e.startsWith('queue.')), ['queue.paused', 'queue.resumed']);
});

test('a worker with bad configuration exits 2 and names every bad variable, without a stack trace', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const run = await h.cli(['worker'], { env: { WORKER_CONCURRENCY: 'abc', S3_BUCKET: '', FLUX_API_KEY: '', JOB_ATTEMPTS: '0', S3_FORCE_PATH_STYLE: 'yes' } });
  assert.equal(run.code, 2);
  const lines = run.stderr.trim().split('\n');
  assert.deepEqual(lines.sort(), [
    'fluxq: FLUX_API_KEY (or MODELVERSE_API_KEY) is required by the worker',
    'fluxq: JOB_ATTEMPTS must be an integer from 1 to 1000, got "0"',
    'fluxq: S3_BUCKET is required by the worker',
    'fluxq: S3_FORCE_PATH_STYLE must be 1, true, 0 or false, got "yes"',
    'fluxq: WORKER_CONCURRENCY must be an integer from 1 to 1024, got "abc"',
  ]);
});

test('usage errors exit 2; Redis unreachable exits 1 fast with a clear line', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const usage = await h.cli(['enqueue']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /missing required argument 'FILE'/);
  const file = await jsonl([JSON.stringify({ prompt: 'x' })]);
  const started = Date.now();
  const down = await h.cli(['enqueue', file], { env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^fluxq: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable \(ECONNREFUSED\); nothing was enqueued/);
  assert.ok(Date.now() - started < 15_000);
});
