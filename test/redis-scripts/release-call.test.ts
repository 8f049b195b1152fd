import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beginRun, releaseCall, startCall } from '../../src/shared/redis-scripts/call-ledger.js';
import { ledgerKeys, scriptKit } from './script-kit.js';

const START = { opId: 'op-1', leaseMs: 60_000, limiterMax: 10 };

test('release-call undoes exactly the start of an unsent call (no attempt, nothing possibly billed); re-sent, it applies once', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', 'b');
  const before = await beginRun(redis, k, { ttlS: 60, batchId: 'b', now: 1, start: START });
  assert.deepEqual(before.start, { verdict: 'ok' });
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['1', '1']);

  const release = { idRecord: k.idRecord, calls: k.calls, tenantCalls: k.tenantCalls };
  assert.deepEqual(await releaseCall(redis, release, { opId: 'op-1' }), { released: true });
  assert.deepEqual(await releaseCall(redis, release, { opId: 'op-1' }), { released: false }, 'the re-send changes nothing');
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls', 'attempts', 'pb', 'settled'), ['0', '0', null, null, null]);
  assert.equal(await redis.hexists(k.calls, 'op-1'), 0);
  assert.equal(await redis.hget(k.stats, 'possibly_billed'), null);
  assert.equal(await redis.hget(k.batch, 'possibly_billed'), null);

  // The job is back to "never started a call": the next run starts one again.
  const next = await beginRun(redis, k, { ttlS: 60, batchId: 'b', now: 2, start: { ...START, opId: 'op-2' } });
  assert.equal(next.record.calls, '0');
  assert.deepEqual(next.start, { verdict: 'ok' });
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls'), ['1', '1']);
});

test('release-call leaves a settled call and one another run counted orphaned as they are', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j');
  const startKeys = { idRecord: k.idRecord, limiter: k.limiter, batch: k.batch, calls: k.calls, tenantCalls: k.tenantCalls, tenantMegapixels: k.tenantMegapixels };
  await startCall(redis, startKeys, { opId: 'orphan', leaseMs: 1, ttlS: 60, limiterMax: 10 });
  await new Promise((r) => setTimeout(r, 5));
  assert.equal((await beginRun(redis, k, { ttlS: 60, now: 1 })).orphanedCalls, 1, 'its lease ran out: counted possibly billed');
  await redis.hset(k.calls, 'done', 's');
  const release = { idRecord: k.idRecord, calls: k.calls, tenantCalls: k.tenantCalls };
  assert.deepEqual(await releaseCall(redis, release, { opId: 'orphan' }), { released: false });
  assert.deepEqual(await releaseCall(redis, release, { opId: 'done' }), { released: false });
  assert.deepEqual(await releaseCall(redis, release, { opId: 'unknown' }), { released: false });
  assert.deepEqual(await redis.hmget(k.calls, 'orphan', 'done'), ['o', 's']);
  assert.deepEqual(await redis.hmget(k.idRecord, 'started', 'calls', 'attempts', 'pb'), ['1', '1', '1', '1']);
});

test("release-call takes the unsent call out of its tenant's calls in flight", async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = ledgerKeys(keys, 'j', '-', 'acme');
  await redis.hset(k.calls, 'op', String(Date.now() + 60_000));
  await redis.zadd(k.tenantCalls, Date.now() + 60_000, 'op');
  assert.deepEqual(await releaseCall(redis, { idRecord: k.idRecord, calls: k.calls, tenantCalls: k.tenantCalls }, { opId: 'op' }), { released: true });
  assert.equal(await redis.zcard(k.tenantCalls), 0);
});
