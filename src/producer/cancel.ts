import type { Queue } from 'bullmq';
import type { BatchStore } from '../shared/batch-store.js';
import { isValidBatchId, isValidJobId } from '../shared/ids.js';
import type { JobData } from '../shared/job-data.js';
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
 * Cancel a job that has not started (waiting, delayed, prioritized, paused): its record
 * becomes `cancelled` (its batch counts it, once) and the BullMQ job is removed. A job a
 * worker holds is `active` and finishes; a finished one is `final`. A worker that picks
 * the job up in the instant between finds it cancelled and makes no upstream call.
 */
export async function cancelJob(deps: CancelDeps, jobId: string): Promise<CancelOutcome> {
  // An id no job can have would name one of the queue's own keys: unknown, nothing read or removed.
  if (!isValidJobId(jobId)) return 'unknown';
  const [record, read] = await Promise.all([deps.records.get(jobId), readJob(deps.queue, jobId)]);
  if (!record && !read) return 'unknown';
  const verdict = await deps.records.canCancel(jobId, deps.keys.bullActive);
  if (verdict !== 'ok') return verdict;
  if (read) {
    const state = await deps.queue.getJobState(jobId);
    if (state === 'active') return 'active';
    if (state === 'completed' || state === 'failed') return 'final';
  }
  const batchId = record?.batchId ?? (read && read !== 'unreadable' ? read.data?.batch : undefined);
  const fin = await deps.records.finalize(jobId, { state: 'cancelled', batchId });
  if (!fin.recorded) return 'final';
  await deps.queue.remove(jobId).catch(() => 0);
  return 'cancelled';
}

/** `fluxq cancel BATCH`: cancel every job of the batch that has not started. */
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
