import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beginRun } from '../../src/shared/redis-scripts/call-ledger.js';
import { ledgerKeys, scriptKit } from './script-kit.js';

test('begin-run counts calls whose lease ran out as orphaned, once, and returns the id record by name', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', 'b');
  await redis.hset(k.idRecord, 'gen', '1', 'prompt', 'a fox', 'attempts', '1', 'pb', '0', 'settled', '1', 'started', '3');
  // One call whose lease ended long ago (its run died), one alive, one settled.
  await redis.hset(k.calls, 'dead', '1000', 'alive', String(Date.now() + 600_000), 'done', 's');

  const reply = await beginRun(redis, k, { ttlS: 60, batchId: 'b', now: 1234 });
  assert.equal(reply.orphanedCalls, 1);
  assert.equal(reply.record.prompt, 'a fox');
  assert.equal(reply.record.attempts, '2');
  assert.deepEqual(await redis.hmget(k.idRecord, 'attempts', 'pb', 'settled', 'started'), ['2', '1', '2', '3']);
  assert.deepEqual(await redis.hmget(k.calls, 'dead', 'done'), ['o', 's']);
  assert.ok(Number(await redis.hget(k.calls, 'alive')) > Date.now(), 'a live lease stays in flight');
  assert.equal(await redis.hget(k.stats, 'possibly_billed'), '1');
  assert.deepEqual(await redis.hmget(k.batch, 'possibly_billed', 'started'), ['1', '1234']);
  assert.ok((await redis.ttl(k.idRecord)) > 0);

  // A second run (or a re-sent script) finds the call already counted.
  const again = await beginRun(redis, k, { ttlS: 60, batchId: 'b', now: 9999 });
  assert.equal(again.orphanedCalls, 0);
  assert.deepEqual(await redis.hmget(k.idRecord, 'attempts', 'pb'), ['2', '1']);
  assert.deepEqual(await redis.hmget(k.batch, 'possibly_billed', 'started'), ['1', '1234'], 'the batch keeps its first start');
});

test('begin-run without a batch leaves the batch hash alone and creates the record', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'solo');
  await redis.hset(k.calls, 'dead', '1000');
  const reply = await beginRun(redis, k, { ttlS: 60, now: 1 });
  assert.equal(reply.orphanedCalls, 1);
  assert.deepEqual(reply.record, { gen: '1', attempts: '1', pb: '1', settled: '1' });
  assert.equal(await redis.exists(k.batch), 0);
  assert.equal(await redis.hget(k.stats, 'possibly_billed'), '1');
});

const START = { opId: 'op-1', leaseMs: 60_000, limiterMax: 10 };

test('begin-run with start: a first run gets its call started in the same round trip (record read before it); a re-send counts once', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', 'b');
  await redis.hset(k.idRecord, 'gen', '1', 'prompt', 'a fox');
  const args = { ttlS: 60, batchId: 'b', now: 5, start: START };
  const before = Date.now();
  const reply = await beginRun(redis, k, args);
  assert.deepEqual(reply.start, { verdict: 'ok' });
  assert.equal(reply.record.calls, undefined, 'the record as the run found it: no call ever started');
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['1', '1']);
  const leaseEnd = Number(await redis.hget(k.calls, 'op-1'));
  assert.ok(leaseEnd >= before + 59_000 && leaseEnd <= Date.now() + 61_000, `lease end ${leaseEnd}`);

  const resent = await beginRun(redis, k, args);
  assert.deepEqual(resent.start, { verdict: 'ok' }, 'the re-send answers as the first time');
  assert.equal(resent.record.calls, '0');
  assert.equal(resent.orphanedCalls, 0);
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['1', '1'], 'counted once');
});

test('begin-run with start starts nothing on a later run, for a final generation, in a 429 window or over the budget', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', 'b');
  const args = { ttlS: 60, batchId: 'b', now: 5, start: START };

  await redis.hset(k.idRecord, 'gen', '1', 'calls', '1', 'started', '1');
  const later = await beginRun(redis, k, args);
  assert.equal(later.start, undefined, 'a call was started before: the run takes the later-run path');
  assert.equal(later.record.calls, '1');
  await redis.hset(k.idRecord, 'calls', '0', 'started', '0');

  await redis.hset(k.idRecord, 'final', '1', 'state', 'cancelled');
  assert.deepEqual((await beginRun(redis, k, args)).start, { verdict: 'final', state: 'cancelled' });
  await redis.hdel(k.idRecord, 'final', 'state');

  await redis.set(k.limiter, '11', 'PX', 30_000);
  assert.equal((await beginRun(redis, k, args)).start?.verdict, 'rate_limited');
  await redis.del(k.limiter);

  await redis.hset(k.batch, 'output_mp', '2', 'max_mp', '2');
  assert.deepEqual((await beginRun(redis, k, args)).start, { verdict: 'budget', maxMp: 2 });

  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['0', '0'], 'nothing counted');
  assert.equal(await redis.exists(k.calls), 0);
});

test("begin-run takes the job out of its tenant's released set and starts its call under the tenant's limits", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', '-', 'acme');
  await redis.zadd(k.tenantReleased, Date.now(), 'j', Date.now(), 'other');
  await redis.zadd(k.tenantCalls, Date.now() + 60_000, 'busy');
  const run = await beginRun(redis, k, { jobId: 'j', ttlS: 60, now: Date.now(), start: { opId: 'op', leaseMs: 1000, limiterMax: 10, tenant: 'acme', tenantCap: 1 } });
  assert.deepEqual(run.start, { verdict: 'tenant_limited', tenant: 'acme' });
  assert.deepEqual(await redis.zrange(k.tenantReleased, '0', '-1'), ['other']);
});
