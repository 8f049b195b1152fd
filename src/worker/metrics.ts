import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One worker process's own figures (SPEC §6), on WORKER_METRICS_PORT: upstream calls by
 * status, their latency, 429s, bytes uploaded, jobs by outcome, the concurrency in force,
 * and Node's process defaults. Fleet-wide totals are the API's `/metrics`.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly upstreamRequests = new Counter({ name: 'fluxq_upstream_requests_total', help: 'Upstream calls by HTTP status (or "error" when there was no answer)', labelNames: ['status'], registers: [this.registry] });
  readonly upstreamLatency = new Histogram({
    name: 'fluxq_upstream_latency_seconds',
    help: 'Time from sending an upstream call to its whole answer',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
    registers: [this.registry],
  });
  /** SPEC §9 / issue 14: enqueue → the job's first upstream call (BullMQ's job timestamp to the send). */
  readonly queueWait = new Histogram({
    name: 'fluxq_queue_wait_seconds',
    help: 'Time from enqueue to the job\'s first upstream call (observed by the worker that sends it)',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400],
    registers: [this.registry],
  });
  /** Enqueue → final state, by outcome; observed once per job, by the worker that records the final state. */
  readonly jobDuration = new Histogram({
    name: 'fluxq_job_duration_seconds',
    help: 'Time from enqueue to the job\'s final state (completed or failed), observed once per job',
    labelNames: ['outcome'],
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 14400],
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({ name: 'fluxq_rate_limited_total', help: 'Upstream 429 answers (each pauses the whole fleet for Retry-After)', registers: [this.registry] });
  readonly bytesUploaded = new Counter({ name: 'fluxq_bytes_uploaded_total', help: 'Image bytes stored in S3', registers: [this.registry] });
  readonly jobsCompleted = new Counter({ name: 'fluxq_worker_jobs_completed_total', help: 'Jobs this process completed', registers: [this.registry] });
  readonly jobsFailed = new Counter({ name: 'fluxq_worker_jobs_failed_total', help: 'Jobs this process failed for good', registers: [this.registry] });
  readonly jobsRetried = new Counter({ name: 'fluxq_worker_jobs_retried_total', help: 'Attempts this process failed that will be retried', registers: [this.registry] });
  readonly concurrency = new Gauge({ name: 'fluxq_worker_concurrency', help: 'In-flight upstream calls this process may make (WORKER_CONCURRENCY)', registers: [this.registry] });
  readonly globalConcurrency = new Gauge({ name: 'fluxq_global_concurrency', help: 'Fleet-wide cap on in-flight calls in force (GLOBAL_CONCURRENCY, or the adaptive value); 0 = none', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const status of ['200', '429', 'error']) this.upstreamRequests.inc({ status }, 0);
    for (const outcome of ['completed', 'failed']) this.jobDuration.zero({ outcome });
  }

  observeUpstream(outcome: { status: number | 'error'; latencyMs: number }): void {
    this.upstreamRequests.inc({ status: String(outcome.status) });
    this.upstreamLatency.observe(outcome.latencyMs / 1000);
  }
}

/** Serve a registry at `/metrics`; resolves with the bound port. */
export async function serveMetrics(registry: Registry, port: number, host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not found; metrics are at /metrics"}');
      return;
    }
    registry
      .metrics()
      .then((text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      })
      .catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err.message }));
      });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
