import type { Job, Queue } from 'bullmq';
import { isParked } from '../shared/bullmq-internals.js';
import { isValidJobId } from '../shared/ids.js';
import { jobTenant, type JobData } from '../shared/job-data.js';
import type { JobRecords } from '../shared/job-record.js';
import type { JobResult } from '../shared/result.js';

/** SPEC §7: the states `fluxq status` prints and the API returns. */
export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'paused' | 'cancelled' | 'expired';

export const FINAL_STATES: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled', 'expired']);

/** A job as users see it (SPEC §6 `GET /v1/jobs/:id`, without presigned URLs). */
export interface JobStatus {
  id: string;
  state: JobState;
  batchId?: string;
  /** Who the job is for (SPEC §8). */
  tenant: string;
  attempts: number;
  possibly_billed: number;
  error?: string;
  result?: JobResult;
}

/** BullMQ's state names → fluxq's. v6 has no `paused` state: a waiting job of a paused queue is `paused`. */
export function mapBullState(state: string, queuePaused: boolean): JobState {
  switch (state) {
    case 'active':
      return 'active';
    case 'delayed':
      return 'delayed';
    case 'completed':
      return 'completed';
    case 'failed':
      return 'failed';
    default:
      // waiting, prioritized, waiting-children
      return queuePaused ? 'paused' : 'waiting';
  }
}

export interface JobStatusDeps {
  queue: Queue<JobData, JobResult>;
  records: JobRecords;
}

/**
 * BullMQ's job, or 'unreadable' when its stored data is not JSON (another client wrote
 * it): reading must not fail for that, the state is still known.
 */
export async function readJob(queue: Queue<JobData, JobResult>, id: string): Promise<Job<JobData, JobResult> | undefined | 'unreadable'> {
  try {
    return (await queue.getJob(id)) as Job<JobData, JobResult> | undefined;
  } catch (err) {
    if (err instanceof SyntaxError) return 'unreadable';
    throw err;
  }
}

/**
 * The status of one job, from its id record (which outlives the job) and BullMQ. An id no
 * job can have (`marker`, `a:b`) is unknown without a read: as a key it would name one of
 * the queue's own keys.
 */
export async function getJobStatus(deps: JobStatusDeps, id: string, again = true): Promise<JobStatus | undefined> {
  if (!isValidJobId(id)) return undefined;
  const [record, read] = await Promise.all([deps.records.get(id), readJob(deps.queue, id)]);
  const job = read === 'unreadable' ? undefined : read;
  if (!record && !read) return undefined;
  const status: JobStatus = {
    id,
    state: 'waiting',
    tenant: record?.tenant ?? jobTenant(job?.data),
    attempts: record?.attempts ?? 0,
    possibly_billed: record?.possiblyBilled ?? 0,
  };
  const batchId = record?.batchId ?? job?.data?.batch;
  if (batchId) status.batchId = batchId;
  if (record?.state) {
    status.state = record.state;
    if (record.state === 'completed' && record.result) status.result = JSON.parse(record.result) as JobResult;
    if ((record.state === 'failed' || record.state === 'expired') && record.error) status.error = record.error;
    return status;
  }
  if (read === 'unreadable') {
    status.state = mapBullState(await deps.queue.getJobState(id), await deps.queue.isPaused());
    return status;
  }
  if (!job) return undefined;
  const [bullState, paused] = await Promise.all([job.getState(), deps.queue.isPaused()]);
  // The job finished between the reads: the snapshot lacks its reason or result, and the
  // id record (written before BullMQ's move) now has them. Read both again, once.
  if (again && (bullState === 'completed' || bullState === 'failed') && !job.finishedOn) return getJobStatus(deps, id, false);
  // A parked job (fair share: delayed until its turn) is waiting.
  status.state = mapBullState(bullState === 'delayed' && isParked(job) ? 'waiting' : bullState, paused);
  if (status.state === 'completed' && job.returnvalue) status.result = job.returnvalue;
  if (status.state === 'failed' && job.failedReason) status.error = job.failedReason;
  return status;
}
