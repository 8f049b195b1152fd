import { randomUUID } from 'node:crypto';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { DEFAULT_TENANT } from './ids.js';
import { beginRun, releaseCall, renewCall, settleCall, startCall, type StartCallReply, type TenantLimits } from './redis-scripts/call-ledger.js';
import { cancelJob, expireJob, finalizeJob, type ExpireJobReply, type FinalisationKeys } from './redis-scripts/finalisation.js';
import { reopenJob } from './redis-scripts/id-record.js';
import { contextMetadata } from './spans.js';

/**
 * The id record of a job, `{prefix}:id:{jobId}`: a small hash that outlives the BullMQ
 * job by IDEMPOTENCY_TTL_S. It holds
 *  - idempotency: the job's final state and result, so an id keeps mapping to its job
 *    after `removeOnComplete` trimmed it;
 *  - the ledger: upstream calls started and settled, attempts spent, calls that were
 *    possibly billed — counted in Redis, so a worker that dies mid-call is still
 *    counted (a call started and never settled was ambiguous). Each call is an
 *    operation with its own id in `{prefix}:id:{jobId}:calls` (see redis-scripts/lua/start-call.lua), so it is
 *    counted once whichever run settles it, also when two runs of one job overlap;
 *  - exactly-once final events: `finalize` writes the final state, XADDs the event,
 *    queues its webhook and moves the batch counters in one script, and does nothing
 *    when this generation is already final.
 * `gen` counts how often the id was re-opened (a failed or cancelled job enqueued again).
 * Every script that touches a batch gets the batch's keys; a job without a batch passes
 * no batch id and the script leaves them alone. The scripts are `redis-scripts/lua/*.lua`.
 */

export type FinalState = 'completed' | 'failed' | 'cancelled' | 'expired';

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
  /** Who the job is for (SPEC §8); `default` when none was named. */
  tenant: string;
  /** The latest start of the first upstream call (ms), when the job has a deadline. */
  deadline: number | undefined;
}

const FIELDS = ['gen', 'batch', 'state', 'final', 'result', 'error', 'attempts', 'pb', 'created', 'prompt', 'seed', 'size', 'calls', 'tenant', 'deadline'] as const;
type RecordFields = Partial<Record<(typeof FIELDS)[number], string>>;

function toRecord(v: RecordFields): JobRecord {
  const g = Number(v.gen ?? 1);
  const isFinal = v.state !== undefined && Number(v.final ?? 0) === g;
  return {
    gen: g,
    batchId: v.batch || undefined,
    state: isFinal ? (v.state as FinalState) : undefined,
    result: isFinal ? v.result || undefined : undefined,
    error: isFinal ? v.error || undefined : undefined,
    attempts: Number(v.attempts ?? 0),
    possiblyBilled: Number(v.pb ?? 0),
    created: v.created ? Number(v.created) : undefined,
    prompt: v.prompt,
    seed: v.seed !== undefined && v.seed !== '' ? Number(v.seed) : undefined,
    size: v.size || undefined,
    callsEver: Number(v.calls ?? 0),
    tenant: v.tenant || DEFAULT_TENANT,
    deadline: v.deadline ? Number(v.deadline) : undefined,
  };
}

/** HMGET of FIELDS → the record (undefined when the id has none). */
function fromHmget(values: (string | null)[]): JobRecord | undefined {
  if (values.every((v) => v === null)) return undefined;
  const named: RecordFields = {};
  FIELDS.forEach((f, i) => {
    const v = values[i];
    if (v !== null && v !== undefined) named[f] = v;
  });
  return toRecord(named);
}

/**
 * The webhook with the active context (the run's `fluxq.job` span) when tracing is on:
 * it rides in the outbox entry into the webhook queue, so every delivery try joins the
 * job's trace (SPEC §9).
 */
function withTrace(webhook: { url: string; secret: string }): { url: string; secret: string; trace?: string } {
  const trace = contextMetadata();
  return trace ? { ...webhook, trace } : webhook;
}

export interface FinalizeInput {
  state: Exclude<FinalState, 'expired'>;
  batchId?: string | undefined;
  tenant?: string | undefined;
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

export interface CallStartOptions {
  limiterMax: number;
  defaultMaxMp: number | undefined;
  leaseMs: number;
}

/** start-call's reply, with the op id of a started call and the final state typed. */
export type CallStartVerdict =
  | { verdict: 'ok'; opId: string }
  | { verdict: 'final'; state: FinalState }
  | Exclude<StartCallReply, { verdict: 'ok' } | { verdict: 'final' }>;

export type { TenantLimits };
const NO_LIMITS: TenantLimits = { tenant: DEFAULT_TENANT };

/** What expire-job.lua needs besides the record: the event's data and the job's webhook. */
export interface ExpireInput {
  batchId: string | undefined;
  tenant: string | undefined;
  deadline: number;
  error: string;
  data: unknown;
  webhook: { url: string; secret: string } | undefined;
}

/** The caller's UTC day, `YYYY-MM-DD` (the tenant's daily megapixels count under it). */
export const utcDay = (ms = Date.now()) => new Date(ms).toISOString().slice(0, 10);

const leaseOf = (opts: CallStartOptions) => Math.max(1, Math.round(opts.leaseMs));

function toVerdict(reply: StartCallReply, opId: string): CallStartVerdict {
  if (reply.verdict === 'final') return { verdict: 'final', state: reply.state as FinalState };
  if (reply.verdict === 'rate_limited') return { verdict: 'rate_limited', ttlMs: Number(reply.ttlMs) };
  if (reply.verdict === 'budget') return { verdict: 'budget', maxMp: Number(reply.maxMp) };
  if (reply.verdict === 'expired') return { verdict: 'expired', deadline: Number(reply.deadline) };
  if (reply.verdict === 'tenant_budget') return { verdict: 'tenant_budget', tenant: reply.tenant, maxMp: Number(reply.maxMp) };
  if (reply.verdict === 'tenant_limited') return { verdict: 'tenant_limited', tenant: reply.tenant };
  return { verdict: 'ok', opId };
}

export class JobRecords {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #ttlS: number;
  readonly #eventsMaxLen: number;

  constructor(redis: RedisClient, keys: RedisKeys, opts: { ttlS: number; eventsMaxLen: number }) {
    this.#redis = redis;
    this.#keys = keys;
    this.#ttlS = opts.ttlS;
    this.#eventsMaxLen = opts.eventsMaxLen;
  }

  async get(jobId: string): Promise<JobRecord | undefined> {
    return fromHmget(await this.#redis.hmget(this.#keys.idRecord(jobId), ...FIELDS));
  }

  /** Many records in one round trip (undefined where none). */
  async getMany(jobIds: readonly string[]): Promise<(JobRecord | undefined)[]> {
    if (jobIds.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of jobIds) pipeline.hmget(this.#keys.idRecord(id), ...FIELDS);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, values]) => {
      if (err) throw err;
      return fromHmget(values as (string | null)[]);
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

  /**
   * What a new or re-opened run of a job is for (SPEC §8): its tenant (one more open job
   * for it) and its deadline — in the record, where the call start checks it, and in the
   * deadlines zset the sweeper reads; no deadline clears an earlier one.
   */
  setRunTerms(pipeline: ReturnType<RedisClient['pipeline']>, jobId: string, terms: { tenant: string; deadline: number | undefined }): void {
    const key = this.#keys.idRecord(jobId);
    pipeline.hset(key, 'tenant', terms.tenant);
    pipeline.hincrby(this.#keys.tenantStats, `${terms.tenant}:open`, 1);
    if (terms.deadline === undefined) {
      pipeline.hdel(key, 'deadline');
      pipeline.zrem(this.#keys.deadlines, jobId);
    } else {
      pipeline.hset(key, 'deadline', String(terms.deadline));
      pipeline.zadd(this.#keys.deadlines, terms.deadline, jobId);
    }
  }

  /** Deadlines due by `now` (ms), oldest first, at most `limit`. */
  async dueDeadlines(now: number, limit: number): Promise<{ jobId: string; deadline: number }[]> {
    const flat = await this.#redis.zrangebyscore(this.#keys.deadlines, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit);
    const due: { jobId: string; deadline: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) due.push({ jobId: flat[i] as string, deadline: Number(flat[i + 1]) });
    return due;
  }

  /** End a job whose deadline passed before its first call, exactly once (see lua/expire-job.lua). */
  expire(jobId: string, input: ExpireInput): Promise<ExpireJobReply> {
    return expireJob(this.#redis, { ...this.#finalisationKeys(jobId, input.batchId), deadlines: this.#keys.deadlines }, {
      jobId,
      batchId: input.batchId || undefined,
      tenant: input.tenant,
      deadline: input.deadline,
      error: input.error,
      data: JSON.stringify(input.data) ?? '{}',
      webhook: input.webhook?.url ? input.webhook : undefined,
      eventsMaxLen: this.#eventsMaxLen,
      ttlS: this.#ttlS,
      now: Date.now(),
    });
  }

  /** The ledger's keys of a job (a job without a batch names the unused `batch:-`). */
  #ledgerKeys(jobId: string, batchId: string | undefined, tenant: string) {
    return {
      idRecord: this.#keys.idRecord(jobId),
      batch: this.#keys.batch(batchId || '-'),
      stats: this.#keys.stats,
      calls: this.#keys.idCalls(jobId),
      tenantCalls: this.#keys.tenantCalls(tenant),
      tenantMegapixels: this.#keys.tenantMegapixels(tenant),
    };
  }

  /**
   * Start of a worker run: count orphaned calls (see lua/begin-run.lua), return the record.
   * With `start`, a job that never started a call (its first run) also gets its call
   * started in the same round trip: `start` is then what `startCall` would have answered
   * (undo an `ok` never sent with `releaseCall`); absent on a later run. `limits`: the
   * job's tenant (its keys) and that tenant's caps, checked with the start.
   */
  async beginRun(
    jobId: string,
    batchId: string | undefined,
    start?: CallStartOptions,
    limits: TenantLimits = NO_LIMITS,
  ): Promise<{ record: JobRecord; orphanedCalls: number; start?: CallStartVerdict }> {
    const opId = randomUUID();
    const keys = { ...this.#ledgerKeys(jobId, batchId, limits.tenant), limiter: this.#keys.limiter, tenantReleased: this.#keys.tenantReleased(limits.tenant) };
    const reply = await beginRun(this.#redis, keys, {
      jobId,
      ttlS: this.#ttlS,
      batchId: batchId || undefined,
      now: Date.now(),
      start: start ? { opId, leaseMs: leaseOf(start), limiterMax: start.limiterMax, defaultMaxMp: start.defaultMaxMp, ...limits } : undefined,
    });
    const out = { record: toRecord(reply.record), orphanedCalls: Number(reply.orphanedCalls) };
    return reply.start ? { ...out, start: toVerdict(reply.start, opId) } : out;
  }

  /**
   * Right before an upstream call: `ok` (the call is now counted as started and in flight
   * under `opId` for `leaseMs`; renew it with `renewCall` and settle it with
   * `callSettled`), or why it must not be made: the generation is already `final`
   * (cancelled, or finished by another run), a 429 back-off window of the fleet, or the
   * batch's budget, or the tenant's limits (`limits`).
   */
  async startCall(jobId: string, batchId: string | undefined, opts: CallStartOptions, limits: TenantLimits = NO_LIMITS): Promise<CallStartVerdict> {
    const opId = randomUUID();
    const { idRecord, batch, calls, tenantCalls, tenantMegapixels } = this.#ledgerKeys(jobId, batchId, limits.tenant);
    const reply = await startCall(this.#redis, { idRecord, limiter: this.#keys.limiter, batch, calls, tenantCalls, tenantMegapixels }, {
      ...limits,
      opId,
      leaseMs: leaseOf(opts),
      ttlS: this.#ttlS,
      limiterMax: opts.limiterMax,
      batchId: batchId || undefined,
      defaultMaxMp: opts.defaultMaxMp,
    });
    return toVerdict(reply, opId);
  }

  /** Undo the start of call `opId` whose request was never sent (see lua/release-call.lua). */
  async releaseCall(jobId: string, opId: string, tenant = DEFAULT_TENANT): Promise<boolean> {
    const keys = { idRecord: this.#keys.idRecord(jobId), calls: this.#keys.idCalls(jobId), tenantCalls: this.#keys.tenantCalls(tenant) };
    return (await releaseCall(this.#redis, keys, { opId })).released;
  }

  /** The run making call `opId` is alive: extend its lease. False when it is no longer in flight. */
  renewCall(jobId: string, opId: string, leaseMs: number, tenant = DEFAULT_TENANT): Promise<boolean> {
    return renewCall(this.#redis, { calls: this.#keys.idCalls(jobId), tenantCalls: this.#keys.tenantCalls(tenant) }, { opId, leaseMs: Math.max(1, Math.round(leaseMs)) });
  }

  /** When upstream call `opId` has an outcome; returns the job's ledger after it. */
  async callSettled(
    jobId: string,
    batchId: string | undefined,
    opId: string,
    outcome: CallOutcome,
    tenant = DEFAULT_TENANT,
  ): Promise<{ attempts: number; possiblyBilled: number }> {
    const reply = await settleCall(this.#redis, { ...this.#ledgerKeys(jobId, batchId, tenant), tenantStats: this.#keys.tenantStats }, {
      tenant,
      day: utcDay(),
      opId,
      spendsAttempt: outcome.spendsAttempt,
      ambiguous: outcome.ambiguous,
      ttlS: this.#ttlS,
      batchId: batchId || undefined,
      outputMp: outcome.outputMp ?? 0,
      inputMp: outcome.inputMp ?? 0,
      costMicroUsd: Math.round(outcome.costMicroUsd ?? 0),
    });
    return { attempts: Number(reply.attempts), possiblyBilled: Number(reply.possiblyBilled) };
  }

  /** The keys lua/finalize-job.lua and cancel-job.lua write. */
  #finalisationKeys(jobId: string, batchId: string | undefined): FinalisationKeys {
    return {
      idRecord: this.#keys.idRecord(jobId),
      events: this.#keys.events,
      batch: this.#keys.batch(batchId || '-'),
      batchOpen: this.#keys.batchOpen(batchId || '-'),
      batchesPending: this.#keys.batchesPending,
      webhookOutbox: this.#keys.webhookOutbox,
      stats: this.#keys.stats,
      tenantStats: this.#keys.tenantStats,
    };
  }

  /** Record the final state, emit its event and queue its webhook, exactly once per generation. */
  async finalize(jobId: string, input: FinalizeInput): Promise<FinalizeOutcome> {
    const reply = await finalizeJob(this.#redis, this.#finalisationKeys(jobId, input.batchId), {
      jobId,
      state: input.state,
      tenant: input.tenant,
      result: input.result,
      error: input.error,
      event: input.event ? { type: input.event.type, data: JSON.stringify(input.event.data) ?? '' } : undefined,
      webhook: input.webhook?.url ? withTrace(input.webhook) : undefined,
      batchId: input.batchId || undefined,
      eventsMaxLen: this.#eventsMaxLen,
      ttlS: this.#ttlS,
      now: Date.now(),
    });
    return { recorded: reply.recorded, eventId: reply.eventId, batchFinished: reply.batchFinished };
  }

  /**
   * Cancel the current generation unless it already ended (`final`) or an upstream call
   * has started in it (`active`), in one step with the check (see lua/cancel-job.lua).
   */
  async cancel(jobId: string, batchId: string | undefined, tenant?: string): Promise<'cancelled' | 'active' | 'final'> {
    const reply = await cancelJob(this.#redis, this.#finalisationKeys(jobId, batchId), {
      jobId,
      tenant,
      batchId: batchId || undefined,
      eventsMaxLen: this.#eventsMaxLen,
      ttlS: this.#ttlS,
      now: Date.now(),
    });
    return reply.outcome;
  }

  /** Re-open a failed, cancelled or expired id; returns the new generation or 0. */
  reopen(jobId: string, batchId: string | undefined): Promise<number> {
    const keys = { idRecord: this.#keys.idRecord(jobId), batch: this.#keys.batch(batchId || '-'), batchOpen: this.#keys.batchOpen(batchId || '-') };
    return reopenJob(this.#redis, keys, { jobId, batchId: batchId || undefined, ttlS: this.#ttlS });
  }
}
