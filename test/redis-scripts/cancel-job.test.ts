import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cancelJob } from '../../src/shared/redis-scripts/finalisation.js';
import { finalisationKeys, scriptKit } from './script-kit.js';

const args = (jobId: string, batchId?: string) => ({ jobId, batchId, eventsMaxLen: 10, ttlS: 60, now: 42 });

test('cancel-job cancels a generation with no call started, once; the last open job finishes its batch', async (t) => {
  const { redis, keys } = await scriptKit(t);
  await redis.sadd(keys.batchOpen('b'), 'j');
  await redis.hset(keys.idRecord('j'), 'gen', '1');
  assert.deepEqual(await cancelJob(redis, finalisationKeys(keys, 'j', 'b'), args('j', 'b')), { outcome: 'cancelled', batchFinished: true });
  assert.deepEqual(await redis.hmget(keys.idRecord('j'), 'final', 'state', 'finished'), ['1', 'cancelled', '42']);
  assert.deepEqual(await redis.hmget(keys.batch('b'), 'cancelled', 'fin_gen'), ['1', '1']);
  assert.equal(await redis.hget(keys.stats, 'cancelled'), '1');
  assert.equal(await redis.exists(keys.events, keys.webhookOutbox), 0, 'a cancel writes no event here');

  // Again (a re-send): already final, nothing moves.
  assert.deepEqual(await cancelJob(redis, finalisationKeys(keys, 'j', 'b'), args('j', 'b')), { outcome: 'final', batchFinished: false });
  assert.deepEqual(await redis.hmget(keys.batch('b'), 'cancelled', 'fin_gen'), ['1', '1']);
  assert.equal(await redis.hget(keys.stats, 'cancelled'), '1');
});

test('cancel-job refuses a generation whose upstream call has started', async (t) => {
  const { redis, keys } = await scriptKit(t);
  await redis.hset(keys.idRecord('busy'), 'gen', '1', 'started', '1');
  assert.deepEqual(await cancelJob(redis, finalisationKeys(keys, 'busy'), args('busy')), { outcome: 'active', batchFinished: false });
  assert.deepEqual(await redis.hgetall(keys.idRecord('busy')), { gen: '1', started: '1' });
  assert.equal(await redis.exists(keys.stats), 0);
});
