import type { JobsOptions } from 'bullmq';
import type { Config } from './config.js';

/** Backoff jitter: each retry waits a random time in [½, 1] × BACKOFF_BASE_MS × 2^(n−1). */
export const BACKOFF_JITTER = 0.5;

/**
 * BullMQ options of a generation job: the envelope id as job id, JOB_ATTEMPTS tries,
 * exponential backoff with jitter, and the batch priority. Retention (removeOnComplete
 * / removeOnFail) is set on the Worker, not copied into every job hash (#2625).
 */
export function generationJobOptions(config: Config, jobId: string, priority?: number): JobsOptions {
  return {
    jobId,
    attempts: config.worker.jobAttempts,
    backoff: { type: 'exponential', delay: config.worker.backoffBaseMs, jitter: BACKOFF_JITTER },
    ...(priority !== undefined ? { priority } : {}),
  };
}
