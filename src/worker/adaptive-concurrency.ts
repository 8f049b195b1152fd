import type { Logger } from '../shared/logger.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';

/**
 * GLOBAL_CONCURRENCY=auto: the fleet finds the account's concurrency limit from 429s.
 * One Lua script, fed by every worker after every upstream call, keeps the controller's
 * state in `{prefix}:concurrency` and writes BullMQ's own global concurrency (the queue
 * meta `concurrency` field, what `queue.setGlobalConcurrency` sets) in the same step:
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
const ADAPT = `
local min = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or ARGV[2])
local bad = tonumber(redis.call('HGET', KEYS[1], 'bad') or '0')
local old = limit
local reason = ''
if ARGV[1] == '429' then
  -- After a cut, 429s of calls sent before it are not news; a raise ends that cooldown.
  if now >= tonumber(redis.call('HGET', KEYS[1], 'cooldown_until') or '0') then
    local stepped = redis.call('HGET', KEYS[1], 'stepped') == '1'
    local known = bad > 0
    bad = limit
    if stepped then limit = limit - 1
    elseif known then limit = math.floor(limit * 0.9)
    else limit = math.floor(limit * 0.75) end
    redis.call('HSET', KEYS[1], 'stepped', '0')
    redis.call('HSET', KEYS[1], 'decreased_at', now, 'cooldown_until', now + tonumber(ARGV[6]), 'successes', 0, 'rounds', 0, 'retry_after', ARGV[7])
    redis.call('HINCRBY', KEYS[1], 'decreases', 1)
    reason = 'a 429: decrease'
  end
else
  local s = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  if s >= limit then
    -- A whole round at this limit without a 429: it holds.
    redis.call('HSET', KEYS[1], 'successes', 0, 'stepped', '0')
    if bad > 0 and limit >= bad then bad = limit + 1 end
    if bad == 0 then
      limit = limit * 2
      reason = 'slow start'
    elseif limit < bad - 1 then
      limit = limit + 1
      redis.call('HSET', KEYS[1], 'stepped', '1')
      reason = 'increase'
    else
      local r = redis.call('HINCRBY', KEYS[1], 'rounds', 1)
      local since = now - tonumber(redis.call('HGET', KEYS[1], 'decreased_at') or '0')
      local gap = 60 * tonumber(redis.call('HGET', KEYS[1], 'retry_after') or '0')
      if r >= tonumber(ARGV[5]) and since >= gap then
        redis.call('HSET', KEYS[1], 'rounds', 0, 'stepped', '1')
        limit = limit + 1
        reason = 'probe'
      end
    end
  end
end
if limit < min then limit = min end
if limit > max then limit = max end
if limit > old then redis.call('HSET', KEYS[1], 'cooldown_until', 0) end
redis.call('HSET', KEYS[1], 'limit', limit, 'bad', bad)
if limit ~= old or redis.call('HGET', KEYS[2], 'concurrency') ~= tostring(limit) then
  redis.call('HSET', KEYS[2], 'concurrency', limit)
  if limit > old then redis.call('ZADD', KEYS[3], 0, '0') end
end
if limit == old then reason = '' end
return {limit, reason}
`;

// KEYS[1] state, KEYS[2] BullMQ meta. ARGV[1] min. Restore the learned limit (or start at min).
const RESTORE = `
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit') or ARGV[1])
redis.call('HSET', KEYS[1], 'limit', limit)
redis.call('HSET', KEYS[2], 'concurrency', limit)
return limit
`;

interface ScriptedRedis {
  fluxqAdapt(state: string, meta: string, marker: string, ...args: (string | number)[]): Promise<[number, string]>;
  fluxqAdaptRestore(state: string, meta: string, min: number): Promise<number>;
}

export interface AdaptiveOptions {
  min: number;
  max: number;
  /** Rounds at the known limit between probes above it. */
  probeRounds?: number;
  /** 429s within this long after a decrease do not decrease again (ms). */
  cooldownMs?: number;
}

export class AdaptiveConcurrency {
  readonly #redis: RedisClient & ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #opts: Required<AdaptiveOptions>;
  readonly #log: Logger;
  readonly #onChange: ((limit: number) => void) | undefined;
  #current = 0;

  constructor(redis: RedisClient, keys: RedisKeys, opts: AdaptiveOptions, log: Logger, onChange?: (limit: number) => void) {
    const r = redis as RedisClient & ScriptedRedis & { fluxqAdaptScripts?: true };
    if (!r.fluxqAdaptScripts) {
      redis.defineCommand('fluxqAdapt', { numberOfKeys: 3, lua: ADAPT });
      redis.defineCommand('fluxqAdaptRestore', { numberOfKeys: 2, lua: RESTORE });
      r.fluxqAdaptScripts = true;
    }
    this.#redis = r;
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
    this.#current = Number(await this.#redis.fluxqAdaptRestore(this.#keys.concurrency, this.#keys.meta, this.#opts.min));
    this.#onChange?.(this.#current);
    this.#log.info({ globalConcurrency: this.#current, min: this.#opts.min, max: this.#opts.max }, 'adaptive concurrency (GLOBAL_CONCURRENCY=auto)');
    return this.#current;
  }

  /** Feed one upstream outcome: a successful answer, or a 429 (with its Retry-After). */
  async observe(outcome: 'ok' | '429', retryAfterMs = 0): Promise<void> {
    const [limit, reason] = await this.#redis.fluxqAdapt(
      this.#keys.concurrency,
      this.#keys.meta,
      this.#keys.bullMarker,
      outcome,
      this.#opts.min,
      this.#opts.max,
      Date.now(),
      this.#opts.probeRounds,
      Math.max(this.#opts.cooldownMs, retryAfterMs),
      retryAfterMs,
    );
    const n = Number(limit);
    if (reason) this.#log.info({ globalConcurrency: n, was: this.#current, reason }, `adaptive concurrency: ${this.#current} → ${n} (${reason})`);
    if (n !== this.#current) {
      this.#current = n;
      this.#onChange?.(n);
    }
  }
}
