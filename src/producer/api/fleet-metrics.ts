import { PARKED_MIN_SCORE } from '../../shared/bullmq-internals.js';
import type { FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { waitForRedis } from '../../shared/redis.js';
import type { ApiDeps } from './api-deps.js';
import { byTenant } from '../tenant-report.js';

/**
 * The API's `/metrics`: fleet-wide figures read from Redis at scrape time, so any API
 * replica reports the same numbers. Counters come from `{prefix}:stats`, moved by the
 * same scripts that record outcomes (so they agree with events and batches), and are
 * present from the start, at 0.
 */
const STAT_COUNTERS = [
  ['fluxq_jobs_retried_total', 'retried', 'Attempts that failed and were retried with backoff', 1],
  ['fluxq_output_megapixels_total', 'output_mp', 'Output megapixels the upstream reported', 1],
  ['fluxq_input_megapixels_total', 'input_mp', 'Input megapixels the upstream reported', 1],
  ['fluxq_possibly_billed_total', 'possibly_billed', 'Upstream calls with an ambiguous outcome (may have been billed)', 1],
  ['fluxq_cost_usd_total', 'cost_micro_usd', 'Estimated cost of reported megapixels (PRICE_FIRST_MP_USD / PRICE_EXTRA_MP_USD)', 1e-6],
] as const;

/**
 * The job counters carry the label `tenant` (SPEC §8), from the per-tenant counters that
 * the same scripts move (`{prefix}:tenant-stats`, fields `{tenant}:{state}`); before any
 * job ended each is present once, for `default`, at 0.
 */
const JOB_COUNTERS = [
  ['fluxq_jobs_completed_total', 'completed', 'Jobs completed, by tenant'],
  ['fluxq_jobs_failed_total', 'failed', 'Jobs failed for good, by tenant'],
  ['fluxq_jobs_cancelled_total', 'cancelled', 'Jobs cancelled before they started, by tenant'],
  ['fluxq_jobs_expired_total', 'expired', 'Jobs whose deadline passed before they started (no call), by tenant'],
] as const;

const STATES = ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'] as const;

export function fleetMetricsRoute(app: FastifyInstance, deps: ApiDeps, extraQueues: Queue[] = []): Registry {
  const { producer } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const queues = [producer.queue as Queue, ...extraQueues];
  new Gauge({
    name: 'fluxq_queue_jobs',
    help: 'Jobs in each state, by queue (the generation queue and the webhook queue)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of queues) {
        const counts = await q.getJobCounts(...STATES);
        // Parked jobs (fair share, waiting for their turn) are in BullMQ's delayed set: count them as waiting.
        const parked = q === producer.queue ? await producer.redis.zcount(producer.keys.bullDelayed, PARKED_MIN_SCORE, '+inf') : 0;
        counts.delayed = (counts.delayed ?? 0) - parked;
        counts.waiting = (counts.waiting ?? 0) + parked;
        for (const state of STATES) this.set({ queue: q.name, state }, counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: 'fluxq_queue_paused',
    help: '1 while the generation queue is paused (fluxq pause, or an account-wide error)',
    registers: [registry],
    async collect() {
      this.set((await producer.queue.isPaused()) ? 1 : 0);
    },
  });
  let stats: Promise<Record<string, string>> | undefined;
  const readStats = () => (stats ??= producer.redis.hgetall(producer.keys.stats).finally(() => setTimeout(() => (stats = undefined), 0)));
  for (const [name, field, help, scale] of STAT_COUNTERS) {
    new Counter({
      name,
      help,
      registers: [registry],
      async collect() {
        const value = Number((await readStats())[field] ?? 0) * scale;
        this.reset();
        this.inc(Math.max(0, Math.round(value * 1e6) / 1e6));
      },
    });
  }
  let tenantStats: Promise<Map<string, Map<string, string>>> | undefined;
  const readTenantStats = () =>
    (tenantStats ??= producer.redis
      .hgetall(producer.keys.tenantStats)
      .then(byTenant)
      .finally(() => setTimeout(() => (tenantStats = undefined), 0)));
  for (const [name, state, help] of JOB_COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: ['tenant'],
      registers: [registry],
      async collect() {
        const tenants = await readTenantStats();
        this.reset();
        if (tenants.size === 0) this.inc({ tenant: 'default' }, 0);
        for (const [tenant, values] of tenants) this.inc({ tenant }, Math.max(0, Number(values.get(state) ?? 0)));
      },
    });
  }
  app.get('/metrics', async (_req, reply) => {
    await waitForRedis(producer.redis, 'Redis', 2000);
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  return registry;
}
