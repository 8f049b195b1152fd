import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settleCall } from '../../src/shared/redis-scripts/call-ledger.js';
import { ledgerKeys, scriptKit } from './script-kit.js';

const SETTLE = { spendsAttempt: true, ambiguous: false, ttlS: 60, batchId: 'b', outputMp: 1.25, inputMp: 0.5, costMicroUsd: 40_000 };

test('settle-call moves the ledger of the job, the fleet and the batch once; the same op id re-sent changes nothing', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', 'b');
  await redis.hset(k.idRecord, 'gen', '1', 'started', '1');
  await redis.hset(k.calls, 'op-1', String(Date.now() + 60_000));

  assert.deepEqual(await settleCall(redis, k, { ...SETTLE, opId: 'op-1' }), { attempts: 1, possiblyBilled: 0 });
  assert.deepEqual(await settleCall(redis, k, { ...SETTLE, opId: 'op-1' }), { attempts: 1, possiblyBilled: 0 }, 'the re-send answers the same');
  assert.deepEqual(await redis.hmget(k.idRecord, 'settled', 'attempts', 'pb'), ['1', '1', '0']);
  assert.equal(await redis.hget(k.calls, 'op-1'), 's');
  for (const key of [k.stats, k.batch]) {
    assert.deepEqual(await redis.hmget(key, 'output_mp', 'input_mp', 'cost_micro_usd', 'possibly_billed'), ['1.25', '0.5', '40000', null], key);
  }

  // An ambiguous call (a timeout): possibly billed, no megapixels reported.
  await redis.hset(k.calls, 'op-2', String(Date.now() + 60_000));
  const ambiguous = { ...SETTLE, opId: 'op-2', ambiguous: true, outputMp: 0, inputMp: 0, costMicroUsd: 0 };
  assert.deepEqual(await settleCall(redis, k, ambiguous), { attempts: 2, possiblyBilled: 1 });
  assert.deepEqual(await settleCall(redis, k, ambiguous), { attempts: 2, possiblyBilled: 1 });
  assert.deepEqual(await redis.hmget(k.stats, 'possibly_billed', 'output_mp'), ['1', '1.25']);
  assert.deepEqual(await redis.hmget(k.batch, 'possibly_billed', 'output_mp'), ['1', '1.25']);
});

test('settle-call of a call counted orphaned adds no attempt again but records its megapixels; no batch, no batch ledger', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j');
  await redis.hset(k.idRecord, 'gen', '1', 'attempts', '1', 'pb', '1', 'settled', '1');
  await redis.hset(k.calls, 'late', 'o');
  const reply = await settleCall(redis, k, { ...SETTLE, batchId: undefined, opId: 'late', ambiguous: true });
  assert.deepEqual(reply, { attempts: 1, possiblyBilled: 1 });
  assert.deepEqual(await redis.hmget(k.idRecord, 'settled', 'attempts', 'pb'), ['1', '1', '1']);
  assert.deepEqual(await redis.hmget(k.stats, 'output_mp', 'possibly_billed'), ['1.25', null]);
  assert.equal(await redis.exists(k.batch), 0);
});

test("settle-call adds a call's reported megapixels and cost to its tenant's UTC day, once", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'tj', 'b');
  await redis.hset(k.idRecord, 'gen', '1', 'started', '1');
  await redis.hset(k.calls, 'op', String(Date.now() + 60_000));
  const s = { ...SETTLE, opId: 'op', tenant: 'acme', day: '2026-12-05' };
  await settleCall(redis, k, s);
  await settleCall(redis, k, s);
  assert.deepEqual(await redis.hgetall(keys.tenantStats), { 'acme:mp:2026-12-05': '1.75', 'acme:cost:2026-12-05': '40000' });
});

test("settle-call takes the call out of its tenant's calls in flight and adds the reported megapixels to the tenant's day", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', '-', 'acme');
  await redis.hset(k.calls, 'op', String(Date.now() + 60_000));
  await redis.zadd(k.tenantCalls, Date.now() + 60_000, 'op', Date.now() + 60_000, 'other');
  const settle = { opId: 'op', spendsAttempt: true, ambiguous: false, ttlS: 60, outputMp: 1.5, inputMp: 0.5, costMicroUsd: 1 };
  await settleCall(redis, k, settle);
  await settleCall(redis, k, settle); // re-sent: counted once
  assert.deepEqual(await redis.zrange(k.tenantCalls, '0', '-1'), ['other']);
  const today = String(Math.floor(Date.now() / 86_400_000));
  assert.equal(await redis.hget(k.tenantMegapixels, today), '2');
  assert.ok((await redis.ttl(k.tenantMegapixels)) > 86_400);
});
