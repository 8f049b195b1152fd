import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/**
 * Making a job's generation final, exactly once (lua/finalize-job.lua, cancel-job.lua,
 * both on lua/includes/make-final.lua): final state, event, webhook outbox entry and
 * batch counts in one step.
 */

const KEY_NAMES = ['idRecord', 'events', 'batch', 'batchOpen', 'batchesPending', 'webhookOutbox', 'stats'] as const;
export const FINALIZE_JOB = loadScript('finalize-job', KEY_NAMES);
export const CANCEL_JOB = loadScript('cancel-job', KEY_NAMES);

export interface FinalisationKeys {
  idRecord: string;
  events: string;
  /** The batch hash and its open set (`batch:-…` when the job has none). */
  batch: string;
  batchOpen: string;
  batchesPending: string;
  webhookOutbox: string;
  stats: string;
}

export interface FinalizeJobArgs {
  jobId: string;
  state: 'completed' | 'failed' | 'cancelled';
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
