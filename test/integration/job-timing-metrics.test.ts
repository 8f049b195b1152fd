import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkerMetrics, serveMetrics } from '../../src/worker/metrics.js';
import { startHarness } from '../helpers/harness.js';
import { metricTypes, parsePrometheus } from '../helpers/prometheus.js';

test('worker /metrics: fluxq_queue_wait_seconds (enqueue → first call, once per job even when retried) and fluxq_job_duration_seconds (enqueue → final, by outcome) are histograms with an observation per job', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 150 } });
  h.fake.inject({ prompt: 'timed 1', times: 1, fault: { type: 'status', status: 503, errorType: 'internal_error', message: 'busy' } });
  h.fake.inject({ prompt: 'timed 2', fault: { type: 'moderation' } });
  const metrics = new WorkerMetrics();
  const served = await serveMetrics(metrics.registry, 0, '127.0.0.1');
  t.after(() => new Promise((r) => served.server.close(r)));
  const scrape = async () => {
    const text = await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text();
    return { text, m: parsePrometheus(text) };
  };
  const before = await scrape();
  assert.equal(metricTypes(before.text).get('fluxq_queue_wait_seconds'), 'histogram');
  assert.equal(metricTypes(before.text).get('fluxq_job_duration_seconds'), 'histogram');
  assert.equal(before.m.get('fluxq_queue_wait_seconds_count'), 0, 'present from the start');
  assert.equal(before.m.get('fluxq_job_duration_seconds_count{outcome="completed"}'), 0);
  assert.equal(before.m.get('fluxq_job_duration_seconds_count{outcome="failed"}'), 0);

  const producer = h.producer();
  const enqueuedAt = Date.now();
  await producer.enqueueBulk(Array.from({ length: 4 }, (_, i) => ({ id: `timed-${i}`, prompt: `timed ${i}` })), { batch: 'timed' });
  // The jobs wait at least this long before any worker exists.
  await new Promise((r) => setTimeout(r, 1000));
  await h.worker({ WORKER_CONCURRENCY: '1' }, { metrics });
  await producer.waitForBatch('timed', { timeoutMs: 60_000 });
  const elapsed = (Date.now() - enqueuedAt) / 1000;

  const { m } = await scrape();
  assert.equal(m.get('fluxq_upstream_requests_total{status="503"}'), 1, 'one job was retried');
  assert.equal(m.get('fluxq_queue_wait_seconds_count'), 4, 'one observation per job: the retry is not a first call');
  const waitSum = m.get('fluxq_queue_wait_seconds_sum') ?? 0;
  assert.ok(waitSum >= 4 * 1.0 && waitSum <= 4 * elapsed, `queue wait sum ${waitSum} s`);
  assert.equal(m.get('fluxq_queue_wait_seconds_bucket{le="0.5"}'), 0, 'every job waited ≥ 1 s');
  assert.equal(m.get('fluxq_queue_wait_seconds_bucket{le="+Inf"}'), 4);
  assert.equal(m.get('fluxq_job_duration_seconds_count{outcome="completed"}'), 3);
  assert.equal(m.get('fluxq_job_duration_seconds_count{outcome="failed"}'), 1);
  const durSum = (m.get('fluxq_job_duration_seconds_sum{outcome="completed"}') ?? 0) + (m.get('fluxq_job_duration_seconds_sum{outcome="failed"}') ?? 0);
  // Each job ends after its first call was sent, and the fake answers after 150 ms.
  assert.ok(durSum >= waitSum + 4 * 0.15 && durSum <= 4 * elapsed, `job duration sum ${durSum} s, queue wait sum ${waitSum} s`);
});
