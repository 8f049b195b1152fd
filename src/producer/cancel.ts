import type { Queue } from 'bullmq';
import type { BatchStore } from '../shared/batch-store.js';
import { isValidBatchId, isValidJobId } from '../shared/ids.js';
import { jobTenant, type JobData } from '../shared/job-data.js';
import type { JobRecords } from '../shared/job-record.js';
import type { RedisKeys } from '../shared/keys.js';
import { readJob } from './job-status.js';
import type { JobResult } from '../shared/result.js';

export interface CancelDeps {
  queue: Queue<JobData, JobResult>;
  records: JobRecords;
  batches: BatchStore;
  keys: RedisKeys;
}

export type CancelOutcome = 'cancelled' | 'active' | 'final' | 'unknown';

/**
 * Cancel a job that has not started its upstream call (waiting, delayed, prioritized,
 * paused, or picked up by a worker that has not called yet): its record becomes
 * `cancelled` (its batch counts it, once) and the BullMQ job is removed. A job whose call
 * has started is `active` and finishes; a finished one is `final`. Check and cancel are
 * one Redis script, and a worker's call start refuses a cancelled generation, so a job
 * is either cancelled with no upstream call or active — never cancelled and paid. A
 * worker that holds the job when it is cancelled ends its run without a call (BullMQ
 * then lists the job as failed with the reason `cancelled`; its record says cancelled).
 */
export async function cancelJob(deps: CancelDeps, jobId: string): Promise<CancelOutcome> {
  // An id no job can have would name one of the queue's own keys: unknown, nothing read or removed.
  if (!isValidJobId(jobId)) return 'unknown';
  const [record, read] = await Promise.all([deps.records.get(jobId), readJob(deps.queue, jobId)]);
  if (!record && !read) return 'unknown';
  if (record?.state) return 'final';
  if (read) {
    // BullMQ ended it without a record yet (stall limit, unparseable data): it is final.
    const state = await deps.queue.getJobState(jobId);
    if (state === 'completed' || state === 'failed') return 'final';
  }
  const batchId = record?.batchId ?? (read && read !== 'unreadable' ? read.data?.batch : undefined);
  const tenant = record?.tenant ?? (read && read !== 'unreadable' ? jobTenant(read.data) : undefined);
  const verdict = await deps.records.cancel(jobId, batchId, tenant);
  if (verdict !== 'cancelled') return verdict;
  // A worker that holds the job keeps its lock and the removal is refused: that worker
  // finds the job cancelled and ends the run.
  await deps.queue.remove(jobId).catch(() => 0);
  return 'cancelled';
}

/** `fluxq cancel BATCH`: cancel every job of the batch that has not started its call (the same atomic step per job). */
export async function cancelBatch(deps: CancelDeps, batchId: string): Promise<{ cancelled: number; active: number; open: number } | undefined> {
  if (!isValidBatchId(batchId) || !(await deps.batches.get(batchId))) return undefined;
  const open = await deps.batches.openMembers(batchId);
  let cancelled = 0;
  let active = 0;
  for (const id of open) {
    const outcome = await cancelJob(deps, id);
    if (outcome === 'cancelled') cancelled++;
    else if (outcome === 'active') active++;
  }
  return { cancelled, active, open: open.length };
}
