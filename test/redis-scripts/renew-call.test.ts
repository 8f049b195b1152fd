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
