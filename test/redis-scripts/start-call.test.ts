import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCall } from '../../src/shared/redis-scripts/call-ledger.js';
import { scriptKit } from './script-kit.js';

const LIMITER_MAX = 10;

test('start-call counts the call as started and in flight under its op id; the same op id re-sent counts once', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('j'), limiter: keys.limiter, batch: keys.batch('b'), calls: keys.idCalls('j'), tenantCalls: keys.tenantCalls('default'), tenantMegapixels: keys.tenantMegapixels('default') };
  await redis.hset(k.idRecord, 'gen', '1');
  const args = { opId: 'op-1', leaseMs: 60_000, ttlS: 60, limiterMax: LIMITER_MAX, batchId: 'b' };
  const before = Date.now();
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'ok' });
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'ok' }, 'the re-send answers the same');
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['1', '1']);
  const leaseEnd = Number(await redis.hget(k.calls, 'op-1'));
  assert.ok(leaseEnd >= before + 59_000 && leaseEnd <= Date.now() + 61_000, `lease end ${leaseEnd}`);
  assert.ok((await redis.ttl(k.calls)) > 0);
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'op-2' }), { verdict: 'ok' });
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['2', '2'], 'a new op id counts again');
});

test('start-call refuses a final generation, a 429 window and a spent budget, and counts nothing then', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('j'), limiter: keys.limiter, batch: keys.batch('b'), calls: keys.idCalls('j'), tenantCalls: keys.tenantCalls('default'), tenantMegapixels: keys.tenantMegapixels('default') };
  const args = { opId: 'op', leaseMs: 1000, ttlS: 60, limiterMax: LIMITER_MAX, batchId: 'b' };

  await redis.hset(k.idRecord, 'gen', '2', 'final', '2', 'state', 'cancelled');
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'final', state: 'cancelled' });
  await redis.hset(k.idRecord, 'final', '1'); // an earlier generation's: not final now

  await redis.set(k.limiter, String(LIMITER_MAX + 1), 'PX', 30_000); // queue.rateLimit's window
  const limited = await startCall(redis, k, args);
  assert.equal(limited.verdict, 'rate_limited');
  assert.ok(limited.verdict === 'rate_limited' && limited.ttlMs > 0 && limited.ttlMs <= 30_000);
  await redis.set(k.limiter, String(LIMITER_MAX), 'PX', 30_000); // an ordinary window: not a 429
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'fits' }), { verdict: 'ok' });
  await redis.del(k.limiter);

  await redis.hset(k.batch, 'output_mp', '1.5', 'input_mp', '0.5');
  assert.deepEqual(await startCall(redis, k, { ...args, defaultMaxMp: 2 }), { verdict: 'budget', maxMp: 2 }, 'the default budget');
  await redis.hset(k.batch, 'max_mp', '3');
  assert.deepEqual(await startCall(redis, k, { ...args, defaultMaxMp: 2, opId: 'own' }), { verdict: 'ok' }, "the batch's own budget wins");
  await redis.hset(k.batch, 'max_mp', '2');
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'over' }), { verdict: 'budget', maxMp: 2 });
  assert.deepEqual(await startCall(redis, k, { ...args, batchId: undefined, opId: 'no-batch' }), { verdict: 'ok' }, 'no batch, no budget');

  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['3', '3']);
  assert.deepEqual(Object.keys(await redis.hgetall(k.calls)).sort(), ['fits', 'no-batch', 'own']);
});

test('start-call refuses a generation whose deadline passed before any call started (expired), but not once a call started', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('d'), limiter: keys.limiter, batch: keys.batch('b'), calls: keys.idCalls('d'), tenantCalls: keys.tenantCalls('default'), tenantMegapixels: keys.tenantMegapixels('default') };
  const args = { opId: 'op', leaseMs: 1000, ttlS: 60, limiterMax: LIMITER_MAX, batchId: 'b' };
  const past = Date.now() - 5000;
  await redis.hset(k.idRecord, 'gen', '1', 'deadline', String(past));
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'expired', deadline: past });
  assert.equal(await redis.hget(k.idRecord, 'started'), null, 'nothing counted');
  await redis.hset(k.idRecord, 'deadline', String(Date.now() + 60_000));
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'ok' }, 'a deadline not passed lets the call start');
  await redis.hset(k.idRecord, 'deadline', String(past));
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'retry' }), { verdict: 'ok' }, 'a retry after a started call is not expired');
});

test("start-call checks the tenant's limits with the call: its megapixels today, then its calls in flight fleet-wide", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('j'), limiter: keys.limiter, batch: keys.batch('-'), calls: keys.idCalls('j'), tenantCalls: keys.tenantCalls('acme'), tenantMegapixels: keys.tenantMegapixels('acme') };
  const args = { opId: 'op-1', leaseMs: 60_000, ttlS: 60, limiterMax: LIMITER_MAX, tenant: 'acme', tenantCap: 2, tenantMaxMp: 5 };
  const today = String(Math.floor(Date.now() / 86_400_000));
  await redis.hset(k.tenantMegapixels, today, '4.5', String(Number(today) - 1), '100');
  assert.deepEqual(await startCall(redis, k, args), { verdict: 'ok' }, "yesterday's megapixels do not count");
  assert.equal(Number(await redis.zscore(k.tenantCalls, 'op-1')), Number(await redis.hget(k.calls, 'op-1')), 'in flight for the tenant too, same lease end');
  await redis.zadd(k.tenantCalls, Date.now() - 1, 'ran-out'); // a dead run's call: its lease ended
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'op-2' }), { verdict: 'ok' });
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'op-3' }), { verdict: 'tenant_limited', tenant: 'acme' }, 'two in flight: the cap');
  assert.deepEqual((await redis.zrange(k.tenantCalls, '0', '-1')).sort(), ['op-1', 'op-2']);
  await redis.hset(k.tenantMegapixels, today, '5');
  assert.deepEqual(await startCall(redis, k, { ...args, opId: 'op-4', tenantCap: undefined }), { verdict: 'tenant_budget', tenant: 'acme', maxMp: 5 });
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['2', '2']);
});
