import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reopenJob } from '../../src/shared/redis-scripts/id-record.js';
import { scriptKit } from './script-kit.js';

test('reopen-job gives a failed id a new generation, a fresh budget and its place among the open jobs, once', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('j'), batch: keys.batch('b'), batchOpen: keys.batchOpen('b') };
  await redis.hset(k.idRecord, 'gen', '1', 'final', '1', 'state', 'failed', 'error', 'boom', 'result', '', 'finished', '9',
    'attempts', '3', 'pb', '1', 'started', '3', 'settled', '3', 'calls', '3', 'prompt', 'p');
  await redis.hset(k.batch, 'failed', '1', 'finished', '9', 'total', '1');

  assert.equal(await reopenJob(redis, k, { jobId: 'j', batchId: 'b', ttlS: 60 }), 2);
  assert.deepEqual(await redis.hgetall(k.idRecord), { gen: '2', attempts: '0', pb: '0', started: '0', settled: '0', calls: '3', prompt: 'p' });
  assert.deepEqual(await redis.hgetall(k.batch), { failed: '0', total: '1' });
  assert.deepEqual(await redis.smembers(k.batchOpen), ['j']);

  // Again (a re-send): the id is no longer failed, nothing changes.
  assert.equal(await reopenJob(redis, k, { jobId: 'j', batchId: 'b', ttlS: 60 }), 0);
  assert.equal(await redis.hget(k.idRecord, 'gen'), '2');
  assert.deepEqual(await redis.hgetall(k.batch), { failed: '0', total: '1' });
});

test('reopen-job leaves a completed id alone', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('ok'), batch: keys.batch('-'), batchOpen: keys.batchOpen('-') };
  await redis.hset(k.idRecord, 'gen', '1', 'final', '1', 'state', 'completed');
  assert.equal(await reopenJob(redis, k, { jobId: 'ok', ttlS: 60 }), 0);
  assert.deepEqual(await redis.hgetall(k.idRecord), { gen: '1', final: '1', state: 'completed' });
});

test('reopen-job re-opens an expired id like a failed one (SPEC §8)', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { idRecord: keys.idRecord('x'), batch: keys.batch('b'), batchOpen: keys.batchOpen('b') };
  await redis.hset(k.idRecord, 'gen', '1', 'final', '1', 'state', 'expired', 'error', 'expired: deadline …');
  await redis.hset(k.batch, 'expired', '1', 'finished', '9', 'total', '1');
  assert.equal(await reopenJob(redis, k, { jobId: 'x', batchId: 'b', ttlS: 60 }), 2);
  assert.equal(await redis.hget(k.idRecord, 'state'), null);
  assert.deepEqual(await redis.hgetall(k.batch), { expired: '0', total: '1' });
  assert.deepEqual(await redis.smembers(k.batchOpen), ['x']);
});
