import type { Queue } from 'bullmq';
import type { BatchStore } from '../shared/batch-store.js';
import { isValidBatchId } from '../shared/ids.js';
import type { JobData } from '../shared/job-data.js';
import type { JobResult } from '../shared/result.js';

/** SPEC §6 `GET /v1/batches/:id`, with the record's timestamps and budget. */
export interface BatchStatus {
  batchId: string;
  /** `running` until every job is final, then `completed`. */
  state: 'running' | 'completed';
  /** Whose batch it is (SPEC §8). */
  tenant: string;
  total: number;
  counts: { waiting: number; active: number; delayed: number; completed: number; failed: number; cancelled: number; expired: number };
  output_mp: number;
  input_mp: number;
  possibly_billed: number;
  cost_usd: number;
  /** Paused queue: waiting jobs are held (`waiting` includes them). */
  paused: boolean;
  max_megapixels?: number;
  created?: string;
  started?: string;
  finished?: string;
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

export async function getBatchStatus(deps: { batches: BatchStore; queue: Queue<JobData, JobResult> }, batchId: string): Promise<BatchStatus | undefined> {
  // An id no batch can have (`x:jobs`) would name another key: unknown, nothing read.
  if (!isValidBatchId(batchId)) return undefined;
  let rec = await deps.batches.get(batchId);
  if (!rec) return undefined;
  const [open, paused] = await Promise.all([deps.batches.openCounts(batchId), deps.queue.isPaused()]);
  const openTotal = open.waiting + open.active + open.delayed;
  // Jobs finished between the two reads: the record read first is stale. A job leaves the
  // open set in the same script that counts it, so once the set was seen empty, a record
  // read after that holds every final count.
  if (openTotal === 0) rec = (await deps.batches.get(batchId)) ?? rec;
  const status: BatchStatus = {
    batchId,
    state: openTotal === 0 && rec.total > 0 ? 'completed' : 'running',
    tenant: rec.tenant,
    total: rec.total,
    counts: { ...open, completed: rec.completed, failed: rec.failed, cancelled: rec.cancelled, expired: rec.expired },
    output_mp: rec.outputMp,
    input_mp: rec.inputMp,
    possibly_billed: rec.possiblyBilled,
    cost_usd: rec.costUsd,
    paused,
  };
  if (rec.maxMegapixels !== undefined) status.max_megapixels = rec.maxMegapixels;
  for (const [k, v] of [['created', iso(rec.created)], ['started', iso(rec.started)], ['finished', openTotal === 0 ? iso(rec.finished) : undefined]] as const) {
    if (v) status[k] = v;
  }
  return status;
}
