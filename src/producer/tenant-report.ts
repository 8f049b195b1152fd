import type { Queue } from 'bullmq';
import { jobTenant, type JobData } from '../shared/job-data.js';
import { utcDay } from '../shared/job-record.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';

/**
 * `fluxq tenants` (SPEC §8): per tenant, jobs in flight and waiting, and today's (UTC)
 * megapixels and estimated cost. Read from the per-tenant counters (`{prefix}:tenant-stats`,
 * moved by the enqueue and by the same scripts that settle calls and finalise jobs) and
 * from BullMQ's active jobs (at most the fleet's concurrency), never from the backlog.
 */
export interface TenantLine {
  tenant: string;
  /** Jobs a worker is running now. */
  in_flight: number;
  /** Jobs enqueued and not final that no worker is running (waiting, delayed, paused). */
  waiting: number;
  /** Megapixels (output + input) the upstream reported today, UTC. */
  today_mp: number;
  today_cost_usd: number;
  completed: number;
  failed: number;
  cancelled: number;
  expired: number;
}

/** `{tenant}:{name}` fields → tenant → name → value. */
export function byTenant(fields: Record<string, string>): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const [field, value] of Object.entries(fields)) {
    const at = field.indexOf(':');
    if (at <= 0) continue;
    const tenant = field.slice(0, at);
    const m = out.get(tenant) ?? new Map<string, string>();
    m.set(field.slice(at + 1), value);
    out.set(tenant, m);
  }
  return out;
}

const round6 = (n: number) => Math.round(n * 1e6) / 1e6;

export async function tenantReport(deps: { redis: RedisClient; keys: RedisKeys; queue: Queue<JobData, JobResult> }, now = Date.now()): Promise<TenantLine[]> {
  const [fields, active] = await Promise.all([deps.redis.hgetall(deps.keys.tenantStats), deps.queue.getJobs(['active'])]);
  const stats = byTenant(fields);
  const running = new Map<string, number>();
  for (const job of active) {
    if (!job) continue;
    const t = jobTenant(job.data);
    running.set(t, (running.get(t) ?? 0) + 1);
    if (!stats.has(t)) stats.set(t, new Map());
  }
  const day = utcDay(now);
  const n = (m: Map<string, string>, k: string) => Math.max(0, Number(m.get(k) ?? 0));
  return [...stats.entries()]
    .map(([tenant, m]) => {
      const inFlight = running.get(tenant) ?? 0;
      return {
        tenant,
        in_flight: inFlight,
        waiting: Math.max(0, n(m, 'open') - inFlight),
        today_mp: round6(n(m, `mp:${day}`)),
        today_cost_usd: round6(n(m, `cost:${day}`) / 1e6),
        completed: n(m, 'completed'),
        failed: n(m, 'failed'),
        cancelled: n(m, 'cancelled'),
        expired: n(m, 'expired'),
      };
    })
    .sort((a, b) => a.tenant.localeCompare(b.tenant));
}

/** The table `fluxq tenants` prints: a header, then one aligned line per tenant. */
export function formatTenantReport(lines: readonly TenantLine[]): string {
  const rows = [
    ['TENANT', 'IN_FLIGHT', 'WAITING', 'TODAY_MP', 'TODAY_COST_USD'],
    ...lines.map((l) => [l.tenant, String(l.in_flight), String(l.waiting), String(l.today_mp), l.today_cost_usd.toFixed(4)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
