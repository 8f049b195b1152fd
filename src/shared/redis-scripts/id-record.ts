import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/** The id record's own script (lua/reopen-job.lua): a failed or cancelled id runs again. */

export const REOPEN_JOB = loadScript('reopen-job', ['idRecord', 'batch', 'batchOpen']);

export interface ReopenJobKeys {
  idRecord: string;
  /** The batch hash and its open set (`batch:-…` when the job has none). */
  batch: string;
  batchOpen: string;
}

export interface ReopenJobArgs {
  jobId: string;
  batchId?: string | undefined;
  ttlS: number;
}

/** The new generation, or 0 when the id is not failed or cancelled (nothing changed). */
export async function reopenJob(redis: RedisClient, keys: ReopenJobKeys, args: ReopenJobArgs): Promise<number> {
  return (await runScript<keyof ReopenJobKeys, { gen: number }>(redis, REOPEN_JOB, keys, args)).gen;
}
