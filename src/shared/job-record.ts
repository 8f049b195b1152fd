import { randomUUID } from 'node:crypto';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * The id record of a job, `{prefix}:id:{jobId}`: a small hash that outlives the BullMQ
 * job by IDEMPOTENCY_TTL_S. It holds
 *  - idempotency: the job's final state and result, so an id keeps mapping to its job
 *    after `removeOnComplete` trimmed it;
 *  - the ledger: upstream calls started and settled, attempts spent, calls that were
 *    possibly billed — counted in Redis, so a worker that dies mid-call is still
 *    counted (a call started and never settled was ambiguous). Each call is an
 *    operation with its own id in `{prefix}:id:{jobId}:calls` (see START_CALL), so it is
 *    counted once whichever run settles it, also when two runs of one job overlap;
 *  - exactly-once final events: `finalize` writes the final state, XADDs the event,
 *    queues its webhook and moves the batch counters in one script, and does nothing
 *    when this generation is already final.
 * `gen` counts how often the id was re-opened (a failed or cancelled job enqueued again).
 * Every script that touches a batch gets the batch's keys; a job without a batch passes
 * an empty batch id and the script leaves them alone.
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
  prompt: string | undefined;
  seed: number | undefined;
  /** `{width}x{height}` as requested, when both were given. */
  size: string | undefined;
  /** Upstream calls ever started for this id, in any generation (never reset). */
  callsEver: number;
}

const FIELDS = ['gen', 'batch', 'state', 'final', 'result', 'error', 'attempts', 'pb', 'created', 'prompt', 'seed', 'size', 'calls'] as const;

function toRecord(values: (string | null)[]): JobRecord | undefined {
  const [gen, batch, state, final, result, error, attempts, pb, created, prompt, seed, size, calls] = values;
  if (values.every((v) => v === null)) return undefined;
  const g = Number(gen ?? 1);
  const isFinal = state !== null && state !== undefined && Number(final ?? 0) === g;
  return {
    gen: g,
    batchId: batch || undefined,
    state: isFinal ? (state as FinalState) : undefined,
    result: isFinal ? result || undefined : undefined,
    error: isFinal ? error || undefined : undefined,
    attempts: Number(attempts ?? 0),
    possiblyBilled: Number(pb ?? 0),
    created: created ? Number(created) : undefined,
    prompt: prompt ?? undefined,
    seed: seed !== null && seed !== undefined && seed !== '' ? Number(seed) : undefined,
    size: size || undefined,
    callsEver: Number(calls ?? 0),
  };
}

// Redis's own clock in ms: leases are written and read by different hosts, so they use
// one clock (scripts may write after TIME: effects replication, Redis >= 5).
const NOW_MS = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// KEYS[1] id record, KEYS[2] batch hash, KEYS[3] fleet stats, KEYS[4] the job's calls
// (hash: op id → lease end in ms while in flight, 's' settled, 'o' counted orphaned).
// ARGV[1] ttl s, ARGV[2] batch id or '', ARGV[3] now ms.
// A call whose lease ran out belongs to a run that died or was cut off mid-call: the
// upstream may have generated and billed, so it counts as an attempt and as possibly
// billed, once, on the job and on its batch. A call whose lease still runs belongs to a
// run that is alive (it lost its BullMQ lock, say, and this is a second run of the
// job): it is left in flight for its own run to settle.
// Why a lease and not BullMQ's lock: this run holds the job's lock by now, whether the
// other run is dead or alive, so the lock cannot tell them apart. The run renews the
// lease every LOCK_DURATION_MS/4 and the lease lasts LOCK_DURATION_MS/2, while BullMQ
// renews the lock at most every LOCK_DURATION_MS/2 for LOCK_DURATION_MS: a dead run's
// lease has run out by the time its lock has, which is before another run can begin.
// A live run whose event loop stalls longer than the lease is counted orphaned here;
// its late settlement then adds no second attempt (see SETTLE_CALL).
const BEGIN_RUN = `${NOW_MS}
local now = nowMs()
local orphaned = 0
local calls = redis.call('HGETALL', KEYS[4])
for i = 1, #calls, 2 do
  local leaseEnd = tonumber(calls[i + 1])
  if leaseEnd and leaseEnd <= now then
    redis.call('HSET', KEYS[4], calls[i], 'o')
    orphaned = orphaned + 1
  end
end
if orphaned > 0 then
  redis.call('HINCRBY', KEYS[1], 'attempts', orphaned)
  redis.call('HINCRBY', KEYS[1], 'pb', orphaned)
  redis.call('HINCRBY', KEYS[1], 'settled', orphaned)
  redis.call('HINCRBY', KEYS[3], 'possibly_billed', orphaned)
  if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[2], 'possibly_billed', orphaned) end
end
redis.call('HSETNX', KEYS[1], 'gen', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[2], 'started', ARGV[3]) end
local v = redis.call('HMGET', KEYS[1], ${FIELDS.map((f) => `'${f}'`).join(', ')})
table.insert(v, orphaned)
return v
`;

// KEYS[1] id record, KEYS[2] BullMQ limiter key, KEYS[3] batch hash, KEYS[4] the job's calls.
// ARGV[1] the limiter max in force, ARGV[2] batch id or '', ARGV[3] default budget MP or '',
// ARGV[4] this call's operation id, ARGV[5] its lease in ms, ARGV[6] ttl s.
// Right before an upstream call, in one round trip: this generation is already final
// (cancelled, or finished by another run) → {'final', state}: no call; inside a 429
// back-off window (queue.rateLimit sets the limiter above its max) → {'rate_limited', ttl};
// the batch's reported megapixels reached its budget → {'budget', max}; else the call is
// counted as started and in flight under its op id until its lease ends → {'ok', 0}.
// This is the point where a cancel and a call exclude each other (CANCEL refuses once
// `started` moved). A connection that drops after Redis ran the script but before the
// reply arrived makes ioredis send it again: the op id is already there, it counts once.
const START_CALL = `${NOW_MS}
if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then return {'ok', 0} end
local gen = redis.call('HGET', KEYS[1], 'gen') or '1'
if redis.call('HGET', KEYS[1], 'final') == gen then return {'final', redis.call('HGET', KEYS[1], 'state') or ''} end
local v = redis.call('GET', KEYS[2])
if v and tonumber(v) > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then return {'rate_limited', ttl} end
end
if ARGV[2] ~= '' then
  local b = redis.call('HMGET', KEYS[3], 'output_mp', 'input_mp', 'max_mp')
  local max = tonumber(b[3] or ARGV[3])
  if max and (tonumber(b[1] or '0') + tonumber(b[2] or '0')) >= max then return {'budget', tostring(max)} end
end
redis.call('HINCRBY', KEYS[1], 'started', 1)
redis.call('HINCRBY', KEYS[1], 'calls', 1)
redis.call('HSET', KEYS[4], ARGV[4], nowMs() + tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[4], ARGV[6])
return {'ok', 0}
`;

// KEYS[1] the job's calls. ARGV[1] op id, ARGV[2] lease ms.
// The run making a call renews its lease while the call is in flight. Returns 1, or 0
// when the call is no longer in flight (settled, or counted orphaned by another run).
const RENEW_CALL = `${NOW_MS}
if not tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '') then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], nowMs() + tonumber(ARGV[2]))
return 1
`;

// KEYS[1] id record, KEYS[2] batch hash, KEYS[3] fleet stats, KEYS[4] the job's calls.
// ARGV[1] spends an attempt (0|1), ARGV[2] ambiguous (0|1), ARGV[3] ttl, ARGV[4] batch id
// or '', ARGV[5] output MP, ARGV[6] input MP, ARGV[7] estimated cost in micro-USD,
// ARGV[8] the call's operation id (from START_CALL).
// One call, one settlement: the ledger of the job and of its batch move together. A
// call already settled (ioredis re-sent this script) changes nothing. A call a later run
// already counted orphaned (an attempt, possibly billed) adds no attempt and no possibly
// billed call again, but its reported megapixels and cost are still recorded.
const SETTLE_CALL = `
local was = redis.call('HGET', KEYS[4], ARGV[8])
if was == 's' then
  return {tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0'), tonumber(redis.call('HGET', KEYS[1], 'pb') or '0')}
end
redis.call('HSET', KEYS[4], ARGV[8], 's')
redis.call('EXPIRE', KEYS[4], ARGV[3])
local counted = was ~= 'o'
if counted then
  redis.call('HINCRBY', KEYS[1], 'settled', 1)
  redis.call('HINCRBY', KEYS[1], 'attempts', tonumber(ARGV[1]))
  redis.call('HINCRBY', KEYS[1], 'pb', tonumber(ARGV[2]))
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local function ledger(key)
  if counted and ARGV[2] == '1' then redis.call('HINCRBY', key, 'possibly_billed', 1) end
  if tonumber(ARGV[5]) > 0 or tonumber(ARGV[6]) > 0 then
    redis.call('HINCRBYFLOAT', key, 'output_mp', ARGV[5])
    redis.call('HINCRBYFLOAT', key, 'input_mp', ARGV[6])
    redis.call('HINCRBY', key, 'cost_micro_usd', ARGV[7])
  end
end
ledger(KEYS[3])
if ARGV[4] ~= '' then ledger(KEYS[2]) end
return {tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0'), tonumber(redis.call('HGET', KEYS[1], 'pb') or '0')}
`;

// KEYS[1] id record, KEYS[2] events stream, KEYS[3] batch hash, KEYS[4] batch open set,
// KEYS[5] pending batches set, KEYS[6] webhook outbox, KEYS[7] fleet stats.
// ARGV[1] state, ARGV[2] result json or '', ARGV[3] error or '', ARGV[4] event type or ''
// for none, ARGV[5] event data, ARGV[6] stream max len, ARGV[7] ttl s, ARGV[8] batch id
// or '', ARGV[9] job id, ARGV[10] webhook url or '', ARGV[11] webhook secret, ARGV[12] now.
// Returns {1, stream id, batch finished 0|1} when this call made the generation final,
// {0, '', 0} when it already was. A job leaves its batch's open set exactly once per
// generation, so counts never double; the run that empties the set marks the batch
// finished (once per unfinished → finished transition) and owes batch.completed.
const FINALIZE = `
local gen = redis.call('HGET', KEYS[1], 'gen') or '1'
if redis.call('HGET', KEYS[1], 'final') == gen then return {0, '', 0} end
redis.call('HSET', KEYS[1], 'gen', gen, 'final', gen, 'state', ARGV[1], 'result', ARGV[2], 'error', ARGV[3], 'finished', ARGV[12])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('HINCRBY', KEYS[7], ARGV[1], 1)
local sid = ''
if ARGV[4] ~= '' then
  sid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'type', ARGV[4], 'data', ARGV[5])
  if ARGV[10] ~= '' then
    redis.call('RPUSH', KEYS[6], cjson.encode({id = sid, url = ARGV[10], secret = ARGV[11], type = ARGV[4], data = ARGV[5], jobId = ARGV[9], at = tonumber(ARGV[12])}))
  end
end
local finished = 0
if ARGV[8] ~= '' and redis.call('SREM', KEYS[4], ARGV[9]) == 1 then
  redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
  if redis.call('SCARD', KEYS[4]) == 0 then
    redis.call('HINCRBY', KEYS[3], 'fin_gen', 1)
    redis.call('HSET', KEYS[3], 'finished', ARGV[12])
    redis.call('SADD', KEYS[5], ARGV[8])
    finished = 1
  end
end
return {1, sid, finished}
`;

// KEYS[1] id record, KEYS[2] batch hash, KEYS[3] batch open set.
// ARGV[1] ttl, ARGV[2] batch id or '', ARGV[3] job id.
// Re-open a failed or cancelled id for another run: a new generation with a fresh
// attempt budget, back among its batch's open jobs. Returns the new gen, or 0 when the
// id is not failed or cancelled (then nothing changes).
const REOPEN = `
local gen = redis.call('HGET', KEYS[1], 'gen') or '1'
local state = redis.call('HGET', KEYS[1], 'state')
if redis.call('HGET', KEYS[1], 'final') ~= gen or (state ~= 'failed' and state ~= 'cancelled') then return 0 end
local g = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[1], 'state', 'final', 'result', 'error', 'finished')
redis.call('HSET', KEYS[1], 'attempts', 0, 'pb', 0, 'started', 0, 'settled', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('SADD', KEYS[3], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[2], state, -1)
  redis.call('HDEL', KEYS[2], 'finished')
end
return g
`;

// KEYS and ARGV as FINALIZE (ARGV[1] = 'cancelled'). Returns {1, …} when this call
// cancelled the job, {0, 'final'} when this generation already ended, {0, 'active'} when
// a call has started in it. Check and cancel are one step, and START_CALL refuses a final
// generation: of a cancel and a call start, whichever Redis runs first wins, so a job is
// either cancelled with no upstream call or reported active, never both cancelled and
// paid. A worker may hold the job (picked up, no call yet): it finds it cancelled at
// START_CALL and ends the run without a call.
const CANCEL = `
local g = redis.call('HGET', KEYS[1], 'gen') or '1'
if redis.call('HGET', KEYS[1], 'final') == g then return {0, 'final', 0} end
if tonumber(redis.call('HGET', KEYS[1], 'started') or '0') > 0 then return {0, 'active', 0} end
${FINALIZE}`;

interface ScriptedRedis {
  fluxqBeginRun(id: string, batch: string, stats: string, calls: string, ttl: number, batchId: string, now: number): Promise<(string | number | null)[]>;
  fluxqSettleCall(id: string, batch: string, stats: string, calls: string, ...args: (string | number)[]): Promise<[number, number]>;
  fluxqStartCall(
    id: string,
    limiter: string,
    batch: string,
    calls: string,
    limiterMax: number,
    batchId: string,
    defaultMaxMp: string | number,
    opId: string,
    leaseMs: number,
    ttl: number,
  ): Promise<[string, number | string]>;
  fluxqRenewCall(calls: string, opId: string, leaseMs: number): Promise<number>;
  fluxqFinalize(...args: (string | number)[]): Promise<[number, string, number]>;
  fluxqCancel(...args: (string | number)[]): Promise<[number, string, number]>;
  fluxqReopen(id: string, batch: string, open: string, ttl: number, batchId: string, jobId: string): Promise<number>;
}

function withScripts(redis: RedisClient): RedisClient & ScriptedRedis {
  const r = redis as RedisClient & ScriptedRedis & { fluxqRecordScripts?: true };
  if (!r.fluxqRecordScripts) {
    redis.defineCommand('fluxqBeginRun', { numberOfKeys: 4, lua: BEGIN_RUN });
    redis.defineCommand('fluxqStartCall', { numberOfKeys: 4, lua: START_CALL });
    redis.defineCommand('fluxqRenewCall', { numberOfKeys: 1, lua: RENEW_CALL });
    redis.defineCommand('fluxqSettleCall', { numberOfKeys: 4, lua: SETTLE_CALL });
    redis.defineCommand('fluxqFinalize', { numberOfKeys: 7, lua: FINALIZE });
    redis.defineCommand('fluxqCancel', { numberOfKeys: 7, lua: CANCEL });
    redis.defineCommand('fluxqReopen', { numberOfKeys: 3, lua: REOPEN });
    r.fluxqRecordScripts = true;
  }
  return r;
}

export interface FinalizeInput {
  state: FinalState;
  batchId?: string | undefined;
  result?: string;
  error?: string;
  event?: { type: string; data: unknown };
  /** The job's own webhook, which receives this event. */
  webhook?: { url: string; secret: string } | undefined;
}

export interface FinalizeOutcome {
  /** This call made the generation final (false: it already was; nothing was written). */
  recorded: boolean;
  /** The events stream id of the event written. */
  eventId: string;
  /** This job was the last open one of its batch: the batch owes batch.completed. */
  batchFinished: boolean;
}

export interface CallOutcome {
  spendsAttempt: boolean;
  ambiguous: boolean;
  /** What the upstream reported for a successful call (the billing ledger). */
  outputMp?: number;
  inputMp?: number;
  costMicroUsd?: number;
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
  async getMany(jobIds: readonly string[]): Promise<(JobRecord | undefined)[]> {
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
  register(
    pipeline: ReturnType<RedisClient['pipeline']>,
    job: { id: string; batchId?: string | undefined; prompt: string; seed?: number | undefined; width?: number | undefined; height?: number | undefined },
    now: number,
  ): void {
    const key = this.#keys.idRecord(job.id);
    const size = job.width && job.height ? `${job.width}x${job.height}` : '';
    pipeline.hsetnx(key, 'gen', '1');
    pipeline.hsetnx(key, 'created', String(now));
    pipeline.hset(key, 'prompt', job.prompt, 'seed', job.seed === undefined ? '' : String(job.seed), 'batch', job.batchId ?? '', 'size', size);
    pipeline.expire(key, this.#ttlS);
  }

  /** Start of a worker run: count orphaned calls (see BEGIN_RUN), return the record. */
  async beginRun(jobId: string, batchId: string | undefined): Promise<{ record: JobRecord; orphanedCalls: number }> {
    const values = await this.#redis.fluxqBeginRun(
      this.#keys.idRecord(jobId),
      this.#keys.batch(batchId ?? '-'),
      this.#keys.stats,
      this.#keys.idCalls(jobId),
      this.#ttlS,
      batchId ?? '',
      Date.now(),
    );
    const orphaned = Number(values.pop() ?? 0);
    const record = toRecord(values.map((v) => (v === null || v === undefined ? null : String(v)))) as JobRecord;
    return { record, orphanedCalls: orphaned };
  }

  /**
   * Right before an upstream call: `ok` (the call is now counted as started and in flight
   * under `opId` for `leaseMs`; renew it with `renewCall` and settle it with
   * `callSettled`), or why it must not be made: the generation is already `final`
   * (cancelled, or finished by another run), a 429 back-off window of the fleet, or the
   * batch's budget.
   */
  async startCall(
    jobId: string,
    batchId: string | undefined,
    opts: { limiterMax: number; defaultMaxMp: number | undefined; leaseMs: number },
  ): Promise<{ verdict: 'ok'; opId: string } | { verdict: 'final'; state: FinalState } | { verdict: 'rate_limited'; ttlMs: number } | { verdict: 'budget'; maxMp: number }> {
    const opId = randomUUID();
    const [verdict, value] = await this.#redis.fluxqStartCall(
      this.#keys.idRecord(jobId),
      this.#keys.limiter,
      this.#keys.batch(batchId ?? '-'),
      this.#keys.idCalls(jobId),
      opts.limiterMax,
      batchId ?? '',
      opts.defaultMaxMp ?? '',
      opId,
      Math.max(1, Math.round(opts.leaseMs)),
      this.#ttlS,
    );
    if (verdict === 'final') return { verdict, state: String(value) as FinalState };
    if (verdict === 'rate_limited') return { verdict, ttlMs: Number(value) };
    if (verdict === 'budget') return { verdict, maxMp: Number(value) };
    return { verdict: 'ok', opId };
  }

  /** The run making call `opId` is alive: extend its lease. False when it is no longer in flight. */
  async renewCall(jobId: string, opId: string, leaseMs: number): Promise<boolean> {
    return Number(await this.#redis.fluxqRenewCall(this.#keys.idCalls(jobId), opId, Math.max(1, Math.round(leaseMs)))) === 1;
  }

  /** When upstream call `opId` has an outcome; returns the job's ledger after it. */
  async callSettled(jobId: string, batchId: string | undefined, opId: string, outcome: CallOutcome): Promise<{ attempts: number; possiblyBilled: number }> {
    const [attempts, pb] = await this.#redis.fluxqSettleCall(
      this.#keys.idRecord(jobId),
      this.#keys.batch(batchId ?? '-'),
      this.#keys.stats,
      this.#keys.idCalls(jobId),
      outcome.spendsAttempt ? 1 : 0,
      outcome.ambiguous ? 1 : 0,
      this.#ttlS,
      batchId ?? '',
      outcome.outputMp ?? 0,
      outcome.inputMp ?? 0,
      Math.round(outcome.costMicroUsd ?? 0),
      opId,
    );
    return { attempts: Number(attempts), possiblyBilled: Number(pb) };
  }

  /** KEYS and ARGV of FINALIZE (and CANCEL). */
  #finalizeArgs(jobId: string, input: FinalizeInput): (string | number)[] {
    const batchId = input.batchId ?? '';
    return [
      this.#keys.idRecord(jobId),
      this.#keys.events,
      this.#keys.batch(batchId || '-'),
      this.#keys.batchOpen(batchId || '-'),
      this.#keys.batchesPending,
      this.#keys.webhookOutbox,
      this.#keys.stats,
      input.state,
      input.result ?? '',
      input.error ?? '',
      input.event?.type ?? '',
      input.event ? JSON.stringify(input.event.data) : '',
      this.#eventsMaxLen,
      this.#ttlS,
      batchId,
      jobId,
      input.webhook?.url ?? '',
      input.webhook?.secret ?? '',
      Date.now(),
    ];
  }

  /** Record the final state, emit its event and queue its webhook, exactly once per generation. */
  async finalize(jobId: string, input: FinalizeInput): Promise<FinalizeOutcome> {
    const [recorded, eventId, finished] = await this.#redis.fluxqFinalize(...this.#finalizeArgs(jobId, input));
    return { recorded: Number(recorded) === 1, eventId: String(eventId ?? ''), batchFinished: Number(finished) === 1 };
  }

  /**
   * Cancel the current generation unless it already ended (`final`) or an upstream call
   * has started in it (`active`), in one step with the check (see CANCEL).
   */
  async cancel(jobId: string, batchId: string | undefined): Promise<'cancelled' | 'active' | 'final'> {
    const [done, why] = await this.#redis.fluxqCancel(...this.#finalizeArgs(jobId, { state: 'cancelled', batchId }));
    if (Number(done) === 1) return 'cancelled';
    return why === 'active' ? 'active' : 'final';
  }

  /** Re-open a failed or cancelled id; returns the new generation or 0. */
  async reopen(jobId: string, batchId: string | undefined): Promise<number> {
    return Number(await this.#redis.fluxqReopen(this.#keys.idRecord(jobId), this.#keys.batch(batchId ?? '-'), this.#keys.batchOpen(batchId ?? '-'), this.#ttlS, batchId ?? '', jobId));
  }
}
