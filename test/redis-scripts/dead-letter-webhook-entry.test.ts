import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadLetterWebhookEntry } from '../../src/shared/redis-scripts/webhook-dead-letter.js';
import { scriptKit } from './script-kit.js';

test('dead-letter-webhook-entry moves an entry once and keeps the newest entries only', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const k = { relaying: keys.webhookRelaying, dead: keys.webhookDead };
  const odd = 'not json \u0001 "quoted" ünï';
  await redis.rpush(k.relaying, 'keep-me', odd, 'x1', 'x2');
  assert.equal(await deadLetterWebhookEntry(redis, k, { entry: odd, keep: 2 }), true);
  assert.equal(await deadLetterWebhookEntry(redis, k, { entry: odd, keep: 2 }), false, 'a second relay (or a re-send) moves nothing');
  assert.deepEqual(await redis.lrange(k.dead, 0, -1), [odd]);
  await deadLetterWebhookEntry(redis, k, { entry: 'x1', keep: 2 });
  await deadLetterWebhookEntry(redis, k, { entry: 'x2', keep: 2 });
  assert.deepEqual(await redis.lrange(k.dead, 0, -1), ['x1', 'x2'], 'capped at the newest two');
  assert.deepEqual(await redis.lrange(k.relaying, 0, -1), ['keep-me']);
});
