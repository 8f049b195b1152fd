import assert from 'node:assert/strict';
import { test } from 'node:test';
import { synthPng } from '../../src/demo/synth-image.js';
import { ValidationError } from '../../src/shared/errors.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { startHttpsFileServer } from '../helpers/https-server.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRETS = ['SIGSECRET', 'INPUTPASS', 'HOOKPASS', 'HOOKTOKEN', 'reader:', 'hookuser'];

/** `url` with credentials and a presigned-style query added. */
function withSecrets(url: string, user: string, pass: string, query: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = pass;
  u.search = query;
  return u.toString();
}

test('an input URL\'s query and user:pass@ never reach a failure reason, an event, a status or a log line (webhook URLs neither)', { timeout: 90_000 }, async (t) => {
  const files = await startHttpsFileServer();
  t.after(() => files.close());
  files.files.set('/text.png', Buffer.from('<html>not a picture</html>'));
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  rx.answer = () => 500;
  const h = await startHarness(t, {
    fake: { latencyMs: 10 },
    env: { INPUT_URL_ALLOW_PRIVATE: '1', WEBHOOK_ALLOWED_HOSTS: 'localhost', WEBHOOK_ATTEMPTS: '2', WEBHOOK_BACKOFF_MS: '50' },
  });
  const output: string[] = [];
  const collect = (text: string) => output.push(...text.split('\n'));
  const worker = await h.spawnWorker({ LOG_LEVEL: 'trace', NODE_EXTRA_CA_CERTS: files.certPath });

  const missing = withSecrets(files.url('/missing.png'), 'reader', 'INPUTPASS', '?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=SIGSECRET');
  const text = withSecrets(files.url('/text.png'), 'reader', 'INPUTPASS', '?X-Amz-Signature=SIGSECRET');
  const hook = withSecrets(rx.url('/hook'), 'hookuser', 'HOOKPASS', '?token=HOOKTOKEN');
  const lines = [
    { id: 'redact-404', prompt: 'missing', input_image: missing, webhook_url: hook, webhook_secret: 's' },
    { id: 'redact-text', prompt: 'text', input_image_2: text },
  ];
  const run = await h.cli(['enqueue', '-'], { input: lines.map((l) => JSON.stringify(l)).join('\n') });
  collect(run.stdout + run.stderr);
  assert.equal(run.code, 0, run.stderr);

  const producer = h.producer();
  const notFound = await producer.waitFor('redact-404');
  assert.equal(notFound.state, 'failed');
  assert.equal(notFound.error, `permanent: input_image: ${files.url('/missing.png')} not found (HTTP 404)`);
  const notImage = await producer.waitFor('redact-text');
  assert.equal(notImage.error, `permanent: input_image_2: ${files.url('/text.png')} is not a PNG, JPEG or WebP image`);
  assert.ok(files.requests.some((r) => r.includes('X-Amz-Signature=SIGSECRET')), 'the fetch itself used the whole URL');

  const failed = await waitFor(async () => (await h.events()).find((e) => e.type === 'webhook.failed'), { timeoutMs: 20_000, what: 'webhook.failed' });
  assert.deepEqual(failed.data, { jobId: 'redact-404', url: rx.url('/hook'), attempts: 2, error: 'receiver answered HTTP 500' });
  assert.equal(rx.deliveries[0]?.path, '/hook?token=HOOKTOKEN', 'the delivery itself used the whole URL');

  // Refused at enqueue (a private literal): the reason names the URL without its secrets.
  const strict = h.producer({ INPUT_URL_ALLOW_PRIVATE: '0' });
  const refused = await strict.enqueue({ prompt: 'p', input_image: withSecrets('https://127.0.0.1/x.png', 'reader', 'INPUTPASS', '?X-Amz-Signature=SIGSECRET') }).then(
    () => undefined,
    (err: unknown) => err,
  );
  assert.ok(refused instanceof ValidationError);
  assert.deepEqual(refused.details, [{ path: 'input_image', message: 'https://127.0.0.1/x.png is refused: host 127.0.0.1 is a private or loopback address' }]);

  collect((await h.cli(['status', 'redact-404', '--json'])).stdout);
  collect((await h.cli(['status', 'redact-text'])).stdout);
  const events = await h.events();
  collect(events.map((e) => JSON.stringify(e)).join('\n'));
  worker.kill('SIGTERM');
  await worker.exited;
  output.push(...worker.lines);

  const written = output.filter((l) => l.trim() !== '');
  assert.ok(written.some((l) => l.includes('webhook gave up') && l.includes(`"url":"${rx.url('/hook')}"`)), 'the webhook log line names the URL, redacted');
  assert.ok(written.some((l) => l.includes('job failed') && l.includes(`${files.url('/missing.png')} not found`)), 'the failure log line names the URL, redacted');
  for (const line of written) {
    for (const s of SECRETS) assert.ok(!line.includes(s), `a line shows ${s}: ${line.slice(0, 300)}`);
  }
});

test('input and webhook URLs with a query still work: only what is reported is redacted', { timeout: 60_000 }, async (t) => {
  const files = await startHttpsFileServer();
  t.after(() => files.close());
  const p = synthPng({ width: 128, height: 128, entropy: 1, seed: 3 });
  files.files.set('/ok.png', Buffer.concat([p.prefix, p.tail('ok')]));
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { INPUT_URL_ALLOW_PRIVATE: '1', WEBHOOK_ALLOWED_HOSTS: 'localhost' } });
  const producer = h.producer();
  await h.worker({}, { tlsCa: files.cert });
  await producer.enqueue({ id: 'signed-ok', prompt: 'ok', input_image: `${files.url('/ok.png')}?X-Amz-Signature=abc`, webhook_url: rx.url('/ok?token=t'), webhook_secret: 's' });
  const st = await producer.waitFor('signed-ok');
  assert.equal(st.state, 'completed', st.error);
  await waitFor(() => rx.deliveries.length === 1, { what: 'the delivery' });
  assert.equal(rx.deliveries[0]?.path, '/ok?token=t');
});
