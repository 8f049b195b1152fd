import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renewCall } from '../../src/shared/redis-scripts/call-ledger.js';
import { scriptKit } from './script-kit.js';

test('renew-call extends the lease of a call in flight and of no other', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const calls = keys.idCalls('j');
  await redis.hset(calls, 'flying', '1000', 'settled', 's', 'orphaned', 'o');
  const before = Date.now();
  assert.equal(await renewCall(redis, { calls, tenantCalls: keys.tenantCalls('default') }, { opId: 'flying', leaseMs: 30_000 }), true);
  const leaseEnd = Number(await redis.hget(calls, 'flying'));
  assert.ok(leaseEnd >= before + 29_000 && leaseEnd <= Date.now() + 31_000, `lease end ${leaseEnd}`);
  assert.equal(await renewCall(redis, { calls, tenantCalls: keys.tenantCalls('default') }, { opId: 'flying', leaseMs: 30_000 }), true, 'a re-send renews again, harmlessly');
  assert.equal(await renewCall(redis, { calls, tenantCalls: keys.tenantCalls('default') }, { opId: 'settled', leaseMs: 30_000 }), false);
  assert.equal(await renewCall(redis, { calls, tenantCalls: keys.tenantCalls('default') }, { opId: 'orphaned', leaseMs: 30_000 }), false);
  assert.equal(await renewCall(redis, { calls, tenantCalls: keys.tenantCalls('default') }, { opId: 'unknown', leaseMs: 30_000 }), false);
  assert.deepEqual(await redis.hmget(calls, 'settled', 'orphaned', 'unknown'), ['s', 'o', null]);
});

test("renew-call moves the call's lease in its tenant's calls in flight, and adds no call there", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const calls = keys.idCalls('j');
  const tenantCalls = keys.tenantCalls('acme');
  await redis.hset(calls, 'op', '1000', 'gone', '1000');
  await redis.zadd(tenantCalls, 1000, 'op');
  assert.equal(await renewCall(redis, { calls, tenantCalls }, { opId: 'op', leaseMs: 30_000 }), true);
  assert.equal(await renewCall(redis, { calls, tenantCalls }, { opId: 'gone', leaseMs: 30_000 }), true);
  assert.equal(Number(await redis.zscore(tenantCalls, 'op')), Number(await redis.hget(calls, 'op')));
  assert.deepEqual(await redis.zrange(tenantCalls, '0', '-1'), ['op'], 'XX: a call not listed for the tenant is not added');
});
