import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys, type RedisKeys } from '../../src/shared/keys.js';
import { testRedisUrl, waitFor } from '../helpers/harness.js';

/**
 * Two runs of one job can overlap: a run that lost its BullMQ lock but is alive keeps
 * its call in flight while the re-run begins. Each call is an operation with its own id
 * and lease, counted once whichever run settles it.
 */

const LIMITS = { limiterMax: 1_000_000, defaultMaxMp: undefined };

async function setUp(t: { after(fn: () => void): void }): Promise<{ redis: Redis; keys: RedisKeys; records: JobRecords }> {
  const redis = new Redis(await testRedisUrl());
  t.after(() => redis.disconnect());
  const keys = redisKeys(`runs-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`, 'generate');
  const records = new JobRecords(redis, keys, { ttlS: 60, eventsMaxLen: 100 });
  const pipe = redis.pipeline();
  records.register(pipe, { id: 'j', batchId: 'b', prompt: 'p' }, Date.now());
  await pipe.exec();
  return { redis, keys, records };
}

async function startOk(records: JobRecords, leaseMs: number): Promise<string> {
  const start = await records.startCall('j', 'b', { ...LIMITS, leaseMs });
  assert.equal(start.verdict, 'ok');
  return (start as { opId: string }).opId;
}

/** Until Redis's clock is past every lease in the job's calls hash (bounded). */
async function leasesRunOut(redis: Redis, keys: RedisKeys): Promise<void> {
  await waitFor(
    async () => {
      const [s, us] = await redis.time();
      const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
      const leases = Object.values(await redis.hgetall(keys.idCalls('j'))).map(Number).filter((n) => Number.isFinite(n));
      return leases.every((end) => end < now);
    },
    { what: 'the call lease to run out', timeoutMs: 5000 },
  );
}

test('a re-run that begins while the first run is alive mid-call does not count that call orphaned; its own settlement counts it once', async (t) => {
  const { redis, keys, records } = await setUp(t);
  const a = await startOk(records, 60_000);
  const b = await records.beginRun('j', 'b');
  assert.equal(b.orphanedCalls, 0, 'run A is alive: its call is not orphaned');
  assert.deepEqual([b.record.attempts, b.record.possiblyBilled], [0, 0]);
  assert.deepEqual(await records.callSettled('j', 'b', a, { spendsAttempt: true, ambiguous: false, outputMp: 1, inputMp: 0, costMicroUsd: 30_000 }), { attempts: 1, possiblyBilled: 0 });
  // Run B makes its own call; both are counted, neither as possibly billed.
  const bCall = await startOk(records, 60_000);
  assert.deepEqual(await records.callSettled('j', 'b', bCall, { spendsAttempt: true, ambiguous: false, outputMp: 1 }), { attempts: 2, possiblyBilled: 0 });
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 0, 'settled calls are never orphaned later');
  const batch = await redis.hgetall(keys.batch('b'));
  assert.equal(batch.possibly_billed, undefined);
  assert.equal(batch.output_mp, '2');
  const rec = await redis.hgetall(keys.idRecord('j'));
  assert.deepEqual([rec.started, rec.settled, rec.attempts, rec.pb], ['2', '2', '2', '0']);
});

test('a run that keeps renewing its lease is alive, however long its call takes', async (t) => {
  const { keys, redis, records } = await setUp(t);
  const a = await startOk(records, 50);
  await leasesRunOut(redis, keys);
  assert.equal(await records.renewCall('j', a, 60_000), true, 'renewed while still in flight');
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 0);
  assert.deepEqual(await records.callSettled('j', 'b', a, { spendsAttempt: true, ambiguous: true }), { attempts: 1, possiblyBilled: 1 });
  assert.equal(await records.renewCall('j', a, 60_000), false, 'a settled call is no longer in flight');
});

test('a run that died mid-call is counted orphaned once; its late settlement adds no attempt but records its megapixels', async (t) => {
  const { redis, keys, records } = await setUp(t);
  const a = await startOk(records, 50);
  await leasesRunOut(redis, keys);
  const b = await records.beginRun('j', 'b');
  assert.equal(b.orphanedCalls, 1, 'run A is dead: its call is orphaned');
  assert.deepEqual([b.record.attempts, b.record.possiblyBilled], [1, 1]);
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 0, 'counted once');
  assert.equal(await records.renewCall('j', a, 60_000), false, 'a renewal after the count does not revive it');
  // A was not dead after all: its answer arrives and is settled late.
  const late = { spendsAttempt: true, ambiguous: false, outputMp: 1, inputMp: 0, costMicroUsd: 30_000 };
  assert.deepEqual(await records.callSettled('j', 'b', a, late), { attempts: 1, possiblyBilled: 1 });
  assert.deepEqual(await records.callSettled('j', 'b', a, late), { attempts: 1, possiblyBilled: 1 }, 'a re-sent settlement changes nothing');
  const batch = await redis.hgetall(keys.batch('b'));
  assert.deepEqual([batch.possibly_billed, batch.output_mp, batch.cost_micro_usd], ['1', '1', '30000']);
  const stats = await redis.hgetall(keys.stats);
  assert.equal(stats.possibly_billed, '1');
  // Later calls are counted as usual, and a later orphan is still found.
  const c = await startOk(records, 50);
  await leasesRunOut(redis, keys);
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 1, 'a later real orphan is not hidden');
  assert.equal(await records.renewCall('j', c, 60_000), false);
  const rec = await redis.hgetall(keys.idRecord('j'));
  assert.deepEqual([rec.started, rec.settled, rec.attempts, rec.pb], ['2', '2', '2', '2']);
});
