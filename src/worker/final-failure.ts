import { UnrecoverableError, type Job } from 'bullmq';
import { oneLine } from '../shared/errors.js';
import { EVENT, type EventData } from '../shared/events.js';
import { expiredReason } from '../shared/deadline.js';
import { jobTenant, type JobData } from '../shared/job-data.js';
import type { FinalizeOutcome, JobRecords } from '../shared/job-record.js';
import type { ExpireJobReply } from '../shared/redis-scripts/finalisation.js';
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
  /** A job expired (its deadline passed before its first call). */
  onExpired?: (jobId: string, tenant: string) => void;
  /** A job became final: its batch may now owe batch.completed. */
  onFinalized?: (outcome: FinalizeOutcome, batchId: string | undefined) => void;
}

export interface FinalFailure {
  jobId: string;
  batchId: string | undefined;
  tenant: string;
  reason: string;
  ledger: Ledger;
  metadata: Record<string, unknown> | undefined;
  webhook: { url: string; secret: string } | undefined;
}

/** Record `f` once (finalize is idempotent) and tell the hooks. */
export async function recordFinalFailure(deps: FinalFailureDeps, f: FinalFailure, log: Logger): Promise<void> {
  const data = failureEventData(f);
  const fin = await deps.records.finalize(f.jobId, { state: 'failed', batchId: f.batchId, tenant: f.tenant, error: f.reason, event: { type: EVENT.jobFailed, data }, webhook: f.webhook });
  if (fin.recorded) deps.onFinalized?.(fin, f.batchId);
  deps.onFinalFailure?.(f.jobId, f.reason);
  log.warn({ jobId: f.jobId, reason: f.reason, attempts: f.ledger.attempts, possibly_billed: f.ledger.possiblyBilled }, 'job failed');
}

/** The data of job.failed and job.expired (SPEC §7, §8: the same fields). */
function failureEventData(f: FinalFailure): EventData['job.failed'] {
  return {
    jobId: f.jobId,
    ...(f.batchId ? { batchId: f.batchId } : {}),
    tenant: f.tenant,
    error: f.reason,
    attempts: f.ledger.attempts,
    possibly_billed: f.ledger.possiblyBilled,
    ...(f.metadata ? { metadata: f.metadata } : {}),
  };
}

export type Expiry = Omit<FinalFailure, 'reason'> & { deadline: number };

/**
 * End a job whose deadline passed before its first upstream call (SPEC §8): `expired`,
 * `job.expired` and its webhook, exactly once whoever gets there first (the deadline
 * sweeper or a run at its call start); never once a call started.
 */
export async function recordExpiry(deps: FinalFailureDeps, e: Expiry, log: Logger): Promise<ExpireJobReply> {
  const reason = expiredReason(e.deadline);
  const data = failureEventData({ ...e, reason });
  const reply = await deps.records.expire(e.jobId, { batchId: e.batchId, tenant: e.tenant, deadline: e.deadline, error: reason, data, webhook: e.webhook });
  if (reply.outcome === 'expired') {
    deps.onFinalized?.({ recorded: true, eventId: reply.eventId, batchFinished: reply.batchFinished }, e.batchId);
    deps.onExpired?.(e.jobId, e.tenant);
    log.info({ jobId: e.jobId, tenant: e.tenant, reason }, 'job expired');
  }
  return reply;
}

/** The metadata of a job's data when it is a JSON object. */
export function metadataOf(data: Partial<JobData>): Record<string, unknown> | undefined {
  return typeof data.metadata === 'object' && data.metadata !== null && !Array.isArray(data.metadata) ? data.metadata : undefined;
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
      tenant: rec?.tenant ?? jobTenant(data),
      reason: failureReason(err),
      ledger: { attempts: rec?.attempts ?? 0, possiblyBilled: rec?.possiblyBilled ?? 0 },
      metadata: metadataOf(data),
      webhook: data.webhook,
    },
    log,
  );
}
