import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adaptConcurrency } from '../../src/shared/redis-scripts/concurrency-limit.js';
import { scriptKit } from './script-kit.js';

const OPTS = { min: 2, max: 64, probeRounds: 100, cooldownMs: 1000, retryAfterMs: 0 };

test('adapt-concurrency: slow start doubles per round, a 429 cuts by a quarter once per cooldown, BullMQ meta follows', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { state: keys.concurrency, meta: keys.meta, marker: keys.bullMarker };

  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, outcome: 'ok', now: 1000 }), { limit: 2, reason: '' });
  assert.equal(await redis.hget(k.meta, 'concurrency'), '2', 'meta written even without a change');
  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, outcome: 'ok', now: 1001 }), { limit: 4, reason: 'slow start' });
  assert.equal(await redis.hget(k.meta, 'concurrency'), '4');
  assert.deepEqual(await redis.zrange(k.marker, '0', '-1'), ['0'], 'a raise wakes idle workers');
  assert.deepEqual(await redis.hmget(k.state, 'limit', 'bad', 'successes'), ['4', '0', '0']);

  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, outcome: '429', now: 2000, cooldownMs: 1500, retryAfterMs: 700 }), { limit: 3, reason: 'a 429: decrease' });
  assert.deepEqual(await redis.hmget(k.state, 'limit', 'bad', 'decreases', 'decreased_at', 'cooldown_until', 'retry_after'), ['3', '4', '1', '2000', '3500', '700']);
  assert.equal(await redis.hget(k.meta, 'concurrency'), '3');

  // The same 429 reported again inside the cooldown (a call sent before the cut, or a re-send).
  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, outcome: '429', now: 2500 }), { limit: 3, reason: '' });
  assert.deepEqual(await redis.hmget(k.state, 'limit', 'decreases'), ['3', '1']);

  // Below the known limit (4) it climbs one per round: 3 successes at 3 → 4 would be the known bad, so stop at bad - 1 = 3.
  for (let i = 0; i < 3; i++) await adaptConcurrency(redis, k, { ...OPTS, outcome: 'ok', now: 3000 + i });
  assert.equal(await redis.hget(k.state, 'limit'), '3', 'at the known limit it holds until a probe');
});

test('adapt-concurrency keeps the limit within min and max', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { state: keys.concurrency, meta: keys.meta, marker: keys.bullMarker };
  await redis.hset(k.state, 'limit', '3');
  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, min: 3, outcome: '429', now: 1 }), { limit: 3, reason: '' });
  await redis.hset(k.state, 'limit', '6', 'bad', '0', 'successes', '5');
  assert.deepEqual(await adaptConcurrency(redis, k, { ...OPTS, max: 8, outcome: 'ok', now: 2 }), { limit: 8, reason: 'slow start' });
});
