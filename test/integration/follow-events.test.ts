import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { enqueueCommand } from '../../src/producer/commands/enqueue.js';
import { followJobs } from '../../src/producer/follow.js';
import { EVENT } from '../../src/shared/events.js';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';

class Lines extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

/** Redis calls by command since the server started (`INFO commandstats`). */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]));
  return calls;
}

/** What a worker's finalize writes: the record and its event, as the worker does (no upstream, no S3). */
function finalizer(h: Harness, redis: Redis, eventsMaxLen: number) {
  const keys = redisKeys(h.prefix, h.queueName);
  const records = new JobRecords(redis, keys, { ttlS: 3600, eventsMaxLen });
  const image = (jobId: string) => ({ bucket: h.bucket, key: `images/${jobId}/0.png`, contentType: 'image/png', bytes: 10, sha256: 'ab'.repeat(32) });
  return {
    complete: (jobId: string, batchId: string) =>
      records.finalize(jobId, {
        state: 'completed',
        batchId,
        result: JSON.stringify({ images: [image(jobId)], input_mp: 0, output_mp: 1, attempts: 1, possibly_billed: 0 }),
        event: { type: EVENT.jobCompleted, data: { jobId, batchId, images: [image(jobId)], attempts: 1, possibly_billed: 0, output_mp: 1, input_mp: 0 } },
      }),
    fail: (jobId: string, batchId: string) =>
      records.finalize(jobId, { state: 'failed', batchId, error: `permanent: ${jobId} refused`, event: { type: EVENT.jobFailed, data: { jobId, batchId, error: `permanent: ${jobId} refused`, attempts: 1, possibly_billed: 0 } } }),
    image,
  };
}

async function inChunks<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += 200) await Promise.all(items.slice(i, i + 200).map(fn));
}

test('`enqueue --wait` on 2000 jobs follows the events stream: Redis reads O(events), not O(jobs) per round; output and exit code as before', { timeout: 180_000 }, async (t) => {
  // A private redis-server: INFO commandstats then counts only this test's commands.
  const server = await startLocalRedis();
  t.after(() => server.stop());
  const h = await startHarness(t, { redisUrl: server.url });
  const N = 2000;
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-follow-'));
  const file = join(dir, 'many.jsonl');
  await writeFile(file, Array.from({ length: N }, (_, i) => JSON.stringify({ prompt: `follow ${i}` })).join('\n'));
  const ids = Array.from({ length: N }, (_, i) => `cost-${i + 1}`);
  const out = new Lines();
  const err = new Lines();
  const side = new Redis(server.url);
  t.after(() => side.disconnect());
  const fin = finalizer(h, side, 1_000_000);
  const producer = h.producer();

  const run = enqueueCommand(file, { batch: 'cost', wait: true, json: true }, { env: h.env, stdin: new PassThrough(), stdout: out, stderr: err });
  await waitFor(() => err.text.includes(`batch cost: ${N} jobs`), { timeoutMs: 60_000, what: 'the enqueue summary' });
  // Enqueued: from here on every read of a record (HMGET) is the follower's, or a cancel's.
  const before = await commandCalls(side);
  // The jobs stay open for a while: a poller would read all 2000 records every round.
  await new Promise((r) => setTimeout(r, 3000));
  await inChunks(ids.slice(0, 1000), (id) => fin.complete(id, 'cost'));
  for (const id of ids.slice(1000, 1003)) assert.equal(await producer.cancelJob(id), 'cancelled');
  await new Promise((r) => setTimeout(r, 1500));
  await inChunks(ids.slice(1003, 1500), (id) => fin.fail(id, 'cost'));
  await inChunks(ids.slice(1500), (id) => fin.complete(id, 'cost'));
  const code = await run;
  const after = await commandCalls(side);

  assert.equal(code, 1, 'some jobs failed: exit 1');
  assert.match(err.text, new RegExp(`batch cost: ${N - 500} completed, 500 failed`));
  const lines = out.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, N, 'one line per job');
  const byId = new Map(lines.map((l) => [l.id as string, l]));
  assert.deepEqual(byId.get('cost-1'), { id: 'cost-1', status: 'completed', images: [fin.image('cost-1')] });
  assert.deepEqual(byId.get('cost-1001'), { id: 'cost-1001', status: 'failed', images: [], error: 'cancelled' });
  assert.deepEqual(byId.get('cost-1004'), { id: 'cost-1004', status: 'failed', images: [], error: 'permanent: cost-1004 refused' });
  assert.deepEqual(byId.get(`cost-${N}`), { id: `cost-${N}`, status: 'completed', images: [fin.image(`cost-${N}`)] });
  assert.deepEqual([...byId.keys()].sort(), [...ids].sort());

  // The old poller read every open record each 500 ms: ≥ 2000 × 8 HMGETs over these 4.5 s.
  // Following events costs one read of every record, one per event, and for the cancels
  // (which write no event) one SMISMEMBER per 2000 open jobs of the batch in a round its
  // count moved, then a read of the jobs that left the batch's open set.
  const delta = (cmd: string) => (after.get(cmd) ?? 0) - (before.get(cmd) ?? 0);
  const hmget = delta('hmget');
  assert.ok(hmget <= 2 * N + 50, `the follower read ${hmget} records for ${N} jobs`);
  // The rest of its work is per round (a blocking XREAD, an XINFO after new entries, the
  // cancel checks), not per job. (Commands the finalize script runs inside count too, so
  // only those it does not use are counted here.)
  const rounds = delta('xread') + delta('xinfo|stream') + delta('smismember');
  assert.ok(rounds < 200, `${rounds} XREAD/XINFO/SMISMEMBER calls`);
});

test('a follower that falls behind a trimmed events stream reads every open record once and still sees every job', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { env: { EVENTS_MAX_LEN: '20' } });
  const producer = h.producer();
  const N = 300;
  const ids = Array.from({ length: N }, (_, i) => `trim-${i}`);
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: id })), { batch: 'trim' });
  const fin = finalizer(h, h.redis, 20);

  // The follower stalls on its first re-read after the start, while 299 events pass and the stream trims.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const calls: number[] = [];
  const records = {
    getMany: async (which: readonly string[]) => {
      calls.push(which.length);
      if (calls.length === 2) await gate;
      return producer.records.getMany(which);
    },
  };
  const seen: string[] = [];
  const following = followJobs({ redis: producer.redis, keys: producer.keys, records }, ids, { blockMs: 200, signal: AbortSignal.timeout(60_000), onFinished: (j) => seen.push(`${j.id}:${j.record.state}`) });
  await waitFor(() => calls.length === 1, { what: 'the first read of every record' });
  await fin.complete('trim-0', 'trim');
  await waitFor(() => calls.length === 2, { what: 'the follower to read the record of the first event' });
  await inChunks(ids.slice(1, 200), (id) => fin.complete(id, 'trim'));
  await inChunks(ids.slice(200), (id) => fin.fail(id, 'trim'));
  const first = (await h.redis.xrange(producer.keys.events, '-', '+', 'COUNT', 1))[0];
  assert.ok(first && (await h.redis.xlen(producer.keys.events)) < N, 'the stream was trimmed');
  release();
  const done = await following;

  assert.equal(done.length, N);
  assert.deepEqual(seen.sort(), ids.map((id, i) => `${id}:${i < 200 ? 'completed' : 'failed'}`).sort());
  assert.ok(calls.slice(2).some((n) => n === N - 1), `a full re-read of the ${N - 1} open jobs (reads: ${calls.join(',')})`);
});

test('waitForBatch on 2000 open jobs reads O(1) a poll, not a read per open job; onProgress still sees the batch move', { timeout: 120_000 }, async (t) => {
  const server = await startLocalRedis();
  t.after(() => server.stop());
  const h = await startHarness(t, { redisUrl: server.url });
  const producer = h.producer();
  const N = 2000;
  const ids = Array.from({ length: N }, (_, i) => `wb-${i}`);
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: id })), { batch: 'wb' });
  const side = new Redis(server.url);
  t.after(() => side.disconnect());
  const fin = finalizer(h, side, 1_000_000);

  const before = await commandCalls(side);
  const progress: number[] = [];
  const waiting = producer.waitForBatch('wb', { timeoutMs: 60_000, pollMs: 100, progressMs: 1000, onProgress: (b) => progress.push(b.counts.completed + b.counts.failed) });
  const plain = producer.waitForBatch('wb', { timeoutMs: 60_000, pollMs: 100 });
  // Open for a while: the old poll read where each open job is (ZSCORE + LPOS) every 100 ms.
  await new Promise((r) => setTimeout(r, 2500));
  await inChunks(ids.slice(0, 1000), (id) => fin.complete(id, 'wb'));
  await new Promise((r) => setTimeout(r, 1500));
  await inChunks(ids.slice(1000), (id) => fin.fail(id, 'wb'));
  const [done, done2] = await Promise.all([waiting, plain]);
  const after = await commandCalls(side);

  assert.equal(done.state, 'completed');
  assert.deepEqual(done.counts, { waiting: 0, active: 0, delayed: 0, completed: 1000, failed: 1000, cancelled: 0, expired: 0 });
  assert.deepEqual(done2.counts, done.counts);
  assert.equal(progress[0], 0);
  assert.ok(progress.includes(1000), `onProgress saw the half-way point: ${progress.join(',')}`);
  assert.equal(progress.at(-1), N);
  const perJob = ['zscore', 'lpos'].reduce((n, cmd) => n + (after.get(cmd) ?? 0) - (before.get(cmd) ?? 0), 0);
  // onProgress's full reads: the first, one after the 1000 finished, maybe one a 2 s while nothing moved.
  assert.ok(perJob <= 4 * 2 * N, `${perJob} ZSCORE/LPOS for ${N} open jobs`);
});
