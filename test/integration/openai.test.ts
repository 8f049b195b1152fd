/**
 * SPEC §10 through the official `openai` npm client (never hand-made HTTP): the images
 * endpoint, files and the Batch API against a real API, worker, Redis, s3rver and the
 * fake upstream.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { API_TOKEN, startApi, type RunningApi } from '../helpers/api.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait-for.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function client(api: RunningApi, apiKey = API_TOKEN): OpenAI {
  return new OpenAI({ baseURL: `${api.url}/openai/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
}

interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: { created: number; data: { url: string }[]; output_mp: number; input_mp: number } } | null;
  error: { code: string; message: string } | null;
}

const jsonl = (lines: unknown[]) => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
const requestLine = (customId: string, prompt: string) => ({ custom_id: customId, method: 'POST', url: '/v1/images/generations', body: { model: 'flux-2-pro', prompt, size: '256x256' } });

async function fileLines(oa: OpenAI, fileId: string | null | undefined): Promise<OutputLine[]> {
  if (!fileId) return [];
  const text = await (await oa.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}

async function untilFinal(oa: OpenAI, id: string, timeoutMs = 60_000): Promise<OpenAI.Batches.Batch> {
  return waitFor(
    async () => {
      const b = await oa.batches.retrieve(id);
      return ['completed', 'failed', 'expired', 'cancelled'].includes(b.status) ? b : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `batch ${id} final` },
  );
}

async function setup(t: TestContext, opts: { latencyMs?: number; env?: Record<string, string>; workerEnv?: Record<string, string>; redisUrl?: string } = {}) {
  const h = await startHarness(t, { fake: { latencyMs: opts.latencyMs ?? 10, defaultWidth: 256, defaultHeight: 256 }, ...(opts.redisUrl ? { redisUrl: opts.redisUrl } : {}) });
  const api = await startApi(h, { OPENAI_BATCH_SWEEP_MS: '200', ...opts.env });
  t.after(() => api.close());
  await h.worker(opts.workerEnv);
  return { h, api, oa: client(api) };
}

/** The sha256 of every image the fake served, by prompt. */
const servedFor = (h: Harness, prompt: string) => h.fake.callsFor(prompt).flatMap((c) => c.servedSha256);

test('images.generate: b64_json and url answers carry the bytes the fake served; moderation → BadRequestError; a wrong key → AuthenticationError', { timeout: 90_000 }, async (t) => {
  const { h, api, oa } = await setup(t);
  h.fake.inject({ fault: { type: 'moderation' }, prompt: 'refuse me' });

  const b64 = await oa.images.generate({ model: 'flux-2-pro', prompt: 'a lighthouse', size: '256x256', response_format: 'b64_json' });
  const image = b64.data?.[0]?.b64_json;
  assert.ok(image, 'b64_json is there');
  assert.deepEqual([sha(Buffer.from(image, 'base64'))], servedFor(h, 'a lighthouse'));
  const extra = b64 as unknown as { output_mp: number; input_mp: number };
  assert.equal(typeof extra.output_mp, 'number');
  assert.equal(extra.input_mp, 0);
  assert.equal(typeof b64.created, 'number');

  const byUrl = await oa.images.generate({ prompt: 'a harbour', size: '256x256', response_format: 'url' });
  const url = byUrl.data?.[0]?.url;
  assert.match(url ?? '', /X-Amz-Signature=/);
  const fetched = Buffer.from(await (await fetch(url as string)).arrayBuffer());
  assert.deepEqual([sha(fetched)], servedFor(h, 'a harbour'));

  await assert.rejects(oa.images.generate({ prompt: 'refuse me' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `BadRequestError, got ${String(err)}`);
    assert.match(err.message, /permanent: HTTP \d+ sensitive_check_error/);
    assert.equal((err.error as { type?: string }).type, 'invalid_request_error');
    return true;
  });
  await assert.rejects(oa.images.generate({ prompt: 'x', n: 2 }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'n');
  await assert.rejects(client(api, 'wrong-token-0123456789').images.generate({ prompt: 'x' }), OpenAI.AuthenticationError);
  assert.equal(h.fake.callsFor('x').length, 0);
});

test('images.generate past OPENAI_SYNC_TIMEOUT_S: 504 naming the job, which goes on; the same Idempotency-Key then returns its result', { timeout: 90_000 }, async (t) => {
  const { h, oa } = await setup(t, { env: { OPENAI_SYNC_TIMEOUT_S: '1' } });
  h.fake.inject({ fault: { type: 'delay', ms: 2500 }, prompt: 'slow one', times: 1 });
  const headers = { 'Idempotency-Key': 'my-key-1' };
  await assert.rejects(oa.images.generate({ prompt: 'slow one', size: '256x256' }, { headers }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.APIError && err.status === 504, String(err));
    assert.match(err.message, /job my-key-1 is not finished/);
    return true;
  });
  const done = await waitFor(async () => {
    try {
      return await oa.images.generate({ prompt: 'slow one', size: '256x256' }, { headers });
    } catch (err) {
      if (err instanceof OpenAI.APIError && err.status === 504) return undefined;
      throw err;
    }
  }, { timeoutMs: 30_000, intervalMs: 100, what: 'the result by Idempotency-Key' });
  assert.deepEqual([sha(Buffer.from(done.data?.[0]?.b64_json ?? '', 'base64'))], servedFor(h, 'slow one'));
  assert.equal(h.fake.callsFor('slow one').length, 1, 'one upstream call for the two requests');

  // Without an Idempotency-Key a client that retries 5xx (the default) must not make a second job.
  h.fake.inject({ fault: { type: 'delay', ms: 2500 }, prompt: 'slow two' });
  const retrying = new OpenAI({ baseURL: oa.baseURL, apiKey: API_TOKEN, maxRetries: 2 });
  let jobId = '';
  await assert.rejects(retrying.images.generate({ prompt: 'slow two', size: '256x256' }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.APIError && err.status === 504, String(err));
    assert.equal(err.headers?.get('x-should-retry'), 'false');
    jobId = /job (\S+) is not finished/.exec(err.message)?.[1] ?? '';
    return true;
  });
  const producer = h.producer();
  await waitFor(async () => (await producer.getJob(jobId))?.state === 'completed', { timeoutMs: 30_000, what: `job ${jobId} completed` });
  const counts = await producer.queue.getJobCounts();
  assert.equal(Object.values(counts).reduce((a, n) => a + n, 0), 2, `one job per request: ${JSON.stringify(counts)}`);
});

test('Batch API: files.create + batches.create → completed; every custom_id once, URLs byte-identical; the same file again pays for nothing; list pages', { timeout: 120_000 }, async (t) => {
  const { h, oa } = await setup(t);
  const lines = Array.from({ length: 6 }, (_, i) => requestLine(`req-${i}`, `batch prompt ${i}`));
  const text = jsonl(lines);
  const file = await oa.files.create({ file: await toFile(Buffer.from(text), 'prompts.jsonl'), purpose: 'batch' });
  assert.equal(file.object, 'file');
  assert.equal(file.bytes, Buffer.byteLength(text));
  assert.equal(file.filename, 'prompts.jsonl');
  assert.equal(file.purpose, 'batch');
  assert.ok((await h.listObjects('images/files/')).includes(`images/files/${file.id}`), 'stored under {S3_KEY_PREFIX}/files/{id}');
  assert.equal((await oa.files.retrieve(file.id)).id, file.id);
  assert.equal(await (await oa.files.content(file.id)).text(), text);

  const created = await oa.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h', metadata: { run: 'one' } });
  assert.equal(created.object, 'batch');
  assert.equal(created.status, 'validating');
  const seen = new Set<string>([created.status]);
  const done = await waitFor(
    async () => {
      const b = await oa.batches.retrieve(created.id);
      seen.add(b.status);
      return b.status === 'completed' ? b : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'batch completed' },
  );
  assert.ok(seen.has('in_progress') || seen.has('finalizing'), `passed through in_progress: ${[...seen].join(',')}`);
  assert.deepEqual(done.request_counts, { total: 6, completed: 6, failed: 0 });
  assert.deepEqual(done.metadata, { run: 'one' });
  for (const k of ['created_at', 'in_progress_at', 'finalizing_at', 'completed_at', 'expires_at'] as const) assert.equal(typeof done[k], 'number', k);
  assert.equal(done.error_file_id, null);
  const out = await fileLines(oa, done.output_file_id);
  assert.deepEqual(out.map((l) => l.custom_id).sort(), lines.map((l) => l.custom_id).sort(), 'every custom_id once');
  for (const l of out) {
    assert.equal(l.error, null);
    assert.equal(l.response?.status_code, 200);
    const prompt = `batch prompt ${l.custom_id.slice(4)}`;
    const urls = l.response?.body.data.map((d) => d.url) ?? [];
    assert.equal(urls.length, 1);
    assert.match(urls[0] as string, /^http:\/\/.*X-Amz-Signature=/);
    const bytes = Buffer.from(await (await fetch(urls[0] as string)).arrayBuffer());
    assert.deepEqual([sha(bytes)], servedFor(h, prompt), `${l.custom_id}: the bytes the fake served`);
  }
  // The fluxq batch is the same batch.
  const fluxqBatch = await h.producer().getBatch(created.id);
  assert.equal(fluxqBatch?.counts.completed, 6);

  // The same content uploaded again, batched again: no upstream call, the same answers.
  const calls = h.fake.calls.length;
  const file2 = await oa.files.create({ file: await toFile(Buffer.from(text), 'again.jsonl'), purpose: 'batch' });
  const again = await untilFinal(oa, (await oa.batches.create({ input_file_id: file2.id, endpoint: '/v1/images/generations', completion_window: '24h' })).id);
  assert.equal(again.status, 'completed');
  assert.deepEqual(again.request_counts, { total: 6, completed: 6, failed: 0 });
  assert.equal(h.fake.calls.length, calls, 'no new upstream call');
  const out2 = await fileLines(oa, again.output_file_id);
  assert.deepEqual(out2.map((l) => l.custom_id).sort(), lines.map((l) => l.custom_id).sort());

  // list: newest first, pages by limit/after.
  const page1 = await oa.batches.list({ limit: 1 });
  assert.deepEqual(page1.data.map((b) => b.id), [again.id]);
  assert.equal(page1.has_more, true);
  const page2 = await oa.batches.list({ limit: 1, after: again.id });
  assert.deepEqual(page2.data.map((b) => b.id), [created.id]);
  const all: string[] = [];
  for await (const b of oa.batches.list({ limit: 1 })) all.push(b.id);
  assert.deepEqual(all, [again.id, created.id]);
});

test('Batch API: an invalid file → failed with errors naming each bad line; nothing enqueued', { timeout: 60_000 }, async (t) => {
  const { h, oa } = await setup(t);
  const text = [
    JSON.stringify(requestLine('a', 'fine')),
    '{not json',
    JSON.stringify({ ...requestLine('b', 'x'), body: { prompt: 'x', width: 100 } }),
    '',
    JSON.stringify(requestLine('a', 'duplicate id')),
    JSON.stringify({ custom_id: 'c', method: 'GET', url: '/v1/chat/completions', body: { prompt: 'x' } }),
  ].join('\n');
  const file = await oa.files.create({ file: await toFile(Buffer.from(text), 'bad.jsonl'), purpose: 'batch' });
  const b = await untilFinal(oa, (await oa.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' })).id);
  assert.equal(b.status, 'failed');
  assert.equal(typeof b.failed_at, 'number');
  const errors = b.errors?.data ?? [];
  assert.deepEqual([...new Set(errors.map((e) => e.line))], [2, 3, 5, 6], JSON.stringify(errors));
  assert.match(errors.find((e) => e.line === 3)?.message ?? '', /line 3: body\.width: must be ≥ 64/);
  assert.match(errors.find((e) => e.line === 5)?.message ?? '', /custom_id "a" is used twice \(first at line 1\)/);
  assert.ok(errors.some((e) => e.line === 6 && e.param === 'method'));
  assert.ok(errors.some((e) => e.line === 6 && e.param === 'url'));
  const counts = await h.producer().queue.getJobCounts();
  assert.equal(Object.values(counts).reduce((a, n) => a + n, 0), 0, 'nothing enqueued');
  assert.equal(h.fake.calls.length, 0);
});

test('Batch API: batches.cancel mid-run → cancelling → cancelled; running jobs finish, the rest are in the error file', { timeout: 90_000 }, async (t) => {
  const { h, oa } = await setup(t, { latencyMs: 300, workerEnv: { WORKER_CONCURRENCY: '1' } });
  const lines = Array.from({ length: 12 }, (_, i) => requestLine(`c-${i}`, `cancel prompt ${i}`));
  const file = await oa.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'c.jsonl'), purpose: 'batch' });
  const created = await oa.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' });
  await waitFor(async () => ((await oa.batches.retrieve(created.id)).request_counts?.completed ?? 0) >= 1, { timeoutMs: 30_000, intervalMs: 50, what: 'a first completed request' });
  const cancelling = await oa.batches.cancel(created.id);
  assert.equal(cancelling.status, 'cancelling');
  assert.equal(typeof cancelling.cancelling_at, 'number');
  const b = await untilFinal(oa, created.id);
  assert.equal(b.status, 'cancelled');
  assert.equal(typeof b.cancelled_at, 'number');
  const counts = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  assert.equal(counts.total, 12);
  assert.ok(counts.completed >= 1 && counts.completed < 12, JSON.stringify(counts));
  assert.equal(counts.completed + counts.failed, 12);
  const out = await fileLines(oa, b.output_file_id);
  const errs = await fileLines(oa, b.error_file_id);
  assert.equal(out.length, counts.completed);
  assert.equal(errs.length, counts.failed);
  assert.ok(errs.every((e) => e.response === null && e.error?.code === 'batch_cancelled'));
  assert.deepEqual([...out, ...errs].map((l) => l.custom_id).sort(), lines.map((l) => l.custom_id).sort());
  assert.equal(h.fake.calls.length, counts.completed, 'no call for a cancelled request');
});

test('Batch API: the completion window passing → expired, the completed part in the output file, the rest batch_expired', { timeout: 90_000 }, async (t) => {
  const { h, oa } = await setup(t, { latencyMs: 400, env: { OPENAI_BATCH_WINDOW_S: '2' }, workerEnv: { WORKER_CONCURRENCY: '1' } });
  const lines = Array.from({ length: 30 }, (_, i) => requestLine(`e-${i}`, `expire prompt ${i}`));
  const file = await oa.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'e.jsonl'), purpose: 'batch' });
  const b = await untilFinal(oa, (await oa.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' })).id);
  assert.equal(b.status, 'expired');
  assert.equal(typeof b.expired_at, 'number');
  const counts = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  assert.ok(counts.completed >= 1 && counts.completed < 30, JSON.stringify(counts));
  const out = await fileLines(oa, b.output_file_id);
  const errs = await fileLines(oa, b.error_file_id);
  assert.equal(out.length, counts.completed);
  for (const l of out) {
    const bytes = Buffer.from(await (await fetch(l.response?.body.data[0]?.url as string)).arrayBuffer());
    assert.deepEqual([sha(bytes)], servedFor(h, `expire prompt ${l.custom_id.slice(2)}`));
  }
  assert.ok(errs.length > 0 && errs.every((e) => e.error?.code === 'batch_expired'), JSON.stringify(errs[0]));
  assert.equal(out.length + errs.length, 30);
  // They expired as SPEC §8 says (the window's end is their deadline), not cancelled.
  const fluxq = await h.producer().getBatch(b.id);
  assert.equal(fluxq?.counts.expired, errs.length, JSON.stringify(fluxq?.counts));
  assert.match(errs[0]?.error?.message ?? '', /^expired: deadline .* passed before the job started/);
});

/** Total commands Redis has served (INFO commandstats). */
async function commandsServed(h: Harness): Promise<number> {
  const info = await h.redis.info('commandstats');
  return [...info.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

test('100 concurrent images.generate through one API process: all answered; waiting costs Redis the same with 100 waiters as with none', { timeout: 120_000 }, async (t) => {
  // A private Redis: commandstats count every client of the server.
  const redis = await startLocalRedis();
  const { h, oa } = await setup(t, { redisUrl: redis.url, workerEnv: { WORKER_CONCURRENCY: '16' } });
  // After the harness and the API closed (after-hooks run in the order they were added).
  t.after(() => redis.stop());
  const producer = h.producer();
  await producer.queue.pause();
  const window = async () => {
    const before = await commandsServed(h);
    await new Promise((r) => setTimeout(r, 2000));
    return (await commandsServed(h)) - before - 1;
  };
  const idle = await window();
  const answers = Promise.all(Array.from({ length: 100 }, (_, i) => oa.images.generate({ prompt: `crowd ${i}`, size: '256x256' })));
  answers.catch(() => undefined);
  await waitFor(async () => (await producer.queue.count()) >= 100, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: '100 jobs enqueued',
  });
  await new Promise((r) => setTimeout(r, 300));
  const waiting = await window();
  t.diagnostic(`Redis commands in 2 s: ${idle} with no waiter, ${waiting} with 100 waiting requests`);
  // A poll per waiter every 250 ms would be 800 commands in the window.
  assert.ok(waiting <= idle + 40, `commands with 100 waiters (${waiting}) ≈ idle (${idle})`);
  await producer.queue.resume();
  const all = await answers;
  assert.equal(all.length, 100);
  for (const [i, a] of all.entries()) assert.deepEqual([sha(Buffer.from(a.data?.[0]?.b64_json ?? '', 'base64'))], servedFor(h, `crowd ${i}`));
});

test('tenant tokens are API keys: a tenant’s images and batches are its own; another tenant gets 404 and pays for its own', { timeout: 90_000 }, async (t) => {
  const acmeKey = 'acme-token-0123456789abcdef';
  const globexKey = 'globex-token-0123456789abcdef';
  const { h, api } = await setup(t, { env: { API_TOKENS: `acme=${acmeKey},globex=${globexKey}` } });
  const acme = client(api, acmeKey);
  const globex = client(api, globexKey);
  await acme.images.generate({ prompt: 'acme logo', size: '256x256' }, { headers: { 'Idempotency-Key': 'acme-img-1' } });
  assert.equal((await h.producer().getJob('acme-img-1'))?.tenant, 'acme');
  await assert.rejects(globex.images.generate({ prompt: 'x', size: '256x256' }, { headers: { 'Idempotency-Key': 'acme-img-1' } }), (err: unknown) => err instanceof OpenAI.ConflictError);

  const text = jsonl([requestLine('only', 'tenant batch prompt')]);
  const file = await acme.files.create({ file: await toFile(Buffer.from(text), 't.jsonl'), purpose: 'batch' });
  await assert.rejects(globex.files.retrieve(file.id), OpenAI.NotFoundError);
  await assert.rejects(globex.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' }), OpenAI.BadRequestError);
  const b = await untilFinal(acme, (await acme.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations', completion_window: '24h' })).id);
  assert.equal(b.status, 'completed');
  assert.equal((await h.producer().getBatch(b.id))?.counts.completed, 1);
  await assert.rejects(globex.batches.retrieve(b.id), OpenAI.NotFoundError);
  await assert.rejects(globex.batches.cancel(b.id), OpenAI.NotFoundError);
  assert.deepEqual((await globex.batches.list()).data, []);
  assert.deepEqual((await acme.batches.list()).data.map((x) => x.id), [b.id]);
  assert.deepEqual((await client(api).batches.list()).data.map((x) => x.id), [b.id], 'the operator sees every tenant’s');

  // The same content batched by another tenant is that tenant's own run: its own upstream call.
  const gfile = await globex.files.create({ file: await toFile(Buffer.from(text), 't.jsonl'), purpose: 'batch' });
  const gb = await untilFinal(globex, (await globex.batches.create({ input_file_id: gfile.id, endpoint: '/v1/images/generations', completion_window: '24h' })).id);
  assert.equal(gb.status, 'completed');
  assert.equal(h.fake.callsFor('tenant batch prompt').length, 2);
  const [line] = await fileLines(globex, gb.output_file_id);
  assert.notEqual(line?.response?.request_id, (await fileLines(acme, b.output_file_id))[0]?.response?.request_id);
});
