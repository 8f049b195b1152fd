import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/** The batch record's scripts (lua/add-batch-jobs.lua, emit-batch-completed.lua). */

export const ADD_BATCH_JOBS = loadScript('add-batch-jobs', ['batch', 'batchJobs', 'batchOpen']);
export const EMIT_BATCH_COMPLETED = loadScript('emit-batch-completed', ['batch', 'events', 'batchesPending', 'webhookOutbox']);

export interface AddBatchJobsKeys {
  batch: string;
  batchJobs: string;
  batchOpen: string;
}

export interface AddBatchJobsArgs {
  jobIds: readonly string[];
  now: number;
  /** The batch's budget in megapixels. */
  maxMp?: number | undefined;
  /** The batch webhook, which receives batch.completed. */
  webhook?: { url: string; secret: string } | undefined;
  /** Whose batch it is; the first enqueue that names one sets it. */
  tenant?: string | undefined;
}

/** How many of the jobs were new members. */
export async function addBatchJobs(redis: RedisClient, keys: AddBatchJobsKeys, args: AddBatchJobsArgs): Promise<number> {
  return (await runScript<keyof AddBatchJobsKeys, { added: number }>(redis, ADD_BATCH_JOBS, keys, args)).added;
}

export interface EmitBatchCompletedKeys {
  batch: string;
  events: string;
  batchesPending: string;
  webhookOutbox: string;
}

export interface EmitBatchCompletedArgs {
  batchId: string;
  eventsMaxLen: number;
  /** The event's data (a JSON string); absent: only check whether one is owed. */
  data?: string | undefined;
  now: number;
}

/** `{ eventId }` ('' when nothing was owed) or, without data, `{ owed: true }`. */
export type EmitBatchCompletedReply = { eventId: string; owed?: undefined } | { owed: true; eventId?: undefined };

export function emitBatchCompleted(redis: RedisClient, keys: EmitBatchCompletedKeys, args: EmitBatchCompletedArgs): Promise<EmitBatchCompletedReply> {
  return runScript(redis, EMIT_BATCH_COMPLETED, keys, args);
}
