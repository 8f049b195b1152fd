import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expireJob } from '../../src/shared/redis-scripts/finalisation.js';
import { finalisationKeys, scriptKit, streamEntries } from './script-kit.js';

const data = (jobId: string) => JSON.stringify({ jobId, batchId: 'b', tenant: 'acme', error: 'expired: …', attempts: 0, possibly_billed: 0 });
const args = (jobId: string, deadline: number) => ({
  jobId, batchId: 'b', tenant: 'acme', deadline, error: `expired: deadline ${new Date(deadline).toISOString()} passed before the job started`,
  data: data(jobId), webhook: { url: 'https://hooks.example/x', secret: 's' }, eventsMaxLen: 10, ttlS: 60, now: 42,
});

test('expire-job ends a due job that started no call, once: final state, one job.expired with its webhook, batch count, tenant counters', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { ...finalisationKeys(keys, 'j', 'b'), deadlines: keys.deadlines };
  const due = Date.now() - 1000;
  await redis.hset(keys.idRecord('j'), 'gen', '1', 'tenant', 'acme', 'deadline', String(due));
  await redis.sadd(keys.batchOpen('b'), 'j');
  await redis.zadd(keys.deadlines, due, 'j');
  await redis.hset(keys.tenantStats, 'acme:open', '1');

  const first = await expireJob(redis, k, args('j', due));
  assert.equal(first.outcome, 'expired');
  assert.equal(first.batchFinished, true);
  assert.ok(first.eventId);
  assert.deepEqual(await redis.hmget(keys.idRecord('j'), 'state', 'final', 'error'), ['expired', '1', args('j', due).error]);
  assert.deepEqual(await redis.hmget(keys.batch('b'), 'expired', 'fin_gen'), ['1', '1']);
  assert.deepEqual(await redis.smembers(keys.batchesPending), ['b']);
  assert.equal(await redis.hget(keys.stats, 'expired'), '1');
  assert.deepEqual(await redis.hmget(keys.tenantStats, 'acme:expired', 'acme:open'), ['1', '0']);
  assert.equal(await redis.zscore(keys.deadlines, 'j'), null, 'it leaves the zset');
  const events = await streamEntries(redis, keys.events);
  assert.deepEqual(events.map((e) => [e.type, e.data]), [['job.expired', data('j')]]);
  const outbox = (await redis.lrange(keys.webhookOutbox, 0, -1)).map((s) => JSON.parse(s) as { type: string; url: string });
  assert.deepEqual(outbox.map((o) => [o.type, o.url]), [['job.expired', 'https://hooks.example/x']]);

  // Again (a second sweeper, or a worker at its call start): nothing more.
  await redis.zadd(keys.deadlines, due, 'j');
  assert.equal((await expireJob(redis, k, args('j', due))).outcome, 'final');
  assert.equal((await streamEntries(redis, keys.events)).length, 1);
  assert.equal(await redis.hget(keys.stats, 'expired'), '1');
  assert.equal(await redis.zscore(keys.deadlines, 'j'), null);
  assert.equal((await expireJob(redis, k, args('j', due))).outcome, 'gone');
});

test('expire-job leaves a job whose call started (it finishes) and one not due or whose deadline moved', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const due = Date.now() - 1000;
  const later = Date.now() + 3_600_000;

  const busy = { ...finalisationKeys(keys, 'busy', 'b'), deadlines: keys.deadlines };
  await redis.hset(keys.idRecord('busy'), 'gen', '1', 'started', '1');
  await redis.zadd(keys.deadlines, due, 'busy');
  assert.equal((await expireJob(redis, busy, args('busy', due))).outcome, 'started');
  assert.equal(await redis.zscore(keys.deadlines, 'busy'), null);
  assert.equal(await redis.hget(keys.idRecord('busy'), 'state'), null);

  const wait = { ...finalisationKeys(keys, 'wait', 'b'), deadlines: keys.deadlines };
  await redis.hset(keys.idRecord('wait'), 'gen', '1');
  await redis.zadd(keys.deadlines, later, 'wait');
  assert.equal((await expireJob(redis, wait, args('wait', later))).outcome, 'not_due', 'Redis\'s clock says not yet');
  assert.equal((await expireJob(redis, wait, args('wait', due))).outcome, 'not_due', 'the caller read an older deadline');
  assert.equal(await redis.zscore(keys.deadlines, 'wait'), String(later));
  assert.equal(await redis.exists(keys.events, keys.stats), 0);
});
