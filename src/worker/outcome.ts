import { RateLimitError, UnrecoverableError, WaitingError, type Job, type Queue } from 'bullmq';
import type { Config } from '../shared/config.js';
import { BudgetError, InputError, InputUnavailableError, StorageError, UpstreamError, oneLine } from '../shared/errors.js';
import { EVENT } from '../shared/events.js';
import type { JobData } from '../shared/job-data.js';
import type { FinalizeOutcome, JobRecords } from '../shared/job-record.js';
import type { Logger } from '../shared/logger.js';
import { pauseQueue, type QueueControlDeps } from '../shared/queue-control.js';

/**
 * The only file that knows BullMQ's control flow: what each kind of failure becomes.
 *  - permanent, bad input, budget, poison → fail now (UnrecoverableError), final event
 *  - 429 → the whole queue is rate limited for Retry-After; the job goes back to the
 *    head of the wait list without spending an attempt (RateLimitError)
 *  - 401/402/403 → the queue is paused fleet-wide; the job goes back to wait (WaitingError)
 *  - transient, storage → retried with exponential backoff and jitter, until JOB_ATTEMPTS
 *  - ambiguous → retried, but at most MAX_AMBIGUOUS_RETRIES times
 *  - shutdown → back to wait with its checkpoint (WaitingError), no attempt spent
 */

/** A job whose data cannot be used (written to Redis by another client). */
export class PoisonJobError extends Error {
  override readonly name = 'PoisonJobError';
}

export interface Ledger {
  attempts: number;
  possiblyBilled: number;
}

export interface OutcomeDeps {
  config: Config;
  queue: Queue;
  records: JobRecords;
  control: QueueControlDeps;
  log: Logger;
  onRateLimited?: (retryAfterMs: number) => void;
  onFinalFailure?: (jobId: string, reason: string) => void;
  /** An attempt failed and will be retried with backoff. */
  onRetry?: (jobId: string, reason: string) => void;
  /** A job became final: its batch may now owe batch.completed. */
  onFinalized?: (outcome: FinalizeOutcome, batchId: string | undefined) => void;
}

export interface FailureContext {
  job: Job<JobData>;
  token: string | undefined;
  signal: AbortSignal | undefined;
  ledger: Ledger;
  batchId: string | undefined;
  metadata: Record<string, unknown> | undefined;
  webhook: { url: string; secret: string } | undefined;
  log: Logger;
}

/** Record the final failure (once) and stop BullMQ from retrying. */
export async function failJob(deps: OutcomeDeps, ctx: FailureContext, reason: string): Promise<never> {
  const jobId = ctx.job.id ?? '';
  const data = {
    jobId,
    ...(ctx.batchId ? { batchId: ctx.batchId } : {}),
    error: reason,
    attempts: ctx.ledger.attempts,
    possibly_billed: ctx.ledger.possiblyBilled,
    ...(ctx.metadata ? { metadata: ctx.metadata } : {}),
  };
  const fin = await deps.records.finalize(jobId, { state: 'failed', batchId: ctx.batchId, error: reason, event: { type: EVENT.jobFailed, data }, webhook: ctx.webhook });
  if (fin.recorded) deps.onFinalized?.(fin, ctx.batchId);
  deps.onFinalFailure?.(jobId, reason);
  ctx.log.warn({ reason, attempts: ctx.ledger.attempts, possibly_billed: ctx.ledger.possiblyBilled }, 'job failed');
  throw new UnrecoverableError(reason);
}

function attemptsLeft(deps: OutcomeDeps, ctx: FailureContext): boolean {
  const bullAttempts = ctx.job.opts.attempts ?? 1;
  return ctx.ledger.attempts < deps.config.worker.jobAttempts && ctx.job.attemptsMade + 1 < bullAttempts;
}

async function retryOrFail(deps: OutcomeDeps, ctx: FailureContext, reason: string): Promise<never> {
  if (!attemptsLeft(deps, ctx)) {
    return failJob(deps, ctx, reason);
  }
  ctx.log.info({ reason, attempts: ctx.ledger.attempts }, 'attempt failed; retrying with backoff');
  deps.onRetry?.(ctx.job.id ?? '', reason);
  throw new Error(reason);
}

/** Turn any error from a run into BullMQ's control flow. Always throws. */
export async function handleFailure(deps: OutcomeDeps, ctx: FailureContext, err: unknown): Promise<never> {
  if (err instanceof RateLimitError) throw err;

  if (ctx.signal?.aborted) {
    // Shutdown deadline (or a cancel): back to the queue with its checkpoint.
    ctx.log.warn('run cut off by shutdown; job goes back to the queue');
    await ctx.job.moveToWait(ctx.token);
    throw new WaitingError();
  }

  if (err instanceof UpstreamError) {
    switch (err.kind) {
      case 'rate_limited': {
        const ms = Math.max(err.retryAfterMs ?? 5000, 100);
        await deps.queue.rateLimit(ms);
        deps.onRateLimited?.(ms);
        ctx.log.warn({ retryAfterMs: ms }, 'upstream answered 429: the whole queue backs off');
        throw new RateLimitError();
      }
      case 'account': {
        const first = await pauseQueue(deps.control, err.message, err.status);
        if (first) ctx.log.fatal({ status: err.status, reason: err.message }, 'ACCOUNT-WIDE ERROR: the queue is paused fleet-wide; fix it, then run `fluxq resume`');
        await ctx.job.moveToWait(ctx.token);
        throw new WaitingError();
      }
      case 'permanent':
        return failJob(deps, ctx, err.message);
      case 'ambiguous': {
        const max = deps.config.worker.maxAmbiguousRetries;
        if (ctx.ledger.possiblyBilled > max) {
          return failJob(deps, ctx, `${err.message} (gave up after ${ctx.ledger.possiblyBilled} possibly billed calls, MAX_AMBIGUOUS_RETRIES=${max})`);
        }
        return retryOrFail(deps, ctx, err.message);
      }
      case 'transient':
        return retryOrFail(deps, ctx, err.message);
    }
  }
  if (err instanceof InputError) return failJob(deps, ctx, `permanent: ${err.message}`);
  if (err instanceof BudgetError) return failJob(deps, ctx, err.message);
  if (err instanceof PoisonJobError) return failJob(deps, ctx, `permanent: ${err.message}`);
  if (err instanceof StorageError) return retryOrFail(deps, ctx, `storage: ${err.message}`);
  if (err instanceof InputUnavailableError) return retryOrFail(deps, ctx, `transient: ${err.message}`);
  const message = err instanceof Error ? err.message : String(err);
  ctx.log.error({ err }, 'unexpected error in a run');
  return retryOrFail(deps, ctx, `internal: ${oneLine(message, 300)}`);
}
