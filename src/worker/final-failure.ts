import { UnrecoverableError, type Job } from 'bullmq';
import { oneLine } from '../shared/errors.js';
import { EVENT } from '../shared/events.js';
import type { JobData } from '../shared/job-data.js';
import type { FinalizeOutcome, JobRecords } from '../shared/job-record.js';
import type { Logger } from '../shared/logger.js';

/**
 * The one place a job's final failure is recorded (its id record, `job.failed`, its
 * webhook and batch count, in one finalize): for failures the processor decides, and
 * for the ones BullMQ decides without it (stall limit, maxStartedAttempts).
 */

export interface Ledger {
  attempts: number;
  possiblyBilled: number;
}

/** A failure the processor classified: its message is the reason as recorded (`transient: …`). */
export class ClassifiedError extends Error {
  override readonly name = 'ClassifiedError';
}

/**
 * The job's record already holds its final state (this run recorded the failure, or the
 * job was cancelled or finished meanwhile): BullMQ must fail the job without a retry, and
 * nothing is left to record.
 */
export class AlreadyFinalError extends UnrecoverableError {}

export interface FinalFailureDeps {
  records: JobRecords;
  onFinalFailure?: (jobId: string, reason: string) => void;
  /**
   * This process recorded a job's final state (once per job fleet-wide): `enqueuedAtMs`
   * is when it was enqueued (BullMQ's job timestamp), for the job duration histogram.
   */
  onJobFinal?: (state: 'completed' | 'failed', enqueuedAtMs: number | undefined) => void;
  /** A job became final: its batch may now owe batch.completed. */
  onFinalized?: (outcome: FinalizeOutcome, batchId: string | undefined) => void;
}

export interface FinalFailure {
  jobId: string;
  batchId: string | undefined;
  reason: string;
  ledger: Ledger;
  metadata: Record<string, unknown> | undefined;
  webhook: { url: string; secret: string } | undefined;
  /** BullMQ's job timestamp (enqueue time), when known. */
  enqueuedAtMs?: number;
}

/** Record `f` once (finalize is idempotent) and tell the hooks. */
export async function recordFinalFailure(deps: FinalFailureDeps, f: FinalFailure, log: Logger): Promise<void> {
  const data = {
    jobId: f.jobId,
    ...(f.batchId ? { batchId: f.batchId } : {}),
    error: f.reason,
    attempts: f.ledger.attempts,
    possibly_billed: f.ledger.possiblyBilled,
    ...(f.metadata ? { metadata: f.metadata } : {}),
  };
  const fin = await deps.records.finalize(f.jobId, { state: 'failed', batchId: f.batchId, error: f.reason, event: { type: EVENT.jobFailed, data }, webhook: f.webhook });
  if (fin.recorded) {
    deps.onFinalized?.(fin, f.batchId);
    deps.onJobFinal?.('failed', f.enqueuedAtMs);
  }
  deps.onFinalFailure?.(f.jobId, f.reason);
  log.warn({ jobId: f.jobId, reason: f.reason, attempts: f.ledger.attempts, possibly_billed: f.ledger.possiblyBilled }, 'job failed');
}

/** The reason to record for an error a job finally failed with: a classified one as it is, anything else is internal. */
export function failureReason(err: Error): string {
  return err instanceof ClassifiedError ? err.message : `internal: ${oneLine(err.message, 300)}`;
}

/**
 * BullMQ moved a job to failed (its `failed` event). When the processor did not record
 * that already (BullMQ failed it on its own: stall limit, maxStartedAttempts, or an error
 * out of the failure handling itself), record it here.
 */
export async function recordBullFailure(deps: FinalFailureDeps, job: Job, err: Error, log: Logger): Promise<void> {
  if (!job.id || !job.finishedOn || err instanceof AlreadyFinalError) return;
  const rec = await deps.records.get(job.id);
  if (rec?.state) return;
  const data = (typeof job.data === 'object' && job.data !== null ? job.data : {}) as Partial<JobData>;
  await recordFinalFailure(
    deps,
    {
      jobId: job.id,
      batchId: rec?.batchId ?? data.batch,
      reason: failureReason(err),
      ledger: { attempts: rec?.attempts ?? 0, possiblyBilled: rec?.possiblyBilled ?? 0 },
      metadata: typeof data.metadata === 'object' && data.metadata !== null && !Array.isArray(data.metadata) ? data.metadata : undefined,
      webhook: data.webhook,
      enqueuedAtMs: job.timestamp,
    },
    log,
  );
}
