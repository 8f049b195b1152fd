import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redisKeys } from '../../src/shared/keys.js';
import { createRedis } from '../../src/shared/redis.js';
import { WebhookService } from '../../src/worker/webhooks.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * One unusable entry in the webhook outbox (not JSON, or JSON without what a delivery
 * needs) must not stop the relay: it is set aside in `{prefix}:webhooks:dead` (reported
 * as webhook.failed when it names its job and URL) and every entry behind it goes on.
 */
const SECRET = 'relay-secret-do-not-leak';
const hookEnv = { WEBHOOK_ALLOWED_HOSTS: 'localhost', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_TIMEOUT_MS: '2000', WEBHOOK_ATTEMPTS: '3' };

function entry(id: string, jobId: string, url: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ id, url, secret: SECRET, type: 'job.completed', data: JSON.stringify({ jobId }), jobId, at: Date.now(), ...extra });
}

test('the relay sets unusable outbox entries aside and queues every delivery behind them', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { env: hookEnv });
  const config = h.config('worker');
  const redis = createRedis(config, { role: 'worker' });
  redis.on('error', () => undefined);
  const keys = redisKeys(config.queue.prefix, config.queue.name);
  const svc = new WebhookService({ config, redis, keys, log: h.logger });
  t.after(async () => {
    await svc.close();
    redis.disconnect();
  });
  const url = 'http://localhost:9/hook?token=abc';
  const garbage = '{"id": "1-0", "url": "http://local'; // cut in half
  const noSecret = JSON.stringify({ id: '3-0', url, type: 'job.completed', data: '{}', jobId: 'no-secret', at: Date.now() });
  const badData = entry('4-0', 'bad-data', url, { data: '{"jobId": ' });
  const staleGarbage = 'left half-moved by a dead relay';
  await redis.rpush(keys.webhookRelaying, staleGarbage);
  await redis.rpush(keys.webhookOutbox, garbage, entry('2-0', 'first', url), noSecret, badData, '42', entry('5-0', 'second', url));

  svc.kick();
  await waitFor(async () => (await redis.llen(keys.webhookOutbox)) === 0 && (await redis.llen(keys.webhookRelaying)) === 0, { timeoutMs: 10_000, what: 'the outbox and the relaying list to empty' });
  for (const id of ['2-0', '5-0']) assert.ok(await svc.queue.getJob(`wh-${id}`), `delivery ${id} queued`);
  assert.deepEqual((await svc.queue.getJobs(['waiting', 'delayed', 'prioritized'])).map((j) => j.id).sort(), ['wh-2-0', 'wh-5-0']);
  assert.deepEqual(await redis.lrange(keys.webhookDead, 0, -1), [staleGarbage, garbage, noSecret, badData, '42']);

  const failed = (await h.events()).filter((e) => e.type === 'webhook.failed');
  assert.deepEqual(
    failed.map((e) => e.data),
    [
      { jobId: 'no-secret', url: 'http://localhost:9/hook', attempts: 0, error: 'webhook outbox entry unusable (missing or invalid secret): not delivered' },
      { jobId: 'bad-data', url: 'http://localhost:9/hook', attempts: 0, error: 'webhook outbox entry unusable (its data is not valid JSON): not delivered' },
    ],
  );
  assert.ok(!JSON.stringify(failed).includes(SECRET), 'the secret is never in an event');
  assert.ok(!JSON.stringify(failed).includes('token=abc'), 'nor the URL\'s query string');

  // The relay goes on, and the same bad entry pushed again is set aside again but reported once.
  await redis.rpush(keys.webhookOutbox, badData, entry('6-0', 'third', url));
  svc.kick();
  await waitFor(async () => (await svc.queue.getJob('wh-6-0')) !== undefined && (await redis.llen(keys.webhookRelaying)) === 0, { timeoutMs: 10_000, what: 'the next delivery' });
  assert.equal((await redis.lrange(keys.webhookDead, 0, -1)).length, 6);
  assert.equal((await h.events()).filter((e) => e.type === 'webhook.failed').length, 2, 'reported once');
});

test('corrupt outbox entries ahead of real ones: every real webhook is delivered, the corrupt ones are set aside', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: hookEnv });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const hook = (path: string) => rx.url(path).replace('127.0.0.1', 'localhost');
  const keys = redisKeys(h.prefix, h.queueName);
  const garbage = 'not json at all';
  const halfValid = JSON.stringify({ id: '1-0', url: hook('/half'), secret: SECRET, type: 'job.completed', jobId: 'half', at: Date.now() }); // no data
  await h.redis.rpush(keys.webhookOutbox, garbage, halfValid);

  const producer = h.producer();
  const ids = ['wh-a', 'wh-b', 'wh-c'];
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: `relay ${id}`, webhook_url: hook(`/${id}`), webhook_secret: SECRET })));
  await h.worker({ WORKER_CONCURRENCY: '2' });
  for (const id of ids) assert.equal((await producer.waitFor(id, { timeoutMs: 30_000 })).state, 'completed');

  await waitFor(() => ids.every((id) => rx.deliveries.some((d) => d.path === `/${id}`)), { timeoutMs: 30_000, what: 'every real delivery' });
  for (const id of ids) {
    const got = rx.deliveries.filter((d) => d.path === `/${id}`);
    assert.equal(got.length, 1, id);
    assert.equal((JSON.parse(got[0]?.body ?? '{}') as { data: { jobId: string } }).data.jobId, id);
  }
  assert.equal(rx.deliveries.filter((d) => d.path === '/half').length, 0, 'the unusable entry is not delivered');
  assert.deepEqual(await h.redis.lrange(keys.webhookDead, 0, -1), [garbage, halfValid]);
  assert.equal(await h.redis.llen(keys.webhookRelaying), 0);
  const failed = (await h.events()).filter((e) => e.type === 'webhook.failed');
  assert.deepEqual(failed.map((e) => e.data), [{ jobId: 'half', url: hook('/half'), attempts: 0, error: 'webhook outbox entry unusable (missing or invalid data): not delivered' }]);
  assert.ok(!JSON.stringify(failed).includes(SECRET));
});
