import type { Logger } from '../shared/logger.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';
import { adaptConcurrency, restoreConcurrency } from '../shared/redis-scripts/concurrency-limit.js';

/**
 * GLOBAL_CONCURRENCY=auto: the fleet finds the account's concurrency limit from 429s.
 * One Lua script (shared/redis-scripts/lua/adapt-concurrency.lua), fed by every worker
 * after every upstream call, keeps the controller's state in `{prefix}:concurrency` and
 * writes BullMQ's own global concurrency (the queue meta `concurrency` field, what
 * `queue.setGlobalConcurrency` sets) in the same step:
 *  - slow start: until the first 429, the limit doubles each round (a round = as many
 *    successful calls as the limit);
 *  - a 429 cuts it multiplicatively and remembers where it broke: × 0.75 out of slow
 *    start; × (L−1)/L when it comes right after a +1 step to L (the round at L−1 held,
 *    so L−1 is the account's limit: back to it); × 0.9 otherwise (the limit dropped).
 *    429s of calls sent before a cut (within its cooldown) do not cut again; a raise
 *    ends the cooldown;
 *  - below the known limit it climbs one per round (additive increase);
 *  - at it, it probes one above only every AUTO_PROBE_ROUNDS rounds and no sooner than
 *    60 × the last Retry-After after a cut: a probe that breaks costs the fleet one
 *    Retry-After pause, so this keeps that under ~2 % of the time and 429s far under 2 %
 *    of calls; a probe that holds for a round raises the known limit (the account's
 *    limit was raised).
 * Raising the limit also drops a wake-up marker so idle workers fetch at once.
 */
export interface AdaptiveOptions {
  min: number;
  max: number;
  /** Rounds at the known limit between probes above it. */
  probeRounds?: number;
  /** 429s within this long after a decrease do not decrease again (ms). */
  cooldownMs?: number;
}

export class AdaptiveConcurrency {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #opts: Required<AdaptiveOptions>;
  readonly #log: Logger;
  readonly #onChange: ((limit: number) => void) | undefined;
  #current = 0;

  constructor(redis: RedisClient, keys: RedisKeys, opts: AdaptiveOptions, log: Logger, onChange?: (limit: number) => void) {
    this.#redis = redis;
    this.#keys = keys;
    this.#opts = { probeRounds: 100, cooldownMs: 2000, ...opts };
    this.#log = log;
    this.#onChange = onChange;
  }

  get current(): number {
    return this.#current;
  }

  /** At start: continue from what the fleet learned (a restart must not reset it). */
  async start(): Promise<number> {
    this.#current = Number(await restoreConcurrency(this.#redis, { state: this.#keys.concurrency, meta: this.#keys.meta }, { min: this.#opts.min }));
    this.#onChange?.(this.#current);
    this.#log.info({ globalConcurrency: this.#current, min: this.#opts.min, max: this.#opts.max }, 'adaptive concurrency (GLOBAL_CONCURRENCY=auto)');
    return this.#current;
  }

  /** Feed one upstream outcome: a successful answer, or a 429 (with its Retry-After). */
  async observe(outcome: 'ok' | '429', retryAfterMs = 0): Promise<void> {
    const { limit, reason } = await adaptConcurrency(
      this.#redis,
      { state: this.#keys.concurrency, meta: this.#keys.meta, marker: this.#keys.bullMarker },
      {
        outcome,
        min: this.#opts.min,
        max: this.#opts.max,
        now: Date.now(),
        probeRounds: this.#opts.probeRounds,
        cooldownMs: Math.max(this.#opts.cooldownMs, retryAfterMs),
        retryAfterMs,
      },
    );
    const n = Number(limit);
    if (reason) this.#log.info({ globalConcurrency: n, was: this.#current, reason }, `adaptive concurrency: ${this.#current} → ${n} (${reason})`);
    if (n !== this.#current) {
      this.#current = n;
      this.#onChange?.(n);
    }
  }
}
