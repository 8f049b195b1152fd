import type { RedisClient } from './redis.js';
import type { RedisKeys } from './keys.js';

/**
 * The id record of a job, `{prefix}:id:{jobId}`: a small hash that outlives the BullMQ
 * job by IDEMPOTENCY_TTL_S. It holds
 *  - idempotency: the job's final state and result, so an id keeps mapping to its job
 *    after `removeOnComplete` trimmed it;
 *  - the ledger: upstream calls started and settled, attempts spent, calls that were
 *    possibly billed — counted in Redis, so a worker that dies mid-call is still
 *    counted (a call started and never settled was ambiguous);
 *  - exactly-once final events: `finalize` writes the final state and XADDs the event in
 *    one script, and does nothing when this generation is already final.
 * `gen` counts how often the id was re-opened (a failed or cancelled job enqueued again).
 */

export type FinalState = 'completed' | 'failed' | 'cancelled';

export interface JobRecord {
  gen: number;
  batchId: string | undefined;
  /** Final state of the current generation, if it has one. */
  state: FinalState | undefined;
  result: string | undefined;
  error: string | undefined;
  attempts: number;
  possiblyBilled: number;
  created: number | undefined;
}

const FIELDS = ['gen', 'batch', 'state', 'final', 'result', 'error', 'attempts', 'pb', 'created'] as const;

function toRecord(values: (string | null)[]): JobRecord | undefined {
  const [gen, batch, state, final, result, error, attempts, pb, created] = values;
  if (values.every((v) => v === null)) return undefined;
  const g = Number(gen ?? 1);
  const isFinal = state !== null && state !== undefined && Number(final ?? 0) === g;
  return {
    gen: g,
    batchId: batch ?? undefined,
    state: isFinal ? (state as FinalState) : undefined,
    result: isFinal ? (result ?? undefined) : undefined,
    error: isFinal ? (error ?? undefined) : undefined,
    attempts: Number(attempts ?? 0),
    possiblyBilled: Number(pb ?? 0),
    created: created ? Number(created) : undefined,
  };
}

// KEYS[1] id record. ARGV[1] ttl s.
// Calls started but never settled belong to a run that died or was cut off mid-call:
// the upstream may have generated and billed, so they count as attempts and as
// possibly billed, once.
const BEGIN_RUN = `
local started = tonumber(redis.call('HGET', KEYS[1], 'started') or '0')
local settled = tonumber(redis.call('HGET', KEYS[1], 'settled') or '0')
local orphaned = 0
if started > settled then
  orphaned = started - settled
  redis.call('HINCRBY', KEYS[1], 'attempts', orphaned)
  redis.call('HINCRBY', KEYS[1], 'pb', orphaned)
  redis.call('HSET', KEYS[1], 'settled', started)
end
redis.call('HSETNX', KEYS[1], 'gen', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
local v = redis.call('HMGET', KEYS[1], ${FIELDS.map((f) => `'${f}'`).join(', ')})
table.insert(v, orphaned)
return v
`;

// KEYS[1] id record. ARGV[1] spends an attempt (0|1), ARGV[2] ambiguous (0|1), ARGV[3] ttl.
const SETTLE_CALL = `
redis.call('HINCRBY', KEYS[1], 'settled', 1)
local a = redis.call('HINCRBY', KEYS[1], 'attempts', tonumber(ARGV[1]))
local pb = redis.call('HINCRBY', KEYS[1], 'pb', tonumber(ARGV[2]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {a, pb}
`;

// KEYS[1] id record, KEYS[2] events stream.
// ARGV[1] state, ARGV[2] result json or '', ARGV[3] error or '', ARGV[4] event type
// or '' for none, ARGV[5] event data, ARGV[6] stream max len, ARGV[7] ttl s.
// Returns 1 when this call made the generation final, 0 when it already was.
const FINALIZE = `
local gen = redis.call('HGET', KEYS[1], 'gen') or '1'
if redis.call('HGET', KEYS[1], 'final') == gen then return 0 end
redis.call('HSET', KEYS[1], 'gen', gen, 'final', gen, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'finished', redis.call('TIME')[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'type', ARGV[4], 'data', ARGV[5])
end
return 1
`;

// KEYS[1] id record. ARGV[1] ttl. Re-open a failed or cancelled id for another run:
// a new generation with a fresh attempt budget. Returns the new gen, or 0 when the id
// is not failed or cancelled (then nothing changes).
const REOPEN = `
local gen = redis.call('HGET', KEYS[1], 'gen') or '1'
local state = redis.call('HGET', KEYS[1], 'state')
if redis.call('HGET', KEYS[1], 'final') ~= gen or (state ~= 'failed' and state ~= 'cancelled') then return 0 end
local g = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[1], 'state', 'final', 'result', 'error', 'finished')
redis.call('HSET', KEYS[1], 'attempts', 0, 'pb', 0, 'started', 0, 'settled', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return g
`;

interface ScriptedRedis {
  fluxqBeginRun(key: string, ttl: number): Promise<(string | number | null)[]>;
  fluxqSettleCall(key: string, spends: number, ambiguous: number, ttl: number): Promise<[number, number]>;
  fluxqFinalize(key: string, stream: string, ...args: (string | number)[]): Promise<number>;
  fluxqReopen(key: string, ttl: number): Promise<number>;
}

function withScripts(redis: RedisClient): RedisClient & ScriptedRedis {
  const r = redis as RedisClient & ScriptedRedis & { fluxqScripts?: true };
  if (!r.fluxqScripts) {
    redis.defineCommand('fluxqBeginRun', { numberOfKeys: 1, lua: BEGIN_RUN });
    redis.defineCommand('fluxqSettleCall', { numberOfKeys: 1, lua: SETTLE_CALL });
    redis.defineCommand('fluxqFinalize', { numberOfKeys: 2, lua: FINALIZE });
    redis.defineCommand('fluxqReopen', { numberOfKeys: 1, lua: REOPEN });
    r.fluxqScripts = true;
  }
  return r;
}

export interface FinalizeInput {
  state: FinalState;
  result?: string;
  error?: string;
  event?: { type: string; data: unknown };
}

export class JobRecords {
  readonly #redis: RedisClient & ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #ttlS: number;
  readonly #eventsMaxLen: number;

  constructor(redis: RedisClient, keys: RedisKeys, opts: { ttlS: number; eventsMaxLen: number }) {
    this.#redis = withScripts(redis);
    this.#keys = keys;
    this.#ttlS = opts.ttlS;
    this.#eventsMaxLen = opts.eventsMaxLen;
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    return toRecord(await this.#redis.hmget(this.#keys.idRecord(jobId), ...FIELDS));
  }

  /** Many records in one round trip (undefined where none). */
  async getMany(jobIds: string[]): Promise<(JobRecord | undefined)[]> {
    if (jobIds.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of jobIds) pipeline.hmget(this.#keys.idRecord(id), ...FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, values]) => {
      if (err) throw err;
      return toRecord(values as (string | null)[]);
    });
  }

  /** Create the record of a new job (idempotent: an existing generation is kept). */
  register(pipeline: ReturnType<RedisClient['pipeline']>, jobId: string, batchId: string | undefined, now: number): void {
    const key = this.#keys.idRecord(jobId);
    pipeline.hsetnx(key, 'gen', '1');
    pipeline.hsetnx(key, 'created', String(now));
    if (batchId) pipeline.hset(key, 'batch', batchId);
    pipeline.expire(key, this.#ttlS);
  }

  /** Start of a worker run: count orphaned calls, return the record. */
  async beginRun(jobId: string): Promise<{ record: JobRecord; orphanedCalls: number }> {
    const values = await this.#redis.fluxqBeginRun(this.#keys.idRecord(jobId), this.#ttlS);
    const orphaned = Number(values.pop() ?? 0);
    const record = toRecord(values.map((v) => (v === null || v === undefined ? null : String(v)))) as JobRecord;
    return { record, orphanedCalls: orphaned };
  }

  /** Right before an upstream call is sent. */
  async callStarted(jobId: string): Promise<void> {
    await this.#redis.hincrby(this.#keys.idRecord(jobId), 'started', 1);
  }

  /** When an upstream call has an outcome; returns the ledger after it. */
  async callSettled(jobId: string, outcome: { spendsAttempt: boolean; ambiguous: boolean }): Promise<{ attempts: number; possiblyBilled: number }> {
    const [attempts, pb] = await this.#redis.fluxqSettleCall(
      this.#keys.idRecord(jobId),
      outcome.spendsAttempt ? 1 : 0,
      outcome.ambiguous ? 1 : 0,
      this.#ttlS,
    );
    return { attempts: Number(attempts), possiblyBilled: Number(pb) };
  }

  /** Record the final state and emit its event, exactly once per generation. */
  async finalize(jobId: string, input: FinalizeInput): Promise<boolean> {
    const done = await this.#redis.fluxqFinalize(
      this.#keys.idRecord(jobId),
      this.#keys.events,
      input.state,
      input.result ?? '',
      input.error ?? '',
      input.event?.type ?? '',
      input.event ? JSON.stringify(input.event.data) : '',
      this.#eventsMaxLen,
      this.#ttlS,
    );
    return done === 1;
  }

  /** Re-open a failed or cancelled id; returns the new generation or 0. */
  async reopen(jobId: string): Promise<number> {
    return Number(await this.#redis.fluxqReopen(this.#keys.idRecord(jobId), this.#ttlS));
  }
}
