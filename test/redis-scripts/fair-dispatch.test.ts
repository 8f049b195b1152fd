import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Redis } from 'ioredis';
import { PARKED_AT_MS, PARKED_MIN_SCORE } from '../../src/shared/bullmq-internals.js';
import { FAIR_STRIDE } from '../../src/shared/fair-share.js';
import type { RedisKeys } from '../../src/shared/keys.js';
import { fairDispatch, fairDispatchKeys, type FairDispatchArgs, type ParkedJob } from '../../src/shared/redis-scripts/fair-dispatch.js';
import { scriptKit } from './script-kit.js';

const dispatchKeys = fairDispatchKeys;

const baseArgs = (k: RedisKeys, over: Partial<FairDispatchArgs> = {}): FairDispatchArgs => ({
  window: 3,
  weights: {},
  caps: {},
  fairBase: k.fairBase,
  tenantBase: k.tenantBase,
  jobBase: k.bullJobBase,
  parkedAt: PARKED_AT_MS,
  parkedMinScore: PARKED_MIN_SCORE,
  stride: FAIR_STRIDE,
  releasedGraceMs: 5000,
  ...over,
});

/** What BullMQ's add does for a job delayed until PARKED_AT_MS (its hash and its delayed entry). */
async function parkInBull(redis: Redis, k: RedisKeys, id: string, priority = 0): Promise<void> {
  await redis.hset(k.bullJob(id), 'name', 'generate', 'data', '{}', 'priority', String(priority), 'delay', String(PARKED_AT_MS - Date.now()));
  await redis.zadd(k.bullDelayed, PARKED_AT_MS * 0x1000, id);
}

const job = (id: string, tenant: string, batch = '-', level = 0): ParkedJob => ({ id, tenant, batch, level });

/** The wait list in the order workers take it (BullMQ pops from the right). */
const waitOrder = async (redis: Redis, k: RedisKeys) => (await redis.lrange(k.bullWait, 0, -1)).reverse();

test('fair-dispatch parks jobs in their flows and releases them by virtual time, up to the window, as BullMQ promotes', async (t) => {
  const { redis, keys: k } = await scriptKit(t);
  const park = [job('a0', 'a', 'x'), job('a1', 'a', 'x'), job('a2', 'a', 'x'), job('b0', 'b', 'y')];
  for (const p of park) await parkInBull(redis, k, p.id);

  assert.deepEqual(await fairDispatch(redis, dispatchKeys(k), { ...baseArgs(k), park }), { parked: 4, released: 3, waiting: 3 });
  assert.deepEqual(await waitOrder(redis, k), ['a0', 'b0', 'a1'], 'tenants alternate (equal weights), FIFO inside a batch');
  assert.equal(await redis.zscore(k.bullDelayed, 'a0'), null, 'a released job left the delayed set');
  assert.equal(Number(await redis.zscore(k.bullDelayed, 'a2')), PARKED_AT_MS * 0x1000, 'the rest stays parked');
  assert.equal(await redis.hget(k.bullJob('a0'), 'delay'), '0');
  assert.equal(await redis.zscore(k.bullMarker, '0'), '0', 'idle workers are woken');
  const events = await redis.xrange(k.bullEvents, '-', '+');
  assert.deepEqual(events.map(([, f]) => f.slice(0, 4)), ['a0', 'b0', 'a1'].map((id) => ['event', 'waiting', 'jobId', id]));
  assert.deepEqual(await redis.lrange(k.fairFlow(0, 'a', 'x'), 0, -1), ['a2']);
  assert.equal(await redis.exists(k.fairFlow(0, 'b', 'y')), 0, "b's only flow drained");
  assert.deepEqual(await redis.zrange(k.fairTenants(0), '0', '-1', 'WITHSCORES'), ['a', String(2 * FAIR_STRIDE)], 'a served twice; b left the level');
  assert.equal(await redis.hget(k.fairClock, '0'), String(FAIR_STRIDE), "the level's virtual time: the pass of the tenant served last");

  assert.equal((await fairDispatch(redis, dispatchKeys(k), baseArgs(k))).released, 0, 'the window is full: nothing more');
  await redis.rpop(k.bullWait); // a worker took one
  assert.deepEqual(await fairDispatch(redis, dispatchKeys(k), baseArgs(k)), { parked: 0, released: 1, waiting: 3 });
  assert.deepEqual(await redis.zrange(k.fairLevels, '0', '-1'), [], 'nothing parked: the level is gone');

  // A tenant backlogged anew starts at the virtual time, not 0: it banks no credit for its idle time.
  await parkInBull(redis, k, 'c0');
  await redis.del(k.bullWait);
  await fairDispatch(redis, dispatchKeys(k), { ...baseArgs(k, { window: 0 }), park: [job('c0', 'c')] });
  assert.equal(await redis.zscore(k.fairTenants(0), 'c'), await redis.hget(k.fairClock, '0'));
});

test('fair-dispatch: weights, batches of one tenant, priority levels first, paused queue, stale ids, tenant caps', async (t) => {
  const { redis, keys: k } = await scriptKit(t);
  const ids = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}${i}`);
  const park = [
    ...ids('h', 6).map((id) => job(id, 'heavy', 'x')),
    ...ids('l', 6).map((id) => job(id, 'light', 'y')),
    ...ids('p', 2).map((id) => job(id, 'light', 'q', 2)),
  ];
  for (const p of park) await parkInBull(redis, k, p.id, p.level);

  await redis.hset(k.meta, 'paused', '1');
  assert.deepEqual(await fairDispatch(redis, dispatchKeys(k), { ...baseArgs(k), park }), { parked: 14, released: 0, waiting: 0 }, 'paused: parked, nothing released');
  await redis.hdel(k.meta, 'paused');

  await redis.zrem(k.bullDelayed, 'h0'); // cancelled and removed: a stale id in its flow
  const args = baseArgs(k, { window: 8, weights: { heavy: 3 } });
  assert.equal((await fairDispatch(redis, dispatchKeys(k), args)).released, 8);
  assert.deepEqual(await waitOrder(redis, k), ['h1', 'l0', 'h2', 'h3', 'h4', 'l1', 'h5', 'l2'], 'weight 3 vs 1 (h0 skipped without a turn)');
  assert.deepEqual(await redis.zrange(k.bullPrioritized, '0', '-1'), [], 'level 2 waits while level 0 has work');

  await redis.del(k.bullWait);
  await redis.hset(k.meta, 'concurrency', '4'); // BullMQ's global concurrency is the window
  assert.equal((await fairDispatch(redis, dispatchKeys(k), args)).released, 4);
  assert.deepEqual(await waitOrder(redis, k), ['l3', 'l4', 'l5']);
  const prioritized = await redis.zrange(k.bullPrioritized, '0', '-1', 'WITHSCORES');
  assert.equal(prioritized[0], 'p0', 'then level 2, into the prioritized set');
  assert.ok(Number(prioritized[1]) >= 2 * 0x100000000, 'scored as BullMQ scores priority 2');

  // Two batches of one tenant alternate; a capped tenant is skipped while at its cap.
  const k2 = (await scriptKit(t)).keys;
  const two = [...ids('m', 3).map((id) => job(id, 'multi', 'm')), ...ids('n', 3).map((id) => job(id, 'multi', 'n')), ...ids('c', 3).map((id) => job(id, 'capped', 'c'))];
  for (const p of two) await parkInBull(redis, k2, p.id);
  await redis.zadd(k2.tenantCalls('capped'), Date.now() + 60_000, 'op-in-flight');
  const capped = baseArgs(k2, { window: 5, caps: { capped: 2 } });
  assert.equal((await fairDispatch(redis, dispatchKeys(k2), { ...capped, park: two })).released, 5);
  assert.deepEqual(await waitOrder(redis, k2), ['c0', 'm0', 'n0', 'm1', 'n1'], 'capped gets 1 (1 call in flight + 1 released = its cap 2); multi alternates its batches');
  assert.deepEqual(await redis.zrange(k2.tenantReleased('capped'), '0', '-1'), ['c0']);
  await redis.zadd(k2.tenantCalls('capped'), Date.now() - 1, 'op-in-flight'); // its lease ran out (a dead worker's call)
  await redis.del(k2.bullWait);
  assert.equal((await fairDispatch(redis, dispatchKeys(k2), capped)).released, 3);
  assert.deepEqual(await waitOrder(redis, k2), ['c1', 'm2', 'n2'], 'a call whose lease ran out no longer counts');
  assert.equal(await redis.zcard(k2.tenantCalls('capped')), 0);
});

test('fair-dispatch: with the window full, a better priority level puts the worst released job back at the head of its flow', async (t) => {
  const { redis, keys: k } = await scriptKit(t);
  const low = ['lo0', 'lo1', 'lo2'].map((id) => job(id, 'acme', 'slow', 10));
  for (const p of low) await parkInBull(redis, k, p.id, 10);
  await redis.hset(k.bullJob('lo1'), 'data', JSON.stringify({ tenant: 'acme', batch: 'slow' }));
  assert.equal((await fairDispatch(redis, dispatchKeys(k), { ...baseArgs(k, { window: 2 }), park: low })).released, 2);
  assert.deepEqual(await redis.zrange(k.bullPrioritized, '0', '-1'), ['lo0', 'lo1']);

  await parkInBull(redis, k, 'hi0', 1);
  assert.deepEqual(await fairDispatch(redis, dispatchKeys(k), { ...baseArgs(k, { window: 2 }), park: [job('hi0', 'acme', 'fast', 1)] }), { parked: 1, released: 1, waiting: 2 });
  assert.deepEqual(await redis.zrange(k.bullPrioritized, '0', '-1'), ['hi0', 'lo0'], 'hi0 took the place of the worst one waiting');
  assert.deepEqual(await redis.lrange(k.fairFlow(10, 'acme', 'slow'), '0', '-1'), ['lo1', 'lo2'], 'lo1 is parked again, first in its flow');
  assert.equal(Number(await redis.zscore(k.bullDelayed, 'lo1')), PARKED_AT_MS * 0x1000);
  assert.ok(Number(await redis.hget(k.bullJob('lo1'), 'delay')) > 0);
  assert.deepEqual(await redis.zrange(k.fairLevels, '0', '-1'), ['10']);
});
