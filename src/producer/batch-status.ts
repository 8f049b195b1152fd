import type { Queue } from 'bullmq';
import type { JobData } from '../shared/job-data.js';
import type { JobRecords } from '../shared/job-record.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { mapBullState } from './job-status.js';

/** SPEC §6 `GET /v1/batches/:id`. */
export interface BatchStatus {
  batchId: string;
  state: 'running' | 'completed';
  total: number;
  counts: { waiting: number; active: number; delayed: number; completed: number; failed: number; cancelled: number };
  output_mp: number;
  input_mp: number;
  possibly_billed: number;
  cost_usd: number;
}

export interface BatchStatusDeps {
  queue: Queue<JobData, JobResult>;
  redis: RedisClient;
  records: JobRecords;
  keys: RedisKeys;
  prices: { firstMpUsd: number; extraMpUsd: number };
}

/** Estimated cost of one image result: first output MP, then each further output or input MP. */
export function estimateCostUsd(outputMp: number, inputMp: number, prices: { firstMpUsd: number; extraMpUsd: number }): number {
  if (outputMp <= 0 && inputMp <= 0) return 0;
  const first = outputMp > 0 ? 1 : 0;
  return first * prices.firstMpUsd + (Math.max(outputMp - first, 0) + inputMp) * prices.extraMpUsd;
}

/** A batch's state from its members' records and BullMQ states. */
export async function getBatchStatus(deps: BatchStatusDeps, batchId: string): Promise<BatchStatus | undefined> {
  const ids = await deps.redis.smembers(deps.keys.batchJobs(batchId));
  if (ids.length === 0) return undefined;
  const counts = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0 };
  let output = 0;
  let input = 0;
  let pb = 0;
  let cost = 0;
  const records = await deps.records.getMany(ids);
  const paused = await deps.queue.isPaused();
  await Promise.all(
    records.map(async (rec, i) => {
      pb += rec?.possiblyBilled ?? 0;
      if (rec?.state) {
        counts[rec.state]++;
        if (rec.state === 'completed' && rec.result) {
          const r = JSON.parse(rec.result) as JobResult;
          output += r.output_mp;
          input += r.input_mp;
          cost += estimateCostUsd(r.output_mp, r.input_mp, deps.prices);
        }
        return;
      }
      const state = mapBullState(await deps.queue.getJobState(ids[i] as string), paused);
      if (state === 'paused') counts.waiting++;
      else counts[state]++;
    }),
  );
  const open = counts.waiting + counts.active + counts.delayed;
  return {
    batchId,
    state: open === 0 ? 'completed' : 'running',
    total: ids.length,
    counts,
    output_mp: output,
    input_mp: input,
    possibly_billed: pb,
    cost_usd: Math.round(cost * 1e6) / 1e6,
  };
}
