import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { startFakeFlux } from '../../src/demo/fake-flux.js';
import { UpstreamError } from '../../src/shared/errors.js';
import { Secret } from '../../src/shared/secret.js';
import { FluxClient } from '../../src/worker/flux-client.js';
import { startHarness } from '../helpers/harness.js';

/**
 * SPEC §7: a 200 answer larger than MAX_RESPONSE_BYTES (default 134217728) is ambiguous and
 * never held in memory: a Content-Length above the cap is refused before anything is read
 * or allocated, a chunked body is cut as soon as it passes the cap. The fake generates its
 * 200 MB answer as it writes it, so neither side holds it.
 */

const MB = 1024 * 1024;
const ANSWER = 200 * MB;

async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

test('the client refuses a 200 over MAX_RESPONSE_BYTES: by Content-Length before reading, chunked as soon as it passes the cap', { timeout: 60_000 }, async (t) => {
  const fake = await startFakeFlux({ latencyMs: 0 });
  t.after(() => fake.close());
  fake.inject({ prompt: 'with-length', fault: { type: 'oversized', bytes: ANSWER } });
  fake.inject({ prompt: 'chunked', fault: { type: 'oversized', bytes: ANSWER, contentLength: false } });
  const client = (maxResponseBytes?: number) =>
    new FluxClient({ baseUrl: fake.url, apiKey: new Secret(fake.apiKey), timeoutMs: 30_000, connections: 1, ...(maxResponseBytes ? { maxResponseBytes } : {}) });

  const byDefault = client();
  t.after(() => byDefault.close());
  await assert.rejects(byDefault.generate('flux-2-pro', { prompt: 'with-length' }), (err: unknown) => {
    assert.ok(err instanceof UpstreamError);
    assert.equal(err.kind, 'ambiguous');
    assert.equal(err.possiblyBilled, true);
    assert.equal(err.message, 'ambiguous: HTTP 200: answer larger than MAX_RESPONSE_BYTES (134217728 bytes)');
    return true;
  });

  const capped = client(4 * MB);
  t.after(() => capped.close());
  await assert.rejects(capped.generate('flux-2-pro', { prompt: 'chunked' }), (err: unknown) => {
    assert.ok(err instanceof UpstreamError);
    assert.equal(err.kind, 'ambiguous');
    assert.equal(err.message, 'ambiguous: HTTP 200: answer larger than MAX_RESPONSE_BYTES (4194304 bytes)');
    return true;
  });
  // The fake stops once the socket is gone; what it wrote is socket buffers, not the answer.
  await new Promise((r) => setTimeout(r, 200));
  const [withLength, chunked] = [fake.callsFor('with-length')[0], fake.callsFor('chunked')[0]];
  assert.equal(withLength?.outcome, 'client went away mid-body');
  assert.equal(chunked?.outcome, 'client went away mid-body');
  assert.ok((withLength?.bytesSent ?? 0) < 48 * MB, `with Content-Length the fake wrote ${withLength?.bytesSent} bytes before the socket closed`);
  assert.ok((chunked?.bytesSent ?? 0) < 48 * MB, `chunked, the fake wrote ${chunked?.bytesSent} bytes before the socket closed`);
});

test('a chunked 200 past a small MAX_RESPONSE_BYTES: ambiguous, retried MAX_AMBIGUOUS_RETRIES times, possibly billed, nothing stored', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 }, env: { MAX_RESPONSE_BYTES: String(4 * MB), MAX_AMBIGUOUS_RETRIES: '1', JOB_ATTEMPTS: '5' } });
  h.fake.inject({ prompt: 'huge', fault: { type: 'oversized', bytes: ANSWER, contentLength: false } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'huge-1', prompt: 'huge' });
  const st = await producer.waitFor('huge-1', { timeoutMs: 90_000 });
  assert.equal(st.state, 'failed');
  assert.match(st.error ?? '', /^ambiguous: HTTP 200: answer larger than MAX_RESPONSE_BYTES \(4194304 bytes\)/);
  assert.equal(h.fake.callsFor('huge').length, 2, '1 + MAX_AMBIGUOUS_RETRIES calls');
  assert.equal(st.possibly_billed, 2);
  assert.deepEqual(await h.listObjects(), [], 'nothing stored');
});

test('a worker at the default cap refuses a 200 MB answer by its Content-Length: its peak RSS grows far less than the answer', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 }, env: { MAX_AMBIGUOUS_RETRIES: '0', JOB_ATTEMPTS: '5' } });
  h.fake.inject({ prompt: 'huge', fault: { type: 'oversized', bytes: ANSWER } });
  const producer = h.producer();
  // A first job warms the worker's pools and code paths, so the baseline is a working worker.
  await producer.enqueue({ id: 'warm', prompt: 'warm up', width: 512, height: 512 });
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '1' });
  assert.equal((await producer.waitFor('warm', { timeoutMs: 30_000 })).state, 'completed');
  const before = await peakRssBytes(w.proc.pid as number);
  await producer.enqueue({ id: 'huge-2', prompt: 'huge' });
  const st = await producer.waitFor('huge-2', { timeoutMs: 90_000 });
  const after = await peakRssBytes(w.proc.pid as number);
  assert.equal(st.state, 'failed');
  assert.match(st.error ?? '', /^ambiguous: HTTP 200: answer larger than MAX_RESPONSE_BYTES \(134217728 bytes\)/);
  assert.equal(st.possibly_billed, 1);
  const growth = after - before;
  console.log(`worker peak RSS ${(before / MB).toFixed(0)} → ${(after / MB).toFixed(0)} MiB for a ${ANSWER / MB} MB answer`);
  assert.ok(growth < 32 * MB, `peak RSS grew ${(growth / MB).toFixed(1)} MiB for a ${ANSWER / MB} MB answer`);
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});
