import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restoreConcurrency } from '../../src/shared/redis-scripts/concurrency-limit.js';
import { scriptKit } from './script-kit.js';

test('restore-concurrency continues from the learned limit, or starts at the minimum, and writes it to BullMQ meta', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { state: keys.concurrency, meta: keys.meta };
  assert.equal(await restoreConcurrency(redis, k, { min: 2 }), 2);
  assert.deepEqual([await redis.hget(k.state, 'limit'), await redis.hget(k.meta, 'concurrency')], ['2', '2']);
  await redis.hset(k.state, 'limit', '17');
  assert.equal(await restoreConcurrency(redis, k, { min: 2 }), 17);
  assert.equal(await restoreConcurrency(redis, k, { min: 2 }), 17, 'again: the same');
  assert.deepEqual([await redis.hget(k.state, 'limit'), await redis.hget(k.meta, 'concurrency')], ['17', '17']);
});
