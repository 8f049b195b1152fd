import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { API_TOKEN, startApi } from '../helpers/api.js';
import { startHarness } from '../helpers/harness.js';

test('auth: every route but /healthz needs the Bearer token; pages answer a login form, then a session cookie', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h);
  t.after(() => api.close());
  const health = await fetch(`${api.url}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { redis: 'ok', s3: 'ok' });
  for (const [method, path] of [['GET', '/v1/jobs/x'], ['POST', '/v1/jobs'], ['DELETE', '/v1/jobs/x'], ['POST', '/v1/batches'], ['GET', '/v1/batches/x'], ['GET', '/metrics']]) {
    for (const auth of [undefined, 'Bearer wrong-token', `Basic ${API_TOKEN}`, `Bearer ${API_TOKEN}x`]) {
      const res = await fetch(`${api.url}${path}`, { method, headers: auth ? { authorization: auth } : {} });
      assert.equal(res.status, 401, `${method} ${path} with ${auth}`);
      assert.deepEqual(Object.keys((await res.json()) as object), ['error']);
    }
  }
  // Pages: no token → a login form, never their data.
  await h.producer().enqueue({ id: 'secret-job', prompt: 'a very private prompt', batch: 'some-batch' });
  for (const page of ['/admin/queues', '/batches/some-batch']) {
    const res = await fetch(`${api.url}${page}`);
    assert.equal(res.status, 401);
    const html = await res.text();
    assert.match(html, /<form method="get"/);
    assert.doesNotMatch(html, /private prompt|secret-job|generate/);
  }
  assert.equal((await fetch(`${api.url}/admin/queues?token=wrong`)).status, 401);
  const login = await fetch(`${api.url}/admin/queues?token=${API_TOKEN}`, { redirect: 'manual' });
  assert.equal(login.status, 303);
  assert.equal(login.headers.get('location'), '/admin/queues');
  const setCookie = login.headers.get('set-cookie') ?? '';
  assert.match(setCookie, /^fluxq_session=[^;]+; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict/);
  assert.ok(!setCookie.includes(API_TOKEN), 'the cookie is not the token');
  const cookie = setCookie.split(';')[0] as string;
  const dash = await fetch(`${api.url}/admin/queues`, { headers: { cookie } });
  assert.equal(dash.status, 200);
  assert.match(await dash.text(), /<title>fluxq<\/title>|bull/i);
  const queuesApi = await fetch(`${api.url}/admin/queues/api/queues`, { headers: { cookie } });
  assert.equal(queuesApi.status, 200);
  assert.equal((await fetch(`${api.url}/v1/jobs/x`, { headers: { cookie } })).status, 401, 'the cookie is for the pages only');
});

test('POST /v1/jobs: 201 new, 200 existing, 400 with dotted details, 400 on bad JSON, 413 over the body limit', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h, { API_BODY_LIMIT_BYTES: '4096' });
  t.after(() => api.close());
  const created = await api.call('/v1/jobs', { method: 'POST', json: { id: 'api-1', prompt: 'a cat', width: 512, height: 512 } });
  assert.equal(created.status, 201);
  assert.deepEqual(await created.json(), { id: 'api-1', state: 'waiting' });
  const again = await api.call('/v1/jobs', { method: 'POST', json: { id: 'api-1', prompt: 'a cat', width: 512, height: 512 } });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), { id: 'api-1', state: 'waiting' });
  const bad = await api.call('/v1/jobs', { method: 'POST', json: { prompt: 'x', width: 100, seed: 1.5, extra: true } });
  assert.equal(bad.status, 400);
  const body = (await bad.json()) as { error: string; details: { path: string; message: string }[] };
  assert.deepEqual(body.details.sort((a, b) => a.path.localeCompare(b.path)), [
    { path: 'extra', message: 'is not a known field' },
    { path: 'seed', message: 'must be an integer' },
    { path: 'width', message: 'must be ≥ 64 and a multiple of 32, got 100' },
  ]);
  assert.match(body.error, /width: must be ≥ 64/);
  const notJson = await api.call('/v1/jobs', { method: 'POST', body: '{oops', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.status, 400);
  assert.match(((await notJson.json()) as { error: string }).error, /not valid JSON/);
  const big = await api.call('/v1/jobs', { method: 'POST', json: { prompt: 'x'.repeat(5000) } });
  assert.equal(big.status, 413);
  assert.deepEqual(await big.json(), { error: 'request body is larger than API_BODY_LIMIT_BYTES (4096 bytes)' });
  const jobs = await h.producer().queue.getJobCounts('waiting');
  assert.equal(jobs.waiting, 1, 'only the one valid job');
});

test('GET /v1/jobs/:id returns the result with presigned URLs; DELETE cancels only what has not started', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const api = await startApi(h, { PRESIGN_TTL_S: '600' });
  t.after(() => api.close());
  assert.equal((await api.call('/v1/jobs', { method: 'POST', json: { id: 'done-1', prompt: 'draw', metadata: { k: 1 } } })).status, 201);
  await h.worker();
  await h.producer().waitFor('done-1');
  const res = await api.call('/v1/jobs/done-1');
  assert.equal(res.status, 200);
  const job = (await res.json()) as { id: string; state: string; attempts: number; possibly_billed: number; result: { images: { url: string; key: string; sha256: string; bucket: string }[]; metadata: unknown } };
  assert.equal(job.state, 'completed');
  assert.equal(job.attempts, 1);
  assert.equal(job.possibly_billed, 0);
  assert.deepEqual(job.result.metadata, { k: 1 });
  const img = job.result.images[0];
  assert.ok(img);
  const u = new URL(img.url);
  assert.equal(u.searchParams.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
  assert.equal(u.searchParams.get('X-Amz-SignedHeaders'), 'host');
  assert.equal(u.searchParams.get('X-Amz-Expires'), '600');
  const download = await fetch(img.url);
  assert.equal(download.status, 200);
  assert.equal(createHash('sha256').update(Buffer.from(await download.arrayBuffer())).digest('hex'), img.sha256);
  assert.equal((await api.call('/v1/jobs/nope')).status, 404);

  // Cancel: a finished job → 409; an unknown one → 404; a waiting one → 200 and state cancelled.
  const finished = await api.call('/v1/jobs/done-1', { method: 'DELETE' });
  assert.equal(finished.status, 409);
  assert.match(((await finished.json()) as { error: string }).error, /is completed: only a job that has not started can be cancelled/);
  assert.equal((await api.call('/v1/jobs/nope', { method: 'DELETE' })).status, 404);
  await h.producer().queue.pause();
  assert.equal((await api.call('/v1/jobs', { method: 'POST', json: { id: 'later', prompt: 'wait' } })).status, 201);
  const cancel = await api.call('/v1/jobs/later', { method: 'DELETE' });
  assert.equal(cancel.status, 200);
  assert.deepEqual(await cancel.json(), { id: 'later', state: 'cancelled' });
  assert.equal(((await (await api.call('/v1/jobs/later')).json()) as { state: string }).state, 'cancelled');
  // Posting a cancelled id again retries it.
  const reposted = await api.call('/v1/jobs', { method: 'POST', json: { id: 'later', prompt: 'wait' } });
  assert.equal(reposted.status, 201);
  assert.equal(((await reposted.json()) as { state: string }).state, 'paused');
});

test('an active job cannot be cancelled (409)', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 3000 } });
  const api = await startApi(h);
  t.after(() => api.close());
  await api.call('/v1/jobs', { method: 'POST', json: { id: 'busy', prompt: 'slow' } });
  await h.worker();
  const { waitFor } = await import('../helpers/wait-for.js');
  await waitFor(() => h.fake.inFlight === 1, { what: 'the call in flight' });
  const res = await api.call('/v1/jobs/busy', { method: 'DELETE' });
  assert.equal(res.status, 409);
  assert.equal(((await res.json()) as { state: string }).state, 'active');
});

test('POST /v1/batches is all-or-nothing and names each bad item; GET /v1/batches/:id counts', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const api = await startApi(h);
  t.after(() => api.close());
  const bad = await api.call('/v1/batches', { method: 'POST', json: { batch: 'api-b', requests: [{ prompt: 'ok' }, { prompt: 'x', width: 63 }, { prompt: '' }] } });
  assert.equal(bad.status, 400);
  assert.deepEqual(((await bad.json()) as { details: unknown }).details, [
    { path: 'requests.1.width', message: 'must be ≥ 64 and a multiple of 32, got 63' },
    { path: 'requests.2.prompt', message: 'must not be empty' },
  ]);
  assert.equal((await api.call('/v1/batches/api-b')).status, 404, 'nothing was enqueued');
  const shape = await api.call('/v1/batches', { method: 'POST', json: { requests: [], priority: 0, colour: 1 } });
  assert.deepEqual(((await shape.json()) as { details: { path: string }[] }).details.sort((a, b) => a.path.localeCompare(b.path)), [
    { path: 'colour', message: 'is not a known field' },
    { path: 'priority', message: 'must be ≥ 1 (1 is highest)' },
    { path: 'requests', message: 'must hold at least one request' },
  ]);
  const ok = await api.call('/v1/batches', { method: 'POST', json: { batch: 'api-b', priority: 2, max_megapixels: 100, requests: [{ prompt: 'one' }, { prompt: 'two', id: 'named' }] } });
  assert.equal(ok.status, 201);
  assert.deepEqual(await ok.json(), { batchId: 'api-b', total: 2 });
  const unnamed = await api.call('/v1/batches', { method: 'POST', json: { requests: [{ prompt: 'auto batch' }] } });
  const { batchId } = (await unnamed.json()) as { batchId: string };
  assert.match(batchId, /^b-\d{8}-\d{6}-[0-9a-f]{6}$/);
  await h.worker();
  await h.producer().waitForBatch('api-b');
  const res = await api.call('/v1/batches/api-b');
  const b = (await res.json()) as Record<string, unknown>;
  assert.equal(b.state, 'completed');
  assert.equal(b.total, 2);
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 2, failed: 0, cancelled: 0, expired: 0 });
  assert.equal(b.output_mp, 2);
  assert.equal(b.cost_usd, 0.06);
  assert.equal(b.max_megapixels, 100);
  assert.equal((await api.call('/v1/batches/none')).status, 404);
});

test('/healthz answers 503 naming S3 when it is down, and the API answers 503 when Redis is', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h, { S3_ENDPOINT: 'http://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:1' });
  t.after(() => api.close());
  const res = await fetch(`${api.url}/healthz`);
  assert.equal(res.status, 503);
  const body = (await res.json()) as { redis: string; s3: string };
  assert.notEqual(body.redis, 'ok');
  assert.notEqual(body.s3, 'ok');
  assert.deepEqual(Object.keys(body).sort(), ['redis', 's3']);
  const post = await api.call('/v1/jobs', { method: 'POST', json: { prompt: 'x' } });
  assert.equal(post.status, 503);
  assert.match(((await post.json()) as { error: string }).error, /Redis at redis:\/\/127\.0\.0\.1:1 is unreachable/);
});

test('`fluxq api` refuses to start without API_TOKEN (exit 2 naming it) unless API_INSECURE=1', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const run = await h.cli(['api'], { env: { API_TOKEN: '', API_PORT: '0' } });
  assert.equal(run.code, 2);
  assert.equal(run.stderr.trim(), 'fluxq: API_TOKEN is required by the API (or set API_INSECURE=1 to run without auth)');
});
