import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { synthPng } from '../../src/demo/synth-image.js';
import { freePort, startLocalRedis } from '../../src/demo/local-redis.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';
import { selfSignedCert } from '../helpers/https-server.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

const FLUX_KEY = 'sk-flux-SECRET-key-0123456789abcdef';
const API_TOKEN = 'api-token-SECRET-0123456789';
const RAW_HOOK = 'webhook-raw-SECRET-98765';
const WHSEC = `whsec_${Buffer.from('webhook-whsec-SECRET-bytes-0123').toString('base64')}`;

/** Every log line of a full run at LOG_LEVEL=trace: no key, secret, Authorization value or base64 payload. */
test('secrets and payloads never reach a log line, at any level (LOG_LEVEL=trace over a full run)', { timeout: 120_000 }, async (t) => {
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  rx.answer = (path) => (path.startsWith('/fails') ? 500 : 200);
  const h = await startHarness(t, {
    fake: { latencyMs: 20, apiKey: FLUX_KEY },
    env: { LOG_LEVEL: 'trace', WEBHOOK_ALLOWED_HOSTS: 'localhost', WEBHOOK_ATTEMPTS: '2', WEBHOOK_BACKOFF_MS: '50', API_TOKEN },
  });
  // The upstream echoes the key back in an auth error, as some gateways do.
  h.fake.inject({ prompt: 'echo the key', times: 1, fault: { type: 'status', status: 401, body: JSON.stringify({ error: { message: `invalid api key ${FLUX_KEY} (Bearer ${FLUX_KEY})`, type: 'auth_error' } }) } });
  const output: string[] = [];
  const collect = (text: string) => output.push(...text.split('\n'));

  const worker = await h.spawnWorker({ LOG_LEVEL: 'trace', WORKER_CONCURRENCY: '2' });
  const apiPort = await freePort();
  const api = await h.spawnFluxq(['api'], { LOG_LEVEL: 'trace', API_PORT: String(apiPort), API_HOST: '127.0.0.1' }, /fluxq api listening/);
  const base = `http://127.0.0.1:${apiPort}`;

  const dir = await mkdtemp(join(tmpdir(), 'fluxq-sec-'));
  const p = synthPng({ width: 256, height: 256, entropy: 1, seed: 9 });
  const image = Buffer.concat([p.prefix, p.tail('x')]);
  await writeFile(join(dir, 'in.png'), image);
  await writeFile(
    join(dir, 'jobs.jsonl'),
    [
      { id: 'sec-raw', prompt: 'raw hook', webhook_url: rx.url('/raw?token=QUERYSECRET'), webhook_secret: RAW_HOOK, input_image: image.toString('base64') },
      { id: 'sec-whsec', prompt: 'whsec hook', webhook_url: rx.url('/whsec'), webhook_secret: WHSEC, input_image: 'in.png' },
      { id: 'sec-fails', prompt: 'failing hook', webhook_url: rx.url('/fails'), webhook_secret: WHSEC },
      { id: 'sec-echo', prompt: 'echo the key' },
    ].map((l) => JSON.stringify(l)).join('\n'),
  );
  const bad = await h.cli(['enqueue', '-'], { input: JSON.stringify({ prompt: 'bad', input_image: `${image.toString('base64')}!!`, webhook_url: 'http://10.0.0.1/', webhook_secret: RAW_HOOK }) });
  collect(bad.stdout + bad.stderr);
  assert.equal(bad.code, 2);
  const run = await h.cli(['enqueue', join(dir, 'jobs.jsonl'), '--batch', 'sec', '--webhook-url', rx.url('/batch'), '--webhook-secret', RAW_HOOK]);
  collect(run.stdout + run.stderr);
  assert.equal(run.code, 0, run.stderr);
  const producer = h.producer();
  await waitFor(async () => producer.queue.isPaused(), { what: 'the 401 to pause the queue' });
  collect((await h.cli(['resume'])).stderr);
  await producer.waitForBatch('sec', { timeoutMs: 60_000 });
  await waitFor(async () => (await h.events()).some((e) => e.type === 'webhook.failed'), { what: 'the failing webhook to give up' });

  // The API, with the right token, a wrong one, a page login, a job with an inline image.
  const auth = { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' };
  await fetch(`${base}/v1/jobs/sec-raw`, { headers: auth });
  await fetch(`${base}/v1/jobs/sec-raw`, { headers: { authorization: `Bearer ${API_TOKEN}-wrong` } });
  await fetch(`${base}/admin/queues?token=${API_TOKEN}`, { redirect: 'manual' });
  await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'sec-api', prompt: 'via api', input_image: image.toString('base64'), webhook_url: rx.url('/api'), webhook_secret: RAW_HOOK }) });
  await fetch(`${base}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ prompt: 'bad via api', input_image: `${image.toString('base64')}!!` }) });
  await fetch(`${base}/metrics`, { headers: auth });
  await producer.waitFor('sec-api', { timeoutMs: 30_000 });
  collect((await h.cli(['status', 'sec', '--json'])).stdout);
  collect((await h.cli(['status', 'sec-raw', '--json'])).stdout);

  for (const p of [worker, api]) {
    p.kill('SIGTERM');
    await p.exited;
    output.push(...p.lines);
  }
  const lines = output.filter((l) => l.trim() !== '');
  assert.ok(lines.filter((l) => l.includes('"level":10')).length > 0, 'trace lines were written');
  assert.ok(lines.length > 40, `only ${lines.length} lines`);
  const forbidden = [FLUX_KEY, API_TOKEN, RAW_HOOK, WHSEC, WHSEC.slice(6), 'S3RVER', 'QUERYSECRET', `Bearer ${API_TOKEN}`, `Bearer ${FLUX_KEY}`];
  for (const line of lines) {
    for (const f of forbidden) assert.ok(!line.includes(f), `a line shows ${f.slice(0, 12)}…: ${line.slice(0, 300)}`);
    assert.doesNotMatch(line, /[A-Za-z0-9+/]{200,}/, `a line carries a base64 payload: ${line.slice(0, 200)}`);
  }
  // The 401 was scrubbed, not lost: its reason says what happened.
  const paused = (await h.events()).find((e) => e.type === 'queue.paused');
  assert.match((paused?.data as { reason: string }).reason, /^account: HTTP 401 auth_error: invalid api key \[redacted\] \(Bearer \[redacted\]\)/);
});

/** ≥ 40 bad requests through the library, the CLI and the HTTP API: each refused, the field named, nothing enqueued. */
const BAD: [string, Record<string, unknown> | string, string][] = [
  ['prompt missing', {}, 'prompt'],
  ['prompt a number', { prompt: 42 }, 'prompt'],
  ['prompt empty', { prompt: '' }, 'prompt'],
  ['prompt blank', { prompt: '   ' }, 'prompt'],
  ['prompt huge', { prompt: 'x'.repeat(20_000) }, 'prompt'],
  ['width 63', { prompt: 'p', width: 63 }, 'width'],
  ['width 65', { prompt: 'p', width: 65 }, 'width'],
  ['width 100000', { prompt: 'p', width: 100_000 }, 'width'],
  ['width a string', { prompt: 'p', width: '1024' }, 'width'],
  ['height 0', { prompt: 'p', height: 0 }, 'height'],
  ['height float', { prompt: 'p', height: 64.5 }, 'height'],
  ['over 4 MP', { prompt: 'p', width: 4096, height: 2048 }, 'width'],
  ['seed float', { prompt: 'p', seed: 1.5 }, 'seed'],
  ['seed negative', { prompt: 'p', seed: -1 }, 'seed'],
  ['seed unsafe', { prompt: 'p', seed: 2 ** 60 }, 'seed'],
  ['seed a string', { prompt: 'p', seed: '7' }, 'seed'],
  ['seed null', { prompt: 'p', seed: null }, 'seed'],
  ['safety 7', { prompt: 'p', safety_tolerance: 7 }, 'safety_tolerance'],
  ['safety a word', { prompt: 'p', safety_tolerance: 'low' }, 'safety_tolerance'],
  ['format gif', { prompt: 'p', output_format: 'gif' }, 'output_format'],
  ['unknown field', { prompt: 'p', colour: 'red' }, 'colour'],
  ['input_image_9', { prompt: 'p', input_image_9: 'QUJD' }, 'input_image_9'],
  ['__proto__ at the top', '{"prompt":"p","__proto__":{"polluted":true}}', '__proto__'],
  ['constructor at the top', { prompt: 'p', constructor: { prototype: { polluted: true } } }, 'constructor'],
  ['__proto__ in metadata', '{"prompt":"p","metadata":{"__proto__":{"polluted":true}}}', 'metadata'],
  ['constructor in metadata', { prompt: 'p', metadata: { a: { constructor: 1 } } }, 'metadata.a'],
  ['metadata an array', { prompt: 'p', metadata: [1, 2] }, 'metadata'],
  ['metadata huge', { prompt: 'p', metadata: { blob: 'x'.repeat(10_000) } }, 'metadata'],
  ['id with a colon', { prompt: 'p', id: 'a:b' }, 'id'],
  ['id all digits', { prompt: 'p', id: '123' }, 'id'],
  ['id 200 chars', { prompt: 'p', id: 'x'.repeat(200) }, 'id'],
  ['id empty', { prompt: 'p', id: '' }, 'id'],
  ['id with a slash', { prompt: 'p', id: 'a/b' }, 'id'],
  ['id not a string', { prompt: 'p', id: 7 }, 'id'],
  ['batch with a space', { prompt: 'p', batch: 'my batch' }, 'batch'],
  ['model with a slash', { prompt: 'p', model: '../admin' }, 'model'],
  ['keyPrefix escaping', { prompt: 'p', output: { keyPrefix: '../../etc' } }, 'output.keyPrefix'],
  ['keyPrefix absolute', { prompt: 'p', output: { keyPrefix: '/root' } }, 'output.keyPrefix'],
  ['bad base64 input', { prompt: 'p', input_image: 'iVBORw0K!!!not base64' }, 'input_image'],
  ['base64 of text', { prompt: 'p', input_image_2: Buffer.from('this is not an image, just words').toString('base64') }, 'input_image_2'],
  ['file:// input', { prompt: 'p', input_image: 'file:///etc/passwd' }, 'input_image'],
  ['http metadata-service input', { prompt: 'p', input_image: 'http://169.254.169.254/latest/meta-data/' }, 'input_image'],
  ['https metadata-service input', { prompt: 'p', input_image_3: 'https://169.254.169.254/latest/meta-data/' }, 'input_image_3'],
  ['metadata-service webhook', { prompt: 'p', webhook_url: 'http://169.254.169.254/x', webhook_secret: 's' }, 'webhook_url'],
  ['file:// webhook', { prompt: 'p', webhook_url: 'file:///tmp/x', webhook_secret: 's' }, 'webhook_url'],
  ['loopback webhook', { prompt: 'p', webhook_url: 'http://127.0.0.1:9/x', webhook_secret: 's' }, 'webhook_url'],
  ['webhook without secret', { prompt: 'p', webhook_url: 'https://example.com/h' }, 'webhook_secret'],
  ['secret without webhook', { prompt: 'p', webhook_secret: 's' }, 'webhook_url'],
  ['not an object', '[1,2,3]', ''],
];

const asJson = (r: Record<string, unknown> | string) => (typeof r === 'string' ? r : JSON.stringify(r));

async function noJobs(h: Harness): Promise<void> {
  const keys = (await h.redis.keys(`${h.prefix}:*`)).filter((k) => !k.endsWith(':meta') && !k.endsWith(':stats'));
  assert.deepEqual(keys, [], 'nothing was enqueued');
}

test(`${BAD.length} bad requests are refused naming the field, nothing enqueued: library, CLI and HTTP API`, { timeout: 120_000 }, async (t) => {
  assert.ok(BAD.length >= 40);
  const h = await startHarness(t, { env: { API_TOKEN } });
  const producer = h.producer();
  for (const [name, req, field] of BAD) {
    const value = typeof req === 'string' ? JSON.parse(req) : req;
    await assert.rejects(producer.enqueue(value), (err: { details?: { path: string }[] }) => {
      assert.equal(err.details?.[0]?.path, field, name);
      return true;
    }, name);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
  await noJobs(h);

  // The CLI: one file, every line bad → each named, exit 2.
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-bad-'));
  await writeFile(join(dir, 'bad.jsonl'), `${BAD.map(([, r]) => asJson(r)).join('\n')}\n{"prompt": NaN}\n`);
  const cli = await h.cli(['enqueue', join(dir, 'bad.jsonl')]);
  assert.equal(cli.code, 2);
  const lines = cli.stderr.split('\n');
  BAD.forEach(([name, , field], i) => {
    const re = new RegExp(`^line ${i + 1}: ${field ? `${field.replace(/\./g, '\\.')}: ` : ''}`);
    assert.ok(lines.some((l) => re.test(l)), `${name}: no "line ${i + 1}: ${field}" in\n${cli.stderr.slice(0, 2000)}`);
  });
  assert.ok(lines.some((l) => l.startsWith(`line ${BAD.length + 1}: not valid JSON`)), 'NaN is not JSON');
  await noJobs(h);

  // The HTTP API.
  const { startApi } = await import('../helpers/api.js');
  const api = await startApi(h, { API_TOKEN });
  t.after(() => api.close());
  for (const [name, req, field] of BAD) {
    const res = await api.call('/v1/jobs', { method: 'POST', body: asJson(req), headers: { 'content-type': 'application/json', authorization: `Bearer ${API_TOKEN}` } });
    assert.equal(res.status, 400, name);
    const body = (await res.json()) as { details?: { path: string }[] };
    assert.equal(body.details?.[0]?.path, field, name);
  }
  await noJobs(h);
});

test('rediss:// with a password works for the worker and the CLI', { timeout: 90_000 }, async (t) => {
  const { cert, key } = selfSignedCert();
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-tls-redis-'));
  await writeFile(join(dir, 'cert.pem'), cert);
  await writeFile(join(dir, 'key.pem'), key);
  const port = await freePort();
  const server = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', join(dir, 'cert.pem'), '--tls-key-file', join(dir, 'key.pem'), '--tls-ca-cert-file', join(dir, 'cert.pem'), '--tls-auth-clients', 'no', '--requirepass', 'redis-pass-0987', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  t.after(() => server.kill('SIGKILL'));
  const url = `rediss://:redis-pass-0987@127.0.0.1:${port}`;
  const h = await startHarness(t, { redisUrl: 'redis://127.0.0.1:1', fake: { latencyMs: 10 }, env: { REDIS_URL: url } });
  const tlsEnv = { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') };
  await waitFor(async () => (await h.cli(['status', 'nothing'], { env: tlsEnv })).stderr.includes('no job or batch'), { timeoutMs: 20_000, intervalMs: 300, what: 'the TLS Redis to answer' });
  const worker = await h.spawnWorker({ ...tlsEnv });
  const run = await h.cli(['enqueue', '-', '--batch', 'tls', '--wait'], { env: tlsEnv, input: JSON.stringify({ id: 'over-tls', prompt: 'over tls' }) });
  assert.equal(run.code, 0, run.stderr);
  assert.equal((await h.cli(['status', 'over-tls'], { env: tlsEnv })).stdout.trim(), 'completed');
  const wrong = await h.cli(['status', 'over-tls'], { env: { ...tlsEnv, REDIS_URL: `rediss://:wrong@127.0.0.1:${port}` } });
  assert.equal(wrong.code, 1);
  assert.doesNotMatch(wrong.stderr, /wrong|redis-pass/, 'the password is not echoed');
  worker.kill('SIGTERM');
  assert.equal(await worker.exited, 0);
});

test('S3 credentials from the AWS default chain (no S3_* keys) work', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const chain = { S3_ACCESS_KEY_ID: '', S3_SECRET_ACCESS_KEY: '', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const worker = await h.spawnWorker(chain);
  const run = await h.cli(['enqueue', '-', '--wait'], { env: chain, input: JSON.stringify({ id: 'chain', prompt: 'default chain' }) });
  assert.equal(run.code, 0, run.stderr);
  assert.ok((await h.headObject('images/' + (await h.producer().getJob('chain'))?.batchId + '/chain/0.png')) !== undefined);
  worker.kill('SIGTERM');
  await worker.exited;
});

test('a worker refuses to start on a Redis that evicts keys (exit 2, naming the policy)', { timeout: 60_000 }, async (t) => {
  const redis = await startLocalRedis({ extraArgs: ['--maxmemory-policy', 'allkeys-lru'] });
  t.after(() => redis.stop());
  const h = await startHarness(t, { redisUrl: redis.url });
  const run = await h.cli(['worker']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^fluxq: Redis maxmemory-policy is allkeys-lru; fluxq needs noeviction/, run.stderr);
  assert.equal(run.stderr.trim().split('\n').length, 1);
});
