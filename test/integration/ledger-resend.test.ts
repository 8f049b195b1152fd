import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
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
  const scripted = redis as unknown as {
    fluxqStartCall(...a: (string | number)[]): Promise<[string, number]>;
    fluxqSettleCall(...a: (string | number)[]): Promise<[number, number]>;
  };
  const start = [keys.idRecord('j'), keys.limiter, keys.batch('b'), keys.idCalls('j'), 1_000_000, 'b', '', 'op-1', 60_000, 60];
  assert.deepEqual(await scripted.fluxqStartCall(...start), ['ok', 0]);
  assert.deepEqual(await scripted.fluxqStartCall(...start), ['ok', 0], 'the re-send answers the same');
  const settle = [keys.idRecord('j'), keys.batch('b'), keys.stats, keys.idCalls('j'), 1, 1, 60, 'b', 1, 0, 30_000, 'op-1'];
  assert.deepEqual(await scripted.fluxqSettleCall(...settle), [1, 1]);
  assert.deepEqual(await scripted.fluxqSettleCall(...settle), [1, 1]);
  const rec = await redis.hgetall(keys.idRecord('j'));
  assert.deepEqual([rec.started, rec.calls, rec.settled, rec.attempts, rec.pb], ['1', '1', '1', '1', '1']);
  const batch = await redis.hgetall(keys.batch('b'));
  assert.deepEqual([batch.output_mp, batch.possibly_billed, batch.cost_micro_usd], ['1', '1', '30000']);
  assert.equal((await records.beginRun('j', 'b')).orphanedCalls, 0, 'no phantom call to count on the next run');
  // A new operation counts again.
  await scripted.fluxqStartCall(keys.idRecord('j'), keys.limiter, keys.batch('b'), keys.idCalls('j'), 1_000_000, 'b', '', 'op-3', 60_000, 60);
  assert.equal(await redis.hget(keys.idRecord('j'), 'started'), '2');
});
