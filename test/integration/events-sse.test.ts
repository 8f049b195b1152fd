import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { freePort, startLocalRedis } from '../../src/demo/local-redis.js';
import { EVENT, emitEvent } from '../../src/shared/events.js';
import { redisKeys } from '../../src/shared/keys.js';
import { API_TOKEN, startApi } from '../helpers/api.js';
import { startHarness, type Harness, type WorkerProcess } from '../helpers/harness.js';
import { openSse, type SseClient, type SseEvent } from '../helpers/sse-client.js';
import { waitFor } from '../helpers/wait-for.js';

const auth = { authorization: `Bearer ${API_TOKEN}` };

async function spawnApi(h: Harness, port: number, extra: Record<string, string> = {}): Promise<WorkerProcess> {
  return h.spawnFluxq(['api'], { API_TOKEN, API_HOST: '127.0.0.1', API_PORT: String(port), ...extra }, /fluxq api listening/);
}

/** Every entry of the stream as SSE would send it, optionally only one batch's. */
async function streamEntries(h: Harness, batch?: string): Promise<SseEvent[]> {
  const raw = await h.redis.xrange(redisKeys(h.prefix, h.queueName).events, '-', '+');
  return raw
    .map(([id, f]) => ({ id, event: f[f.indexOf('type') + 1], data: f[f.indexOf('data') + 1] as string }))
    .filter((e) => batch === undefined || (JSON.parse(e.data) as { batchId?: string }).batchId === batch);
}

const lastId = (c: SseClient) => c.events[c.events.length - 1]?.id as string;

test('SSE: a client gets job.completed for every job of a batch in stream order; reconnecting with Last-Event-ID mid-batch, and again across an API restart, it misses nothing and sees nothing twice', { timeout: 180_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 250 } });
  const port = await freePort();
  let api = await spawnApi(h, port);
  t.after(() => api.kill());
  const url = `http://127.0.0.1:${port}`;
  const N = 12;
  const batch = 'sse-run';

  // Connected before anything happens: live entries only.
  const c1 = await openSse(`${url}/v1/batches/${batch}/events`, auth);
  assert.equal(c1.status, 200);
  assert.match(String(c1.headers['content-type']), /^text\/event-stream/);
  const res = await fetch(`${url}/v1/batches`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ batch, requests: Array.from({ length: N }, (_, i) => ({ id: `sse-${i}`, prompt: `sse ${i}` })) }) });
  assert.equal(res.status, 201);
  await h.worker({ WORKER_CONCURRENCY: '1' });

  // 1st connection: the first three, then the client goes away.
  await waitFor(() => c1.events.length >= 3, { what: 'three events on the first connection', timeoutMs: 30_000 });
  c1.close();
  const seen: SseEvent[] = [...c1.events];
  // 2nd connection: resume from the last id the first one saw, after more jobs finished meanwhile.
  await waitFor(async () => (await streamEntries(h, batch)).length >= seen.length + 2, { what: 'jobs finishing while disconnected', timeoutMs: 30_000 });
  const c2 = await openSse(`${url}/v1/batches/${batch}/events`, { ...auth, 'last-event-id': lastId(c1) });
  await waitFor(() => c2.events.length >= 4, { what: 'the second connection catching up', timeoutMs: 30_000 });
  // The API restarts (a new process, a new hub) while the batch runs.
  api.kill('SIGTERM');
  await api.exited;
  await c2.ended;
  seen.push(...c2.events);
  await waitFor(async () => (await streamEntries(h, batch)).length >= seen.length + 1, { what: 'a job finishing while the API is down', timeoutMs: 30_000 });
  api = await spawnApi(h, port);
  const c3 = await openSse(`${url}/v1/batches/${batch}/events`, { ...auth, 'last-event-id': lastId(c2) });
  t.after(() => c3.close());
  await waitFor(() => c3.events.some((e) => e.event === EVENT.batchCompleted), { what: 'batch.completed on the third connection', timeoutMs: 60_000 });
  seen.push(...c3.events);

  const expected = await streamEntries(h, batch);
  assert.deepEqual(seen.map((e) => e.id), expected.map((e) => e.id), 'every entry of the batch once, in stream order, over three connections');
  assert.deepEqual(seen, expected, 'id, event and data exactly as stored');
  const completed = seen.filter((e) => e.event === EVENT.jobCompleted).map((e) => JSON.parse(e.data) as { jobId: string; batchId: string; images: unknown[] });
  assert.equal(completed.length, N);
  assert.deepEqual(completed.map((d) => d.jobId).sort(), Array.from({ length: N }, (_, i) => `sse-${i}`).sort());
  assert.ok(completed.every((d) => d.batchId === batch && d.images.length === 1));
  assert.ok(c1.events.length >= 3 && c2.events.length >= 4 && c3.events.length >= 1, 'each connection carried some');
});

test('SSE: ?batch ?job ?types combine; ?after=0 replays the whole stream, ?after=ID what follows it, none of them = live only; auth as the JSON routes (Bearer or the page cookie); bad input 400', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h);
  t.after(() => api.close());
  const keys = redisKeys(h.prefix, h.queueName);
  const emit = (type: Parameters<typeof emitEvent>[3], data: Record<string, unknown>) => emitEvent(h.redis, keys.events, 1000, type, data as never);
  const old = [
    await emit(EVENT.jobCompleted, { jobId: 'a1', batchId: 'A', images: [], attempts: 1, possibly_billed: 0, output_mp: 1, input_mp: 0 }),
    await emit(EVENT.jobFailed, { jobId: 'a2', batchId: 'A', error: 'permanent: no', attempts: 1, possibly_billed: 0 }),
    await emit(EVENT.queuePaused, { reason: 'operator' }),
  ];
  const open = (q: string, headers: Record<string, string> = auth) => openSse(`${api.url}/v1/events${q}`, headers);
  const clients = {
    live: await open(''),
    all: await open('?after=0'),
    afterFirst: await open(`?after=${old[0]}`),
    batchA: await open('?batch=A&after=0'),
    batchPath: await openSse(`${api.url}/v1/batches/A/events?after=0`, auth),
    jobA2Failed: await open('?batch=A&job=a2&types=job.failed&after=0'),
    typesBoth: await open('?types=job.completed,queue.paused&after=0'),
    header: await open('?after=0', { ...auth, 'last-event-id': old[1] as string }),
  };
  t.after(() => Object.values(clients).forEach((c) => c.close()));
  const fresh = [
    await emit(EVENT.jobCompleted, { jobId: 'b1', batchId: 'B', images: [], attempts: 1, possibly_billed: 0, output_mp: 1, input_mp: 0 }),
    await emit(EVENT.jobFailed, { jobId: 'a2', batchId: 'A', error: 'permanent: again', attempts: 2, possibly_billed: 0 }),
  ];
  const end = fresh[1] as string;
  const ids = (c: SseClient) => c.events.map((e) => e.id);
  await waitFor(() => ['live', 'all', 'afterFirst', 'batchA', 'batchPath', 'jobA2Failed', 'header'].every((k) => ids(clients[k as keyof typeof clients]).includes(end)), { what: 'every client to get the last entry' });
  await waitFor(() => ids(clients.typesBoth).includes(fresh[0] as string), { what: 'typesBoth' });
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(ids(clients.live), fresh, 'live only');
  assert.deepEqual(ids(clients.all), [...old, ...fresh], '?after=0: the whole stream');
  assert.deepEqual(ids(clients.afterFirst), [old[1], old[2], ...fresh]);
  assert.deepEqual(ids(clients.batchA), [old[0], old[1], fresh[1]]);
  assert.deepEqual(ids(clients.batchPath), ids(clients.batchA), '/v1/batches/:id/events is ?batch=');
  assert.deepEqual(ids(clients.jobA2Failed), [old[1], fresh[1]]);
  assert.deepEqual(ids(clients.typesBoth), [old[0], old[2], fresh[0]]);
  assert.deepEqual(ids(clients.header), [old[2], ...fresh], 'Last-Event-ID wins over ?after=');
  const frame = clients.all.events[0] as SseEvent;
  assert.deepEqual(frame, { id: old[0], event: 'job.completed', data: JSON.stringify({ jobId: 'a1', batchId: 'A', images: [], attempts: 1, possibly_billed: 0, output_mp: 1, input_mp: 0 }) });

  // Auth: no token → 401 JSON; a wrong one too; the page cookie is accepted.
  const none = await fetch(`${api.url}/v1/events`);
  assert.equal(none.status, 401);
  assert.match(((await none.json()) as { error: string }).error, /API token/);
  assert.equal((await fetch(`${api.url}/v1/batches/A/events`, { headers: { authorization: 'Bearer nope' } })).status, 401);
  const login = await fetch(`${api.url}/batches/A?token=${API_TOKEN}`, { redirect: 'manual' });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
  assert.match(cookie, /^fluxq_session=/);
  const viaCookie = await openSse(`${api.url}/v1/events?after=0&types=queue.paused`, { cookie });
  t.after(() => viaCookie.close());
  assert.equal(viaCookie.status, 200);
  await waitFor(() => viaCookie.events.length === 1, { what: 'an event through the cookie' });
  assert.equal((await fetch(`${api.url}/v1/events`, { headers: { cookie: 'fluxq_session=forged' } })).status, 401);

  // Bad input: 400 naming the field.
  const bad = await api.call('/v1/events?after=yesterday');
  assert.equal(bad.status, 400);
  assert.deepEqual(((await bad.json()) as { details: unknown }).details, [{ path: 'after', message: '"yesterday" is not a stream entry id (ms-seq, or 0 for the whole stream)' }]);
  const badTypes = await api.call('/v1/events?types=job.completed,DROP');
  assert.equal(badTypes.status, 400);
  assert.equal((await api.call('/v1/batches/a:b/events')).status, 400);
});

test('SSE: a `: keep-alive` comment comes at the keep-alive interval while nothing happens', { timeout: 30_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h, {}, { events: { keepAliveMs: 150 } });
  t.after(() => api.close());
  const c = await openSse(`${api.url}/v1/events`, auth);
  t.after(() => c.close());
  await waitFor(() => c.comments.filter((x) => x === 'keep-alive').length >= 3, { what: 'three keep-alives' });
  assert.equal(c.events.length, 0);
});

test('SSE: a client that stops reading is cut off once its buffer passes the bound; a reading client on the same API gets every entry', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h, {}, { events: { maxBufferedBytes: 64 * 1024 } });
  t.after(() => api.close());
  const keys = redisKeys(h.prefix, h.queueName);
  const good = await openSse(`${api.url}/v1/events`, auth);
  t.after(() => good.close());
  // The slow one: sends its request and reads nothing.
  const { port } = new URL(api.url);
  const sock = connect(Number(port), '127.0.0.1');
  t.after(() => sock.destroy());
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_TOKEN}\r\nAccept: text/event-stream\r\n\r\n`);
  sock.pause();
  let closed = false;
  sock.on('close', () => (closed = true));
  let received = 0;
  await new Promise((r) => setTimeout(r, 300));
  // 24 MB of events: far more than socket buffers hold.
  const N = 3000;
  const pad = 'x'.repeat(8000);
  for (let i = 0; i < N; i += 100) {
    const p = h.redis.pipeline();
    for (let j = i; j < i + 100; j++) p.xadd(keys.events, '*', 'type', 'job.failed', 'data', JSON.stringify({ jobId: `slow-${j}`, error: pad, attempts: 1, possibly_billed: 0 }));
    await p.exec();
  }
  await waitFor(() => good.events.length === N, { what: 'the reading client to get every entry', timeoutMs: 60_000 });
  // Now the slow one reads what reached it: the stream ended early.
  sock.on('data', (d: Buffer) => (received += d.length));
  sock.resume();
  await waitFor(() => closed, { what: 'the slow client to be cut off', timeoutMs: 30_000 });
  const total = N * (8000 + 100);
  assert.ok(received < total / 2, `the slow client got ${received} of ${total} bytes before it was cut off`);
});

test('SSE: 200 concurrent clients on one API process cost Redis what one does (INFO commandstats) and keep its RSS bounded', { timeout: 180_000 }, async (t) => {
  // A private redis-server: INFO commandstats then counts only this test's commands.
  const server = await startLocalRedis();
  const h = await startHarness(t, { redisUrl: server.url });
  t.after(() => server.stop());
  const keys = redisKeys(h.prefix, h.queueName);
  const port = await freePort();
  const api = await spawnApi(h, port);
  t.after(() => api.kill());
  const url = `http://127.0.0.1:${port}`;
  const rss = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${api.proc.pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  };
  const calls = async () => {
    const info = await h.redis.info('commandstats');
    let n = 0;
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (!['info', 'xadd'].includes(m[1] as string)) n += Number(m[2]);
    return n;
  };
  let k = 0;
  /** 20 entries over about 2 s, read by every client; the Redis commands besides the writer's in that window. */
  const round = async (clients: SseClient[]) => {
    const before = await calls();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push(await emitEvent(h.redis, keys.events, 100_000, EVENT.jobFailed, { jobId: `load-${k++}`, error: 'permanent: x', attempts: 1, possibly_billed: 0 }));
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => clients.every((c) => c.events.some((e) => e.id === ids[19])), { what: 'every client to get the 20th entry', timeoutMs: 30_000 });
    for (const c of clients) assert.deepEqual(c.events.slice(-20).map((e) => e.id), ids);
    return (await calls()) - before;
  };
  const one = [await openSse(`${url}/v1/events`, auth)];
  t.after(() => one.forEach((c) => c.close()));
  await round(one); // warm-up: the hub's first reads
  const oneCost = await round(one);
  const rssOne = rss();
  const many: SseClient[] = [];
  t.after(() => many.forEach((c) => c.close()));
  for (let i = 0; i < 200; i += 20) many.push(...(await Promise.all(Array.from({ length: 20 }, () => openSse(`${url}/v1/events`, auth)))));
  assert.ok(many.every((c) => c.status === 200));
  const manyCost = await round(many);
  const rssMany = rss();
  t.diagnostic(`Redis commands for 20 entries: 1 client ${oneCost}, 200 clients ${manyCost}; API RSS ${Math.round(rssOne / 2 ** 20)} MiB → ${Math.round(rssMany / 2 ** 20)} MiB`);
  assert.ok(oneCost <= 30, `one client: ${oneCost} commands for 20 entries`);
  assert.ok(manyCost <= oneCost + 10, `200 clients: ${manyCost} commands, 1 client: ${oneCost}`);
  assert.ok(rssMany - rssOne < 64 * 2 ** 20, `RSS grew ${Math.round((rssMany - rssOne) / 2 ** 20)} MiB with 200 clients`);
});
