import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { startHarness, waitFor } from '../helpers/harness.js';
import { testResolver } from '../helpers/test-resolver.js';
import { startWebhookReceiver, type Delivery } from '../helpers/webhook-receiver.js';

const RAW_SECRET = 'raw secret: ünïcode bytes';
const WHSEC = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;

/** Verify with the standardwebhooks package itself; returns the parsed `{ type, data }`. */
function verify(d: Delivery, secret: string): { type: string; data: Record<string, unknown> } {
  const wh = secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(new TextEncoder().encode(secret), { format: 'raw' });
  return wh.verify(d.body, d.headers as Record<string, string>) as { type: string; data: Record<string, unknown> };
}

// Receivers are reached through names: `localhost` (system DNS) and a made-up name
// the worker's resolver answers with 127.0.0.1 — never only through an IP literal.
const hookEnv = { WEBHOOK_ALLOWED_HOSTS: 'localhost,hooks.example.test', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_TIMEOUT_MS: '700', WEBHOOK_ATTEMPTS: '4' };

test('job webhooks are signed per Standard Webhooks (raw and whsec_ secrets) and carry the stream event', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: hookEnv });
  h.fake.inject({ prompt: 'refused', fault: { type: 'moderation' } });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const producer = h.producer();
  await h.worker({}, { resolver: testResolver() });
  await producer.enqueueBulk([
    { id: 'raw-1', prompt: 'raw', webhook_url: rx.url('/raw'), webhook_secret: RAW_SECRET, metadata: { n: 1 } },
    { id: 'whsec-1', prompt: 'whsec', webhook_url: rx.url('/whsec'), webhook_secret: WHSEC },
    { id: 'fails-1', prompt: 'refused', webhook_url: rx.url('/fails'), webhook_secret: WHSEC },
    { id: 'named-1', prompt: 'named', webhook_url: rx.url('/named', 'hooks.example.test'), webhook_secret: WHSEC },
  ]);
  await waitFor(() => rx.deliveries.length >= 4, { what: 'four deliveries' });
  const byPath = (p: string) => rx.deliveries.filter((d) => d.path === p);
  const raw = verify(byPath('/raw')[0] as Delivery, RAW_SECRET);
  assert.equal(raw.type, 'job.completed');
  assert.equal(raw.data.jobId, 'raw-1');
  assert.deepEqual(raw.data.metadata, { n: 1 });
  assert.throws(() => verify(byPath('/raw')[0] as Delivery, WHSEC), /signature/i, 'a wrong key does not verify');
  const whsec = verify(byPath('/whsec')[0] as Delivery, WHSEC);
  assert.equal(whsec.type, 'job.completed');
  const failed = verify(byPath('/fails')[0] as Delivery, WHSEC);
  assert.equal(failed.type, 'job.failed');
  assert.equal(failed.data.error, 'permanent: HTTP 400 sensitive_check_error: prompt refused by moderation');
  // Through a name on both paths: localhost (the system's DNS) and a made-up name.
  assert.match(String(byPath('/raw')[0]?.headers.host), /^localhost:\d+$/);
  const named = byPath('/named')[0] as Delivery;
  assert.match(String(named.headers.host), /^hooks\.example\.test:\d+$/);
  assert.equal(verify(named, WHSEC).data.jobId, 'named-1');
  assert.equal((await h.events()).filter((e) => e.type === 'webhook.failed').length, 0);
  // The body's data is the stream entry's data.
  const events = await h.events();
  const streamed = events.find((e) => e.type === 'job.completed' && (e.data as { jobId: string }).jobId === 'raw-1');
  assert.deepEqual(raw.data, streamed?.data);
  assert.equal(byPath('/raw')[0]?.headers['webhook-id'], `evt_${streamed?.id}`);
  assert.match(String(byPath('/raw')[0]?.headers['webhook-signature']), /^v1,[A-Za-z0-9+/]+=*$/);
});

test('a receiver that answers 500 twice gets the event on the third try, same webhook-id each time', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: hookEnv });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  rx.answer = (_path, nth) => (nth < 2 ? 500 : 204);
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'retry-hook', prompt: 'p', webhook_url: rx.url(), webhook_secret: WHSEC });
  await waitFor(() => rx.deliveries.length === 3, { what: 'three tries' });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(rx.deliveries.length, 3, 'no fourth try after the 2xx');
  assert.equal(new Set(rx.deliveries.map((d) => d.headers['webhook-id'])).size, 1);
  for (const d of rx.deliveries) assert.equal(verify(d, WHSEC).data.jobId, 'retry-hook');
  assert.ok((rx.deliveries[2]?.at ?? 0) - (rx.deliveries[0]?.at ?? 0) >= 100, 'retries back off');
  assert.equal((await h.events()).filter((e) => e.type === 'webhook.failed').length, 0);
});

test('a receiver that never answers leads to webhook.failed while the job stays completed', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: hookEnv });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  rx.answer = () => 'hang';
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'silent', prompt: 'p', webhook_url: rx.url('/silent'), webhook_secret: WHSEC });
  assert.equal((await producer.waitFor('silent')).state, 'completed');
  const ev = await waitFor(async () => (await h.events()).find((e) => e.type === 'webhook.failed'), { timeoutMs: 20_000, what: 'webhook.failed' });
  assert.deepEqual(ev.data, { jobId: 'silent', url: rx.url('/silent'), attempts: 4, error: 'no answer within WEBHOOK_TIMEOUT_MS (700 ms)' });
  assert.equal(rx.deliveries.length, 4);
  assert.equal((await producer.getJob('silent'))?.state, 'completed');
  assert.equal((await h.events()).filter((e) => e.type === 'webhook.failed').length, 1);
});

test('webhook URLs: other schemes, private literals and hosts outside WEBHOOK_ALLOWED_HOSTS are refused at enqueue; private DNS answers at delivery', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { WEBHOOK_BACKOFF_MS: '50', WEBHOOK_ATTEMPTS: '2' } });
  const producer = h.producer();
  const refused = async (url: string) => {
    try {
      await producer.enqueue({ prompt: 'p', webhook_url: url, webhook_secret: 's' });
    } catch (err) {
      return (err as { details: { path: string; message: string }[] }).details;
    }
    return undefined;
  };
  assert.deepEqual(await refused('ftp://example.com/x'), [{ path: 'webhook_url', message: 'must be an http:// or https:// URL' }]);
  assert.deepEqual(await refused('http://169.254.169.254/latest/meta-data'), [{ path: 'webhook_url', message: 'refused: host 169.254.169.254 is a private or loopback address' }]);
  assert.deepEqual(await refused('http://[::1]:8080/'), [{ path: 'webhook_url', message: 'refused: host ::1 is a private or loopback address' }]);
  assert.deepEqual(await refused('http://localhost./x'), [{ path: 'webhook_url', message: 'refused: host localhost is a private or loopback address' }]);
  const listed = h.producer({ WEBHOOK_ALLOWED_HOSTS: '*.example.com,hooks.partner.io' });
  await assert.rejects(listed.enqueue({ prompt: 'p', webhook_url: 'https://evil.com/x', webhook_secret: 's' }), /host evil.com is not in the allowed hosts/);
  assert.equal((await listed.enqueue({ prompt: 'p', id: 'listed', webhook_url: 'https://A.Example.com/x', webhook_secret: 's' })).status, 'created');
  assert.deepEqual(await h.redis.keys(`${h.prefix}:id:*`), [`${h.prefix}:id:listed`], 'nothing else was enqueued');
  await listed.queue.remove('listed');

  // A name that resolves to a private address is caught when delivering — also when a
  // live receiver is there (a made-up name for loopback), and also when the first answer
  // is public and the one the connect asks for is not (rebinding): what is dialled is checked.
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const resolver = testResolver({
    'hooks.internal-corp.net': [{ address: '10.1.2.3', family: 4 }],
    'rebind.example.test': (nth) => [{ address: nth % 2 === 1 ? '93.184.216.34' : '127.0.0.1', family: 4 }],
  });
  await h.worker({}, { resolver });
  await producer.enqueueBulk([
    { id: 'private', prompt: 'p', webhook_url: 'https://hooks.internal-corp.net/h', webhook_secret: 's' },
    { id: 'loopback', prompt: 'p', webhook_url: rx.url('/loopback', 'hooks.example.test'), webhook_secret: 's' },
    { id: 'rebind', prompt: 'p', webhook_url: rx.url('/rebind', 'rebind.example.test'), webhook_secret: 's' },
  ]);
  for (const id of ['private', 'loopback', 'rebind']) assert.equal((await producer.waitFor(id)).state, 'completed');
  const failed = await waitFor(async () => {
    const evs = (await h.events()).filter((e) => e.type === 'webhook.failed');
    return evs.length === 3 ? evs : undefined;
  }, { what: 'three webhook.failed' });
  const byJob = Object.fromEntries(failed.map((e) => [(e.data as { jobId: string }).jobId, e.data]));
  assert.deepEqual(byJob.private, { jobId: 'private', url: 'https://hooks.internal-corp.net/h', attempts: 1, error: 'webhook_url refused: host hooks.internal-corp.net resolves to 10.1.2.3, a private or loopback address' });
  assert.deepEqual(byJob.loopback, { jobId: 'loopback', url: rx.url('/loopback', 'hooks.example.test'), attempts: 1, error: 'webhook_url refused: host hooks.example.test resolves to 127.0.0.1, a private or loopback address' });
  assert.deepEqual(byJob.rebind, { jobId: 'rebind', url: rx.url('/rebind', 'rebind.example.test'), attempts: 1, error: 'webhook_url refused: host rebind.example.test resolves to 127.0.0.1, a private or loopback address' });
  assert.equal(resolver.asked.get('rebind.example.test'), 2, 'checked once before the request, and again inside the connect');
  assert.deepEqual(rx.deliveries, [], 'nothing reached the loopback receiver');
});
