import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/**
 * Making a job's generation final, exactly once (lua/finalize-job.lua, cancel-job.lua,
 * expire-job.lua, all on lua/includes/make-final.lua): final state, event, webhook
 * outbox entry, batch counts and the tenant's counters in one step.
 */

const KEY_NAMES = ['idRecord', 'events', 'batch', 'batchOpen', 'batchesPending', 'webhookOutbox', 'stats', 'tenantStats'] as const;
export const FINALIZE_JOB = loadScript('finalize-job', KEY_NAMES);
export const CANCEL_JOB = loadScript('cancel-job', KEY_NAMES);
export const EXPIRE_JOB = loadScript('expire-job', [...KEY_NAMES, 'deadlines']);

export interface FinalisationKeys {
  idRecord: string;
  events: string;
  /** The batch hash and its open set (`batch:-…` when the job has none). */
  batch: string;
  batchOpen: string;
  batchesPending: string;
  webhookOutbox: string;
  stats: string;
  /** The per-tenant counters. */
  tenantStats: string;
}

export interface FinalizeJobArgs {
  jobId: string;
  state: 'completed' | 'failed' | 'cancelled';
  /** The job's tenant (absent: `default`). */
  tenant?: string | undefined;
  result?: string | undefined;
  error?: string | undefined;
  /** The final event; `data` is written to the stream as it is (a JSON string). */
  event?: { type: string; data: string } | undefined;
  /** The job's own webhook, which receives the event; `trace`: the trace context its deliveries carry (spans.ts). */
  webhook?: { url: string; secret: string; trace?: string } | undefined;
  batchId?: string | undefined;
  eventsMaxLen: number;
  ttlS: number;
  now: number;
}

export interface FinalizeJobReply {
  /** This call made the generation final (false: it already was; nothing was written). */
  recorded: boolean;
  eventId: string;
  /** This job was the last open one of its batch. */
  batchFinished: boolean;
}

export function finalizeJob(redis: RedisClient, keys: FinalisationKeys, args: FinalizeJobArgs): Promise<FinalizeJobReply> {
  return runScript(redis, FINALIZE_JOB, keys, args);
}

export interface CancelJobArgs {
  jobId: string;
  tenant?: string | undefined;
  batchId?: string | undefined;
  eventsMaxLen: number;
  ttlS: number;
  now: number;
}

export interface CancelJobReply {
  /** `final`: the generation already ended; `active`: an upstream call started in it. */
  outcome: 'cancelled' | 'final' | 'active';
  batchFinished: boolean;
}

export function cancelJob(redis: RedisClient, keys: FinalisationKeys, args: CancelJobArgs): Promise<CancelJobReply> {
  return runScript(redis, CANCEL_JOB, keys, args);
}

export interface ExpireJobKeys extends FinalisationKeys {
  /** The zset of deadlines (job id → ms). */
  deadlines: string;
}

export interface ExpireJobArgs {
  jobId: string;
  batchId?: string | undefined;
  tenant?: string | undefined;
  /** The deadline (ms) as read from the zset: a job enqueued again with another one meanwhile is left alone. */
  deadline: number;
  /** The reason recorded (`expired: deadline … passed before the job started`). */
  error: string;
  /** The job.expired event's data as a JSON string. */
  data: string;
  webhook?: { url: string; secret: string } | undefined;
  eventsMaxLen: number;
  ttlS: number;
  now: number;
}

export interface ExpireJobReply {
  outcome: 'expired' | 'final' | 'started' | 'not_due' | 'gone';
  eventId: string;
  batchFinished: boolean;
}

/** End a job whose deadline passed before its first call started, exactly once (see lua/expire-job.lua). */
export function expireJob(redis: RedisClient, keys: ExpireJobKeys, args: ExpireJobArgs): Promise<ExpireJobReply> {
  return runScript(redis, EXPIRE_JOB, keys, args);
}
