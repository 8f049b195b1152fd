import type { Queue } from 'bullmq';
import { jobTenant, type JobData } from '../shared/job-data.js';
import type { JobRecords } from '../shared/job-record.js';
import type { Logger } from '../shared/logger.js';
import type { JobResult } from '../shared/result.js';
import { metadataOf, recordExpiry, type FinalFailureDeps } from './final-failure.js';

/**
 * SPEC §8 Deadlines, when no worker picks the job: every worker looks, on a timer, at the
 * deadlines zset for jobs whose deadline passed, and ends each that started no call as
 * `expired` through lua/expire-job.lua (one step with its event, webhook and batch count,
 * so a batch whose last open jobs expire still gets its batch.completed). Workers may
 * sweep at once: the script makes each job expire once. An expired job's BullMQ job is
 * removed from the queue, as a cancel does; a worker that holds it finds it final at its
 * call start and ends the run without a call.
 */

export interface DeadlineSweeperDeps extends FinalFailureDeps {
  records: JobRecords;
  queue: Queue<JobData, JobResult>;
  log: Logger;
  /** How often to look (ms). */
  everyMs: number;
  /** Jobs looked at per round. */
  batchSize?: number;
}

export class DeadlineSweeper {
  readonly #d: DeadlineSweeperDeps;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(deps: DeadlineSweeperDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#d.everyMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One round (a round already running is joined); returns how many jobs it expired. */
  sweep(): Promise<number> {
    this.#running ??= this.#round()
      .catch((err: unknown) => {
        this.#d.log.warn({ err: (err as Error).message }, 'deadline sweep failed; the next round retries');
        return 0;
      })
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<number> {
    const { records, queue, log } = this.#d;
    let expired = 0;
    const due = await records.dueDeadlines(Date.now(), this.#d.batchSize ?? 200);
    for (const { jobId, deadline } of due) {
      const [record, job] = await Promise.all([records.get(jobId), queue.getJob(jobId).catch(() => undefined)]);
      const data: Partial<JobData> = job?.data && typeof job.data === 'object' ? job.data : {};
      const reply = await recordExpiry(
        this.#d,
        {
          jobId,
          batchId: record?.batchId ?? data.batch,
          tenant: record?.tenant ?? jobTenant(data),
          deadline,
          ledger: { attempts: record?.attempts ?? 0, possiblyBilled: record?.possiblyBilled ?? 0 },
          metadata: metadataOf(data),
          webhook: data.webhook,
        },
        log,
      );
      if (reply.outcome !== 'expired') continue;
      expired++;
      // A worker that holds the job keeps its lock and the removal is refused: it finds the job final at its call start.
      await queue.remove(jobId).catch(() => 0);
    }
    return expired;
  }
}
