import type { JobRecord, JobRecords } from '../shared/job-record.js';

export interface FinishedJob {
  id: string;
  record: JobRecord;
}

export interface FollowOptions {
  pollMs?: number;
  /** Called once per job when it reaches a final state. */
  onFinished?: (job: FinishedJob) => void;
  /** Called after every poll with the number of jobs still open. */
  onProgress?: (open: number) => void;
  signal?: AbortSignal;
}

/**
 * Follow jobs until each is completed, failed or cancelled, by polling their id records
 * in one pipeline per round (not the BullMQ event stream, which is trimmed at ~10 k).
 * Resolves with every job's final record.
 */
export async function followJobs(records: JobRecords, ids: readonly string[], opts: FollowOptions = {}): Promise<FinishedJob[]> {
  const open = new Set(ids);
  const finished: FinishedJob[] = [];
  const pollMs = opts.pollMs ?? 500;
  for (;;) {
    const batch = [...open];
    for (let i = 0; i < batch.length; i += 2000) {
      const slice = batch.slice(i, i + 2000);
      const recs = await records.getMany(slice);
      recs.forEach((record, n) => {
        const id = slice[n] as string;
        if (record?.state) {
          open.delete(id);
          const job = { id, record };
          finished.push(job);
          opts.onFinished?.(job);
        }
      });
    }
    opts.onProgress?.(open.size);
    if (open.size === 0) return finished;
    if (opts.signal?.aborted) throw new Error('stopped following jobs');
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
