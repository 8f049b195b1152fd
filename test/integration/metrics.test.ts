import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkerMetrics, serveMetrics } from '../../src/worker/metrics.js';
import { startApi } from '../helpers/api.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { metricTypes, parsePrometheus } from '../helpers/prometheus.js';

test('/metrics: every fleet counter is there from the start at 0, and moves by the right amounts after a batch', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  h.fake.inject({ prompt: 'metrics 2', times: 1, fault: { type: 'status', status: 503, errorType: 'internal_error', message: 'busy' } });
  h.fake.inject({ prompt: 'metrics 4', fault: { type: 'moderation' } });
  h.fake.inject({ prompt: 'metrics 3', times: 1, fault: { type: 'status', status: 429, retryAfter: '1', errorType: 'rate_limit', message: 'slow' } });
  const api = await startApi(h);
  t.after(() => api.close());
  const scrape = async () => {
    const res = await api.call('/metrics');
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };
  const before = await scrape();
  const types = metricTypes(before);
  const m0 = parsePrometheus(before);
  for (const name of ['fluxq_jobs_completed_total', 'fluxq_jobs_failed_total', 'fluxq_jobs_cancelled_total', 'fluxq_jobs_expired_total']) {
    assert.equal(m0.get(`${name}{tenant="default"}`), 0, `${name} present at 0, labelled by tenant`);
    assert.equal(types.get(name), 'counter', name);
  }
  for (const name of ['fluxq_output_megapixels_total', 'fluxq_input_megapixels_total', 'fluxq_possibly_billed_total', 'fluxq_jobs_retried_total', 'fluxq_cost_usd_total']) {
    assert.equal(m0.get(name), 0, `${name} present at 0`);
    assert.equal(types.get(name), 'counter', name);
  }
  assert.equal(m0.get('fluxq_queue_jobs{queue="generate",state="waiting"}'), 0);

  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 6 }, (_, i) => ({ prompt: `metrics ${i}`, width: 1024, height: 1024 })), { batch: 'metered' });
  assert.equal(parsePrometheus(await scrape()).get('fluxq_queue_jobs{queue="generate",state="waiting"}'), 6);

  const metrics = new WorkerMetrics();
  const served = await serveMetrics(metrics.registry, 0, '127.0.0.1');
  t.after(() => new Promise((r) => served.server.close(r)));
  await h.worker({ WORKER_CONCURRENCY: '2' }, { metrics });
  await producer.waitForBatch('metered', { timeoutMs: 30_000 });

  const m1 = parsePrometheus(await scrape());
  assert.equal(m1.get('fluxq_jobs_completed_total{tenant="default"}'), 5);
  assert.equal(m1.get('fluxq_jobs_failed_total{tenant="default"}'), 1);
  assert.equal(m1.get('fluxq_jobs_retried_total'), 1, 'the 503 was retried once');
  assert.equal(m1.get('fluxq_output_megapixels_total'), 5);
  assert.equal(m1.get('fluxq_input_megapixels_total'), 0);
  assert.equal(m1.get('fluxq_possibly_billed_total'), 0);
  assert.equal(m1.get('fluxq_cost_usd_total'), 0.15);
  assert.equal(m1.get('fluxq_queue_jobs{queue="generate",state="waiting"}'), 0);
  assert.ok((m1.get('process_resident_memory_bytes') ?? 0) > 0, 'process defaults');

  const w = parsePrometheus(await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text());
  assert.equal(w.get('fluxq_upstream_requests_total{status="200"}'), 5);
  assert.equal(w.get('fluxq_upstream_requests_total{status="503"}'), 1);
  assert.equal(w.get('fluxq_upstream_requests_total{status="429"}'), 1);
  assert.equal(w.get('fluxq_upstream_requests_total{status="400"}'), 1);
  assert.equal(w.get('fluxq_rate_limited_total'), 1);
  assert.equal(w.get('fluxq_upstream_latency_seconds_count'), 8);
  const stored = (await producer.getBatch('metered'))!;
  assert.equal(stored.counts.completed, 5);
  const images = await h.listObjects('images/metered/');
  let total = 0;
  for (const key of images.filter((k) => k.endsWith('.png'))) total += (await h.getObject(key)).bytes.length;
  assert.equal(w.get('fluxq_bytes_uploaded_total'), total);
  assert.ok((w.get('process_resident_memory_bytes') ?? 0) > 0);
  await waitFor(async () => parsePrometheus(await scrape()).get('fluxq_jobs_completed_total{tenant="default"}') === 5);
});

test('`fluxq worker` with WORKER_METRICS_PORT serves its own /metrics', { timeout: 60_000 }, async (t) => {
  const { freePort } = await import('../../src/demo/local-redis.js');
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const port = await freePort();
  const w = await h.spawnWorker({ WORKER_METRICS_PORT: String(port), API_HOST: '127.0.0.1', WORKER_CONCURRENCY: '3' });
  await w.waitForLine(/worker metrics at \/metrics/);
  await h.producer().enqueue({ id: 'scraped', prompt: 'scrape me' });
  await h.producer().waitFor('scraped');
  const m = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  assert.equal(m.get('fluxq_upstream_requests_total{status="200"}'), 1);
  assert.equal(m.get('fluxq_worker_jobs_completed_total'), 1);
  assert.equal(m.get('fluxq_worker_concurrency'), 3);
  assert.ok((m.get('nodejs_eventloop_lag_p99_seconds') ?? -1) >= 0);
  assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});
