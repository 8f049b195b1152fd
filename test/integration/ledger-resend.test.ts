import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { settleCall, startCall } from '../../src/shared/redis-scripts/call-ledger.js';
import { testRedisUrl } from '../helpers/harness.js';

/**
 * ioredis re-sends a command whose reply a dropped connection lost, though Redis may have
 * run it (found by `npm run soak`, reproduced by bench/redis-resend-probe.ts). The ledger
 * scripts carry an operation id and apply once.
 */
test('the ledger scripts count a re-sent call start or settlement once', async (t) => {
  const redis = new Redis(await testRedisUrl());
  t.after(() => redis.disconnect());
  const keys = redisKeys(`resend-${Date.now()}`, 'generate');
  const records = new JobRecords(redis, keys, { ttlS: 60, eventsMaxLen: 100 });
  const pipe = redis.pipeline();
  records.register(pipe, { id: 'j', batchId: 'b', prompt: 'p' }, Date.now());
  await pipe.exec();
  const ledgerKeys = { idRecord: keys.idRecord('j'), batch: keys.batch('b'), stats: keys.stats, calls: keys.idCalls('j'), tenantStats: keys.tenantStats, tenantCalls: keys.tenantCalls('default'), tenantMegapixels: keys.tenantMegapixels('default') };
  const startKeys = { idRecord: keys.idRecord('j'), limiter: keys.limiter, batch: keys.batch('b'), calls: keys.idCalls('j'), tenantCalls: keys.tenantCalls('default'), tenantMegapixels: keys.tenantMegapixels('default') };
  const start = { opId: 'op-1', leaseMs: 60_000, ttlS: 60, limiterMax: 1_000_000, batchId: 'b' };
  assert.deepEqual(await startCall(redis, startKeys, start), { verdict: 'ok' });
  assert.deepEqual(await startCall(redis, startKeys, start), { verdict: 'ok' }, 'the re-send answers the same');
  const settle = { opId: 'op-1', spendsAttempt: true, ambiguous: true, ttlS: 60, batchId: 'b', outputMp: 1, inputMp: 0, costMicroUsd: 30_000 };
  assert.deepEqual(await settleCall(redis, ledgerKeys, settle), { attempts: 1, possiblyBilled: 1 });
  assert.deepEqual(await settleCall(redis, ledgerKeys, settle), { attempts: 1, possiblyBilled: 1 });
  const rec = await redis.hgetall(keys.idRecord('j'));
  assert.deepEqual([rec.started, rec.calls, rec.settled, rec.attempts, rec.pb], ['1', '1', '1', '1', '1']);
  const batch = await redis.hgetall(keys.batch('b'));
  assert.deepEqual([batch.output_mp, batch.possibly_billed, batch.cost_micro_usd], ['1', '1', '30000']);
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 0, 'no phantom call to count on the next run');
  // A new operation counts again.
  await startCall(redis, startKeys, { ...start, opId: 'op-3' });
  assert.equal(await redis.hget(keys.idRecord('j'), 'started'), '2');
});
