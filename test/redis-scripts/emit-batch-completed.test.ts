import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emitBatchCompleted } from '../../src/shared/redis-scripts/batch-record.js';
import { scriptKit, streamEntries } from './script-kit.js';

test('emit-batch-completed emits each owed transition once, with the batch webhook; a re-send emits nothing', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { batch: keys.batch('b'), events: keys.events, batchesPending: keys.batchesPending, webhookOutbox: keys.webhookOutbox };
  await redis.hset(k.batch, 'fin_gen', '1', 'webhook_url', 'https://h.example/b', 'webhook_secret', 's');
  await redis.sadd(k.batchesPending, 'b');

  assert.deepEqual(await emitBatchCompleted(redis, k, { batchId: 'b', eventsMaxLen: 10, now: 5 }), { owed: true }, 'a check without data');
  assert.deepEqual(await redis.smembers(k.batchesPending), ['b'], 'owed: stays pending');

  const data = JSON.stringify({ batchId: 'b', total: 2 });
  const first = await emitBatchCompleted(redis, k, { batchId: 'b', eventsMaxLen: 10, data, now: 5 });
  assert.ok(first.eventId);
  assert.deepEqual(await streamEntries(redis, k.events), [{ id: first.eventId, type: 'batch.completed', data }]);
  assert.deepEqual((await redis.lrange(k.webhookOutbox, 0, -1)).map((e) => JSON.parse(e) as unknown), [
    { id: first.eventId, url: 'https://h.example/b', secret: 's', type: 'batch.completed', data, batchId: 'b', at: 5 },
  ]);
  assert.equal(await redis.hget(k.batch, 'emitted_gen'), '1');
  assert.deepEqual(await redis.smembers(k.batchesPending), []);

  await redis.sadd(k.batchesPending, 'b'); // a re-send, or a second worker
  assert.deepEqual(await emitBatchCompleted(redis, k, { batchId: 'b', eventsMaxLen: 10, data, now: 6 }), { eventId: '' });
  assert.equal((await streamEntries(redis, k.events)).length, 1);
  assert.equal(await redis.llen(k.webhookOutbox), 1);
  assert.deepEqual(await redis.smembers(k.batchesPending), [], 'nothing owed: dropped from the pending set');
});

test('emit-batch-completed without a batch webhook writes the event only', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { batch: keys.batch('q'), events: keys.events, batchesPending: keys.batchesPending, webhookOutbox: keys.webhookOutbox };
  await redis.hset(k.batch, 'fin_gen', '2', 'emitted_gen', '1');
  const reply = await emitBatchCompleted(redis, k, { batchId: 'q', eventsMaxLen: 10, data: '{}', now: 1 });
  assert.ok(reply.eventId);
  assert.equal(await redis.hget(k.batch, 'emitted_gen'), '2');
  assert.equal(await redis.exists(k.webhookOutbox), 0);
});
