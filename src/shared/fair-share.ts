import type { Config } from './config.js';
import { PARKED_AT_MS, PARKED_MIN_SCORE } from './bullmq-internals.js';
import { jobTenant } from './job-data.js';
import type { RedisKeys } from './keys.js';
import type { Logger } from './logger.js';
import type { RedisClient } from './redis.js';
import { fairDispatch, fairDispatchKeys, type FairDispatchReply, type ParkedJob } from './redis-scripts/fair-dispatch.js';
import type { TenantLimits } from './redis-scripts/call-ledger.js';

/**
 * Fair share of upstream call starts (SPEC §8). A new job is added to BullMQ parked
 * (delayed until PARKED_AT_MS, see bullmq-internals.ts) and listed in its flow: priority
 * level → tenant → batch → FIFO. `dispatch` (lua/fair-dispatch.lua) releases parked
 * jobs into BullMQ's wait list by virtual time (stride scheduling), keeping about
 * GLOBAL_CONCURRENCY jobs waiting, so workers pick up jobs in the fair order. It runs at
 * enqueue, when a worker picks up a job, when an unsent call is released and when a job
 * ends, and on a timer in every worker as a safety net (after a pause, a crash, a Redis restart): all
 * state is in Redis and every step is one script.
 */

/** Pass added per release for weight 1 (a weight w adds STRIDE / w). */
export const FAIR_STRIDE = 1_000_000;
/** A capped tenant's released job that has not begun after this long is checked for where it went. */
const RELEASED_GRACE_MS = 5_000;


/** The tenant's limits a call start checks (TENANT_MAX_CONCURRENCY, TENANT_MAX_MEGAPIXELS_PER_DAY). */
export function tenantLimits(config: Config, tenant: string): TenantLimits {
  return {
    tenant,
    tenantCap: config.fairShare.maxConcurrency.get(tenant),
    tenantMaxMp: config.fairShare.maxMegapixelsPerDay.get(tenant),
  };
}

/** The flow a new job joins. */
export function parkedJob(id: string, data: unknown, priority: number | undefined): ParkedJob {
  const batch = (data as { batch?: unknown }).batch;
  return { id, level: priority ?? 0, tenant: jobTenant(data), batch: typeof batch === 'string' && batch ? batch : '-' };
}

export class FairShare {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #config: Config;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(redis: RedisClient, keys: RedisKeys, config: Config, log: Logger) {
    this.#redis = redis;
    this.#keys = keys;
    this.#config = config;
    this.#log = log;
  }

  /** List `jobs` (already added parked to BullMQ) in their flows and release what fits, in one step. */
  dispatch(park?: readonly ParkedJob[]): Promise<FairDispatchReply> {
    const k = this.#keys;
    return fairDispatch(
      this.#redis,
      fairDispatchKeys(k),
      {
        park: park && park.length > 0 ? park : undefined,
        window: this.#config.worker.concurrency,
        weights: Object.fromEntries(this.#config.fairShare.weights),
        caps: Object.fromEntries(this.#config.fairShare.maxConcurrency),
        fairBase: k.fairBase,
        tenantBase: k.tenantBase,
        jobBase: k.bullJobBase,
        parkedAt: PARKED_AT_MS,
        parkedMinScore: PARKED_MIN_SCORE,
        stride: FAIR_STRIDE,
        releasedGraceMs: RELEASED_GRACE_MS,
      },
    );
  }

  /** Dispatch soon; calls while one runs coalesce into one more run. Never throws. */
  kick(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.dispatch().catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'fair-share dispatch failed; the next one retries'));
      } while (this.#again);
    })().finally(() => (this.#running = undefined));
  }

  /** Dispatch every `everyMs` as a safety net (a resumed queue, jobs of a dead worker, a restarted Redis). */
  start(everyMs = 1000): void {
    this.#timer ??= setInterval(() => this.kick(), everyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
