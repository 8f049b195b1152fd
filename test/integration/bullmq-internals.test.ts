import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueKeys, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { BatchStore } from '../../src/shared/batch-store.js';
import { BULLMQ_VERSION_CHECKED, PARKED_AT_MS, PoisonTolerantWorker, poisonReason } from '../../src/shared/bullmq-internals.js';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { AdaptiveConcurrency } from '../../src/worker/adaptive-concurrency.js';
import { UNLIMITED_STARTS } from '../../src/worker/worker.js';
import { startHarness } from '../helpers/harness.js';

/**
 * What fluxq relies on in BullMQ beyond its public API (src/shared/bullmq-internals.ts):
 * each is checked here against BullMQ's own public behaviour, so a bullmq upgrade that
 * changes one fails this file instead of fluxq in production.
 */

test('bullmq is the exact version bullmq-internals.ts was checked against', async () => {
  const { createRequire } = await import('node:module');
  const pkg = createRequire(import.meta.url)('bullmq/package.json') as { version: string };
  assert.equal(pkg.version, BULLMQ_VERSION_CHECKED, 're-check every item in src/shared/bullmq-internals.ts, then update BULLMQ_VERSION_CHECKED');
});

test("fluxq's names for BullMQ's keys are the ones BullMQ itself uses", () => {
  const bull = new QueueKeys('pfx').getKeys('q');
  const keys = redisKeys('pfx', 'q');
  assert.equal(keys.limiter, bull.limiter);
  assert.equal(keys.meta, bull.meta);
  assert.equal(keys.bullMarker, bull.marker);
  assert.equal(keys.bullActive, bull.active);
  assert.equal(keys.bullDelayed, bull.delayed);
  assert.equal(keys.bullFailed, bull.failed);
  assert.equal(keys.bullJob('j-1'), `${bull['']}j-1`);
});

test('the keys hold what fluxq reads and writes in them, in the shape BullMQ gives them', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const keys = redisKeys(h.prefix, h.queueName);
  const conn = new Redis(h.redisUrl, { maxRetriesPerRequest: null });
  t.after(() => conn.disconnect());
  const producer = h.producer();
  const queue = producer.queue;

  // limiter: queue.rateLimit(ms) opens the window START_CALL reads (value above the max, PTTL).
  await queue.rateLimit(30_000);
  const records = new JobRecords(h.redis, keys, { ttlS: 3600, eventsMaxLen: 1000 });
  const start = await records.startCall('rl-job', undefined, { limiterMax: UNLIMITED_STARTS, defaultMaxMp: undefined, leaseMs: 1000 });
  const bullTtl = await queue.getRateLimitTtl(UNLIMITED_STARTS);
  assert.equal(start.verdict, 'rate_limited', 'the 429 gate sees the window BullMQ opened');
  assert.ok(start.verdict === 'rate_limited' && Math.abs(start.ttlMs - bullTtl) < 2000 && bullTtl > 25_000, `gate ttl ${JSON.stringify(start)} vs BullMQ ${bullTtl}`);
  await conn.del(keys.limiter);
  assert.equal((await records.startCall('rl-job', undefined, { limiterMax: UNLIMITED_STARTS, defaultMaxMp: undefined, leaseMs: 1000 })).verdict, 'ok');

  // meta.concurrency: what adaptive concurrency writes is what BullMQ reads as the global concurrency.
  const adaptive = new AdaptiveConcurrency(conn, keys, { min: 3, max: 40 }, h.logger);
  await adaptive.start();
  assert.equal(await queue.getGlobalConcurrency(), adaptive.current, 'BullMQ reads the limit adaptive concurrency wrote');
  await queue.setGlobalConcurrency(7);
  assert.equal(await conn.hget(keys.meta, 'concurrency'), '7', 'where setGlobalConcurrency writes');

  // marker: a zset whose base marker is member "0" at score 0, as adaptive concurrency drops it.
  await conn.del(keys.bullMarker);
  await producer.enqueue({ id: 'marker-job', prompt: 'wakes workers', batch: 'bi' });
  assert.equal(await conn.type(keys.bullMarker), 'zset');
  // The job is added parked (fair share: BullMQ's delay marker "1" at the parked time), then
  // released by fair-dispatch.lua, which drops the base marker as BullMQ's promote does.
  assert.equal(await conn.zscore(keys.bullMarker, '0'), '0');
  assert.ok(Math.abs(Number(await conn.zscore(keys.bullMarker, '1')) - PARKED_AT_MS) < 1000);

  // active / delayed / failed / the job hash, as batch status and idempotent enqueue read them.
  const batches = new BatchStore(h.redis, keys, { eventsMaxLen: 1000 });
  const worker = new Worker(h.queueName, null, { connection: conn, prefix: h.prefix, autorun: false });
  t.after(() => worker.close());
  const job = await worker.getNextJob('tok-1');
  assert.equal(job?.id, 'marker-job');
  assert.equal(await job.getState(), 'active');
  assert.deepEqual(await batches.openCounts('bi'), { waiting: 0, active: 1, delayed: 0 });
  await job.moveToDelayed(Date.now() + 60_000, 'tok-1');
  assert.equal(await job.getState(), 'delayed');
  assert.deepEqual(await batches.openCounts('bi'), { waiting: 0, active: 0, delayed: 1 });
  assert.equal(await conn.exists(keys.bullJob('marker-job')), 1, 'the job hash');
  await job.promote();
  const again = await worker.getNextJob('tok-2');
  assert.equal(again?.id, 'marker-job');
  await again.moveToFailed(new UnrecoverableError('failed by the test'), 'tok-2');
  assert.equal(await again.getState(), 'failed');
  assert.notEqual(await conn.zscore(keys.bullFailed, 'marker-job'), null, 'the failed set');
});

test('job data that is not JSON reaches the processor marked as poison, not as a fetch error', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const keys = redisKeys(h.prefix, h.queueName);
  const conn = new Redis(h.redisUrl, { maxRetriesPerRequest: null });
  t.after(() => conn.disconnect());
  const producer = h.producer();
  await producer.enqueueBulk([
    { id: 'broken-1', prompt: 'its data gets broken' },
    { id: 'broken-2', prompt: 'its data gets broken too' },
  ]);
  for (const id of ['broken-1', 'broken-2']) await conn.hset(keys.bullJob(id), 'data', '{"v":1,"params":');
  const errors: Error[] = [];
  const worker = new PoisonTolerantWorker(h.queueName, null as never, { connection: conn, prefix: h.prefix, autorun: false });
  worker.on('error', (err) => errors.push(err));
  t.after(() => worker.close());
  const job = await worker.getNextJob('tok-1');
  assert.equal(job?.id, 'broken-1', 'fetched, not thrown out of the fetch');
  assert.deepEqual(job.data, {});
  assert.match(poisonReason(job) ?? '', /^job data is not valid JSON \(.+\); it was not written by fluxq$/);
  assert.deepEqual(errors, []);
  // The same through a plain Worker: BullMQ still throws where createJob parses it.
  const plain = new Worker(h.queueName, null, { connection: conn, prefix: h.prefix, autorun: false });
  t.after(() => plain.close());
  await assert.rejects(plain.getNextJob('tok-2'), SyntaxError, 'BullMQ parses job data in createJob (what PoisonTolerantWorker catches)');
});
