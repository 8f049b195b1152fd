import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { synthPng } from '../../src/demo/synth-image.js';
import { BEGIN_RUN, RELEASE_CALL, SETTLE_CALL, START_CALL } from '../../src/shared/redis-scripts/call-ledger.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';

/**
 * Per-job overhead (issue 12): a job's first run starts its call in the script that
 * begins the run — one Redis round trip — while the HEAD at its predicted key is out,
 * and releases that call, uncounted, when the request is never sent.
 */

const SCRIPTS = [BEGIN_RUN, START_CALL, SETTLE_CALL, RELEASE_CALL];
function tinyPng(): Buffer {
  const p = synthPng({ width: 64, height: 64, entropy: 1, seed: 1 });
  return Buffer.concat([p.prefix, p.tail('input')]);
}
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** The ledger scripts Redis runs on `jobId`'s record, by name, in order (through MONITOR). */
async function watchLedgerScripts(t: { after(fn: () => unknown): void }, h: Harness, jobId: string): Promise<string[]> {
  const bySha = new Map(SCRIPTS.map((s) => [sha1(s.lua), s.name]));
  // MONITOR shows an EVAL's source escaped ("\n"): its opening names the script.
  const opening = (lua: string) => lua.slice(0, 60).replace(/\n/g, '\\n');
  const byLua = (source: string) => SCRIPTS.find((s) => source.startsWith(opening(s.lua)))?.name;
  const idRecord = `${h.prefix}:id:${jobId}`;
  const seen: string[] = [];
  // Never connected itself: only its MONITOR duplicate talks to Redis. A client of our own
  // connecting at the same moment sends its ready-check INFO, whose MONITOR line can reach
  // the duplicate in the same read as MONITOR's OK, before ioredis switched it to
  // monitoring mode ("Command queue state error").
  const client = new Redis(h.redisUrl, { lazyConnect: true });
  const monitor = await client.monitor();
  t.after(() => {
    monitor.disconnect();
    client.disconnect();
  });
  monitor.on('monitor', (_time: string, args: string[]) => {
    const [cmd, script] = args;
    if (!args.includes(idRecord) || script === undefined) return;
    const name = cmd?.toLowerCase() === 'evalsha' ? bySha.get(script) : cmd?.toLowerCase() === 'eval' ? byLua(script) : undefined;
    if (name) seen.push(name);
  });
  return seen;
}

test('a first run starts its call in the begin-run round trip: no start-call script between pick-up and the upstream call', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const seen = await watchLedgerScripts(t, h, 'first-1');
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'first-1', prompt: 'one round trip' });
  const done = await producer.waitFor('first-1', { timeoutMs: 30_000 });
  assert.equal(done.state, 'completed');
  assert.equal(done.attempts, 1);
  assert.equal(done.possibly_billed, 0);
  assert.equal(h.fake.calls.length, 1);
  await waitFor(() => seen.includes('settle-call'), { what: 'the settlement seen by MONITOR' });
  assert.deepEqual(seen, ['begin-run', 'settle-call'], 'the call was started by begin-run, settled once');
  assert.deepEqual(await h.redis.hmget(`${h.prefix}:id:first-1`, 'started', 'calls', 'settled'), ['1', '1', '1']);
});

test('a first run that finds its images stored releases the call it started with: no upstream call, nothing counted', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'stored-1', prompt: 'stored before' });
  assert.equal((await producer.waitFor('stored-1', { timeoutMs: 30_000 })).state, 'completed');
  await waitFor(async () => (await producer.queue.getJobState('stored-1')) === 'completed', { what: 'BullMQ completed the job' });
  // The images stay in the bucket; the job and its record are gone (as after their TTLs):
  // the job enqueued again is a first run again.
  await producer.queue.remove('stored-1');
  await h.redis.del(`${h.prefix}:id:stored-1`, `${h.prefix}:id:stored-1:calls`);
  const seen = await watchLedgerScripts(t, h, 'stored-1');
  await producer.enqueue({ id: 'stored-1', prompt: 'stored before' });
  const done = await producer.waitFor('stored-1', { timeoutMs: 30_000 });
  assert.equal(done.state, 'completed');
  assert.equal(done.attempts, 0);
  assert.equal(done.possibly_billed, 0);
  assert.equal(h.fake.calls.length, 1, 'no second upstream call');
  await waitFor(() => seen.includes('release-call'), { what: 'the release seen by MONITOR' });
  assert.deepEqual(seen, ['begin-run', 'release-call']);
  assert.deepEqual(await h.redis.hmget(`${h.prefix}:id:stored-1`, 'started', 'calls', 'attempts', 'pb'), ['0', '0', null, null]);
  assert.equal(await h.redis.exists(`${h.prefix}:id:stored-1:calls`), 0);
});

test('a first run whose input cannot be read releases the call it started with: failed, no attempt, nothing possibly billed', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  // There at enqueue (the producer checks it), gone when the worker reads it.
  await h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: 'uploads/gone.png', Body: tinyPng() }));
  await producer.enqueue({ id: 'no-input', prompt: 'missing input', input_image: `s3://${h.bucket}/uploads/gone.png` });
  await h.s3.send(new DeleteObjectCommand({ Bucket: h.bucket, Key: 'uploads/gone.png' }));
  await h.worker();
  const done = await producer.waitFor('no-input', { timeoutMs: 30_000 });
  assert.equal(done.state, 'failed');
  assert.equal(done.attempts, 0);
  assert.equal(done.possibly_billed, 0);
  assert.equal(h.fake.calls.length, 0);
  assert.deepEqual(await h.redis.hmget(`${h.prefix}:id:no-input`, 'started', 'calls'), ['0', '0']);
});
