import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addBatchJobs } from '../../src/shared/redis-scripts/batch-record.js';
import { scriptKit } from './script-kit.js';

test('add-batch-jobs adds new members once, with the batch options; the same call re-sent adds nothing', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { batch: keys.batch('b'), batchJobs: keys.batchJobs('b'), batchOpen: keys.batchOpen('b') };
  const args = { jobIds: ['a', 'b', 'c'], now: 100, maxMp: 4.5, webhook: { url: 'https://h.example/b', secret: 's' } };
  assert.equal(await addBatchJobs(redis, k, args), 3);
  assert.equal(await addBatchJobs(redis, k, { ...args, now: 200 }), 0, 'the re-send adds nothing');
  assert.deepEqual(await redis.hgetall(k.batch), { created: '100', max_mp: '4.5', webhook_url: 'https://h.example/b', webhook_secret: 's', total: '3' });
  assert.deepEqual((await redis.smembers(k.batchJobs)).sort(), ['a', 'b', 'c']);
  assert.deepEqual((await redis.smembers(k.batchOpen)).sort(), ['a', 'b', 'c']);

  // A finished batch that gets a new member is unfinished again; options stay unless given.
  await redis.hset(k.batch, 'finished', '150');
  await redis.srem(k.batchOpen, 'a', 'b', 'c');
  assert.equal(await addBatchJobs(redis, k, { jobIds: ['c', 'd'], now: 300 }), 1);
  assert.deepEqual(await redis.hgetall(k.batch), { created: '100', max_mp: '4.5', webhook_url: 'https://h.example/b', webhook_secret: 's', total: '4' });
  assert.deepEqual(await redis.smembers(k.batchOpen), ['d']);
  assert.equal(await addBatchJobs(redis, k, { jobIds: [], now: 400 }), 0);
});
