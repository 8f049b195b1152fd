/**
 * fluxq on a real 3-master Redis Cluster (REDIS_CLUSTER=1, REDIS_URL = the three seed
 * nodes, a hash-tagged QUEUE_PREFIX), with two worker processes: the pipeline end to end,
 * the global rate limit, the fleet-wide 429 back-off, and that every key fluxq and BullMQ
 * wrote hashes to the slot of `{prefix}:events` (the hash tag holds, so the Lua scripts
 * and MULTIs never cross slots).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test, type TestContext } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import type { FakeFluxOptions } from '../../src/demo/fake-flux.js';
import { parseEventEntry, type FluxqEvent } from '../../src/shared/events.js';
import { assertFixedWindows, assertQuietAfter429 } from '../helpers/fleet-assertions.js';
import { startHarness, type Harness, type WorkerProcess } from '../helpers/harness.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { waitFor } from '../helpers/wait-for.js';

let cluster: RedisCluster | undefined;
/** Every prefix a test of this file used: the only keys the private cluster may hold. */
const prefixes: string[] = [];

before(async () => {
  cluster = await startRedisCluster({ timeoutMs: 30_000 });
}, { timeout: 40_000 });

after(async () => {
  await cluster?.stop();
});

interface ClusterRig {
  h: Harness;
  prefix: string;
  /** A Cluster client of the test's own, for assertions. */
  admin: Cluster;
  /** A plain client on the first node (CLUSTER KEYSLOT is the same on every node). */
  node: Redis;
}

async function clusterHarness(t: TestContext, env: Record<string, string> = {}, fake?: FakeFluxOptions): Promise<ClusterRig> {
  const c = cluster;
  if (!c) throw new Error('the Redis Cluster did not start');
  const prefix = `{fluxq-${randomUUID().slice(0, 8)}}`;
  prefixes.push(prefix);
  const h = await startHarness(t, {
    fake,
    env: { REDIS_CLUSTER: '1', REDIS_URL: c.urls, QUEUE_PREFIX: prefix, ...env },
    redisUrl: c.nodeUrls[0],
  });
  const admin = new Cluster(c.ports.map((port) => ({ host: '127.0.0.1', port })), { redisOptions: { maxRetriesPerRequest: 3 } });
  admin.on('error', () => undefined);
  const node = new Redis(c.nodeUrls[0] as string, { maxRetriesPerRequest: 3 });
  node.on('error', () => undefined);
  t.after(() => {
    admin.disconnect();
    node.disconnect();
  });
  return { h, prefix, admin, node };
}

async function streamEvents(admin: Cluster, prefix: string): Promise<FluxqEvent[]> {
  const entries = (await admin.xrange(`${prefix}:events`, '-', '+')) as [string, string[]][];
  return entries.map((e) => parseEventEntry(e)).filter((e): e is FluxqEvent => e !== undefined);
}

/** Every key on every master of the cluster, with the master that holds it. */
async function allKeys(admin: Cluster): Promise<{ key: string; node: string }[]> {
  const out: { key: string; node: string }[] = [];
  for (const master of admin.nodes('master')) {
    const where = `${master.options.host}:${master.options.port}`;
    let cursor = '0';
    let rounds = 0;
    do {
      const [next, keys] = await master.scan(cursor, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) out.push({ key, node: where });
      if (++rounds > 10_000) throw new Error(`SCAN on ${where} did not finish`);
    } while (cursor !== '0');
  }
  return out;
}

/**
 * Every key in the cluster belongs to one of this file's prefixes (nothing was written
 * without the prefix), and every key of `prefix` is in the slot of `{prefix}:events`, on
 * one master. Returns this prefix's keys.
 */
async function assertOneSlot(rig: ClusterRig, mustHave: string[]): Promise<string[]> {
  const { admin, node, prefix } = rig;
  const found = await allKeys(admin);
  const stray = found.filter(({ key }) => !prefixes.some((p) => key.startsWith(`${p}:`)));
  assert.deepEqual(stray, [], 'keys written without the queue prefix');
  const mine = found.filter(({ key }) => key.startsWith(`${prefix}:`));
  const expected = await node.cluster('KEYSLOT', `${prefix}:events`);
  const p = node.pipeline();
  for (const { key } of mine) p.cluster('KEYSLOT', key);
  const replies = (await p.exec()) ?? [];
  const slots = mine.map(({ key }, i) => {
    const [err, slot] = replies[i] ?? [new Error('no reply'), null];
    if (err) throw err;
    return { key, slot: Number(slot) };
  });
  assert.deepEqual(slots.filter((s) => s.slot !== Number(expected)), [], `every key in slot ${expected} of ${prefix}:events`);
  assert.equal(new Set(mine.map((k) => k.node)).size, 1, 'all of the prefix on one master');
  const keys = mine.map((k) => k.key);
  for (const k of mustHave) assert.ok(keys.includes(k), `${k} exists (keys: ${keys.slice(0, 40).join(' ')})`);
  return keys;
}

async function stopWorkers(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) w.kill('SIGTERM');
  assert.deepEqual(await Promise.all(workers.map((w) => w.exited)), workers.map(() => 0), 'workers shut down cleanly on SIGTERM');
}

const tookPart = (w: WorkerProcess) => w.lines.some((l) => l.includes('"job completed"'));
/** Errors, and Redis connection trouble (MOVED/CLUSTERDOWN loops surface as these). */
const problems = (w: WorkerProcess) => w.lines.filter((l) => /"level":(50|60)/.test(l) || /redis connection problem/.test(l));

test('on a 3-master cluster, two worker processes run a 20-job batch: images in S3, one event per job, batch.completed once', { timeout: 60_000 }, async (t) => {
  const rig = await clusterHarness(t, {}, { latencyMs: 100 });
  const { h, prefix, admin } = rig;
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '3' }), h.spawnWorker({ WORKER_CONCURRENCY: '3' })]);
  const producer = h.producer();
  const batch = 'cl-batch';
  const ids = Array.from({ length: 20 }, (_, i) => `cl-${i}`);
  const enq = await producer.enqueueBulk(ids.map((id, i) => ({ id, prompt: `cluster ${i}` })), { batch });
  assert.equal(enq.created, 20);

  const status = await producer.waitForBatch(batch, { timeoutMs: 30_000, pollMs: 100 });
  assert.equal(status.state, 'completed');
  assert.equal(status.total, 20);
  assert.deepEqual(status.counts, { waiting: 0, active: 0, delayed: 0, completed: 20, failed: 0, cancelled: 0, expired: 0 });
  assert.equal(status.output_mp, 20);
  assert.equal(status.possibly_billed, 0);

  const done = await Promise.all(ids.map((id) => producer.waitFor(id, { timeoutMs: 5000 })));
  const objects = await h.listObjects(`images/${batch}/`);
  for (const d of done) {
    assert.equal(d.state, 'completed', `${d.id}: ${d.error ?? ''}`);
    assert.equal(d.result?.attempts, 1);
    const key = `images/${batch}/${d.id}/0.png`;
    assert.deepEqual(d.result?.images.map((i) => i.key), [key]);
    assert.ok(objects.includes(key), `${key} is in the bucket`);
    assert.equal((await h.headObject(key))?.metadata['job-id'], d.id);
  }
  assert.equal(h.fake.calls.length, 20, 'one upstream call per job');

  // batch.completed is emitted once the manifest is written, just after the last job.
  const events = await waitFor(
    async () => {
      const evs = await streamEvents(admin, prefix);
      return evs.some((e) => e.type === 'batch.completed') ? evs : undefined;
    },
    { timeoutMs: 10_000, what: 'batch.completed on the events stream' },
  );
  const completed = events.filter((e) => e.type === 'job.completed').map((e) => (e.data as { jobId: string }).jobId);
  assert.deepEqual([...completed].sort(), [...ids].sort(), 'exactly one job.completed per job');
  assert.equal(events.filter((e) => e.type === 'job.failed').length, 0);
  const bc = events.filter((e) => e.type === 'batch.completed');
  assert.equal(bc.length, 1, 'batch.completed once');
  assert.deepEqual(
    (({ batchId, total, completed: c, failed, cancelled, output_mp, manifest }) => ({ batchId, total, completed: c, failed, cancelled, output_mp, manifest }))(
      bc[0]?.data as { batchId: string; total: number; completed: number; failed: number; cancelled: number; output_mp: number; manifest: string },
    ),
    { batchId: batch, total: 20, completed: 20, failed: 0, cancelled: 0, output_mp: 20, manifest: `images/${batch}/manifest.jsonl` },
  );
  assert.ok((await h.listObjects(`images/${batch}/`)).includes(`images/${batch}/manifest.jsonl`));
  assert.ok(workers.every(tookPart), 'both worker processes completed jobs');

  // The same events through a consumer group: the reader duplicate()s the Cluster client
  // and XREADGROUPs (with BLOCK) on it.
  const seen: string[] = [];
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 10_000);
  try {
    for await (const ev of producer.events({ group: 'cluster-test', consumer: 'c1', blockMs: 200, signal: ac.signal })) {
      seen.push(ev.type === 'job.completed' ? (ev.data as { jobId: string }).jobId : ev.type);
      if (seen.length === 21) break;
    }
  } finally {
    clearTimeout(timer);
  }
  assert.deepEqual([...seen].sort(), [...ids, 'batch.completed'].sort(), 'the consumer group sees every event once');

  // The CLI (a producer connection without an offline queue) on the cluster.
  const st = await h.cli(['status', batch], { timeoutMs: 20_000 });
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^completed total=20 waiting=0 active=0 delayed=0 completed=20 failed=0 cancelled=0 /);

  await assertOneSlot(rig, [
    `${prefix}:events`,
    `${prefix}:stats`,
    `${prefix}:batch:${batch}`,
    `${prefix}:batch:${batch}:jobs`,
    ...ids.map((id) => `${prefix}:id:${id}`),
    `${prefix}:generate:meta`,
    `${prefix}:generate:completed`,
  ]);
  await stopWorkers(workers);
  assert.deepEqual(workers.flatMap(problems), [], 'no error logged by the workers');
  // Still exactly once now that both workers (and their batch sweepers) have stopped.
  assert.equal((await streamEvents(admin, prefix)).filter((e) => e.type === 'batch.completed').length, 1);
});

test('on the cluster, RATE_LIMIT_MAX=3 per 1000 ms holds across two worker processes', { timeout: 60_000 }, async (t) => {
  const rig = await clusterHarness(t, { RATE_LIMIT_MAX: '3', RATE_LIMIT_DURATION_MS: '1000' }, { latencyMs: 20 });
  const { h, prefix } = rig;
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '4' }), h.spawnWorker({ WORKER_CONCURRENCY: '4' })]);
  const producer = h.producer();
  const ids = Array.from({ length: 10 }, (_, i) => `r-${i}`);
  await producer.enqueueBulk(ids.map((id, i) => ({ id, prompt: `r ${i}` })));
  for (const id of ids) assert.equal((await producer.waitFor(id, { timeoutMs: 30_000, pollMs: 100 })).state, 'completed');
  // Job starts (BullMQ's processedOn, one attempt each), rebuilt into the limiter's fixed
  // windows: each opens at the first start after the previous one closed.
  // BullMQ moves a job to completed just after fluxq's record says so.
  await waitFor(async () => (await producer.queue.getJobCounts('completed')).completed === 10, { timeoutMs: 10_000, what: 'BullMQ to complete all 10' });
  const jobs = await producer.queue.getJobs(['completed']);
  assert.equal(jobs.length, 10);
  assert.ok(jobs.every((j) => j.attemptsStarted === 1));
  assertFixedWindows(jobs.map((j) => j.processedOn ?? 0), 3, 1000, 4);
  assert.equal(h.fake.calls.length, 10, 'one upstream call per start');

  await assertOneSlot(rig, [`${prefix}:events`, ...ids.map((id) => `${prefix}:id:${id}`), `${prefix}:generate:completed`]);
  await stopWorkers(workers);
  assert.deepEqual(workers.flatMap(problems), [], 'no error logged by the workers');
});

test('on the cluster, a 429 with Retry-After: 2 stops both worker processes for the window; the job completes with attempts 1', { timeout: 60_000 }, async (t) => {
  const rig = await clusterHarness(t, {}, { latencyMs: 300 });
  const { h, prefix } = rig;
  h.fake.inject({ times: 1, fault: { type: 'status', status: 429, errorType: 'rate_limit', message: 'slow down', retryAfter: '2' } });
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '2' }), h.spawnWorker({ WORKER_CONCURRENCY: '2' })]);
  const producer = h.producer();
  const ids = Array.from({ length: 8 }, (_, i) => `rl-${i}`);
  await producer.enqueueBulk(ids.map((id, i) => ({ id, prompt: `rl ${i}` })));
  const done = await Promise.all(ids.map((id) => producer.waitFor(id, { timeoutMs: 30_000, pollMs: 100 })));
  assert.ok(done.every((d) => d.state === 'completed'), JSON.stringify(done.map((d) => [d.id, d.state, d.error])));

  assertQuietAfter429(h.fake.calls, done, 2000);
  assert.equal(h.fake.calls.length, 9, '8 jobs, one 429 and its retry');
  assert.ok(workers.every(tookPart), 'both worker processes completed jobs');

  await assertOneSlot(rig, [`${prefix}:events`, `${prefix}:stats`, ...ids.map((id) => `${prefix}:id:${id}`), `${prefix}:generate:meta`]);
  await stopWorkers(workers);
  assert.deepEqual(workers.flatMap(problems), [], 'no error logged by the workers');
});
