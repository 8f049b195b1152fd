import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { BatchOptions, BatchStore } from '../shared/batch-store.js';
import { PARKED_MIN_SCORE, parkedDelayMs } from '../shared/bullmq-internals.js';
import { FairShare, parkedJob } from '../shared/fair-share.js';
import type { Config } from '../shared/config.js';
import { DEFAULT_TENANT } from '../shared/ids.js';
import { jobTenant, type JobData } from '../shared/job-data.js';
import { generationJobOptions } from '../shared/job-options.js';
import type { JobRecords } from '../shared/job-record.js';
import type { RedisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { ATTR, SPAN, SpanKind, contextMetadata, endStatus, startSpan } from '../shared/spans.js';
import type { PreparedRequest } from './prepare.js';

/** `addBulk` chunk: BullMQ sends a bulk as one pipeline; big ones stall Redis (#1670). */
export const BULK_CHUNK = 500;
/** BullMQ job name of every generation job. */
export const JOB_NAME = 'generate';

export type EnqueueStatus = 'created' | 'exists' | 'retried';

export interface EnqueueOutcome {
  id: string;
  status: EnqueueStatus;
  batchId?: string;
}

export interface EnqueueDeps {
  config: Config;
  redis: RedisClient;
  keys: RedisKeys;
  records: JobRecords;
  batches: BatchStore;
  queue: Queue<JobData, JobResult>;
  log: Logger;
}

/**
 * `queue.addBulk`, each job in its own `fluxq.enqueue` span (a child of the caller's
 * active span), whose context the job carries where BullMQ's telemetry does
 * (`opts.telemetry.metadata`): the worker's spans of the job join its trace.
 */
async function addTraced(queue: Queue<JobData, JobResult>, jobs: { item: PreparedRequest; opts: JobsOptions }[]): Promise<void> {
  const spans = jobs.map(({ item }) =>
    startSpan(SPAN.enqueue, {
      kind: SpanKind.PRODUCER,
      attributes: { [ATTR.jobId]: item.id, ...(item.batchId ? { [ATTR.batchId]: item.batchId } : {}), [ATTR.tenant]: jobTenant(item.data) },
    }),
  );
  try {
    await queue.addBulk(
      jobs.map(({ item, opts }, n) => {
        const metadata = contextMetadata(spans[n]?.context);
        return { name: JOB_NAME, data: item.data, opts: metadata ? { ...opts, telemetry: { metadata } } : opts };
      }),
    );
    for (const { span } of spans) endStatus(span, true);
  } catch (err) {
    for (const { span } of spans) endStatus(span, false, err);
    throw err;
  } finally {
    for (const { span } of spans) span.end();
  }
}

/**
 * Enqueue one chunk idempotently (SPEC §7 Ids): an id whose job is waiting, delayed,
 * active or completed (or trimmed, per its id record) changes nothing; an id whose job
 * failed or was cancelled is retried, same job, fresh attempts. Records and batch
 * membership are written before the job exists, so a fast worker always finds them.
 * New jobs are added parked and listed in their fair-share flows (shared/fair-share.ts),
 * which release them in fair order; an existing job still parked is listed again (a
 * producer that died between the two steps left it unlisted; a second entry of a job
 * already released is skipped by the dispatcher).
 */
async function enqueueChunk(deps: EnqueueDeps, fair: FairShare, items: PreparedRequest[], priority: number | undefined): Promise<EnqueueOutcome[]> {
  const { redis, keys, records, batches, queue } = deps;
  const check = redis.pipeline();
  for (const it of items) {
    check.hmget(keys.idRecord(it.id), 'state', 'final', 'gen');
    check.exists(keys.bullJob(it.id));
    check.zscore(keys.bullFailed, it.id);
    check.zscore(keys.bullDelayed, it.id);
  }
  const replies = (await check.exec()) ?? [];
  const at = (i: number) => {
    const [err, value] = replies[i] ?? [null, null];
    if (err) throw err;
    return value;
  };

  const outcomes: EnqueueOutcome[] = [];
  const toAdd: PreparedRequest[] = [];
  const toCreate: PreparedRequest[] = [];
  const toRetry: PreparedRequest[] = [];
  const toReopen: PreparedRequest[] = [];
  const toRelist: PreparedRequest[] = [];
  items.forEach((it, n) => {
    const [state, final, gen] = at(n * 4) as (string | null)[];
    const recordFinal = state !== null && final !== null && final === (gen ?? '1') ? state : undefined;
    const jobExists = at(n * 4 + 1) === 1;
    const inFailed = at(n * 4 + 2) !== null;
    const delayedScore = at(n * 4 + 3) as string | null;
    const outcome = (status: EnqueueStatus): EnqueueOutcome => ({ id: it.id, status, ...(it.batchId ? { batchId: it.batchId } : {}) });
    if (recordFinal === 'completed') outcomes.push(outcome('exists'));
    else if (jobExists && inFailed) {
      toRetry.push(it);
      outcomes.push(outcome('retried'));
    } else if (jobExists) {
      if (delayedScore !== null && Number(delayedScore) >= PARKED_MIN_SCORE) toRelist.push(it);
      outcomes.push(outcome('exists'));
    }
    else if (recordFinal === 'failed' || recordFinal === 'cancelled' || recordFinal === 'expired') {
      toReopen.push(it);
      toAdd.push(it);
      outcomes.push(outcome('retried'));
    } else {
      toCreate.push(it);
      toAdd.push(it);
      outcomes.push(outcome('created'));
    }
  });

  for (const it of [...toReopen, ...toRetry]) await records.reopen(it.id, it.batchId);
  if (toCreate.length > 0) {
    const reg = redis.pipeline();
    const now = Date.now();
    for (const it of toCreate) records.register(reg, { id: it.id, batchId: it.batchId, ...it.data.params }, now);
    await reg.exec();
    const byBatch = new Map<string, string[]>();
    for (const it of toCreate) if (it.batchId) byBatch.set(it.batchId, [...(byBatch.get(it.batchId) ?? []), it.id]);
    for (const [batchId, ids] of byBatch) await batches.addJobs(batchId, ids, { tenant: items.find((x) => x.batchId === batchId)?.tenant ?? DEFAULT_TENANT });
  }
  // Tenant and deadline of every run about to start (new, re-opened or retried), before its job exists.
  const toRun = [...toAdd, ...toRetry];
  if (toRun.length > 0) {
    const terms = redis.pipeline();
    for (const it of toRun) records.setRunTerms(terms, it.id, { tenant: it.tenant, deadline: it.deadline });
    await terms.exec();
  }
  if (toAdd.length > 0) {
    // Added parked: fair-dispatch.lua releases them into the wait list by fair share.
    const delay = parkedDelayMs();
    await addTraced(queue, toAdd.map((it) => ({ item: it, opts: { ...generationJobOptions(deps.config, it.id, priority), delay } })));
  }
  const park = [...toAdd, ...toRelist].map((it) => parkedJob(it.id, it.data, priority));
  if (park.length > 0) await fair.dispatch(park);
  deps.log.debug({ created: toCreate.length, existing: items.length - toAdd.length - toRetry.length, retried: toReopen.length + toRetry.length }, 'enqueued a chunk');
  for (const it of toRetry) {
    const job = await Job.fromId<JobData, JobResult>(queue, it.id).catch((err: unknown) => {
      if (err instanceof SyntaxError) return 'unreadable' as const;
      throw err;
    });
    if (job === 'unreadable') {
      // Another client's unreadable data: replace the failed job with this request.
      await queue.remove(it.id);
      await queue.add(JOB_NAME, it.data, { ...generationJobOptions(deps.config, it.id, priority), delay: parkedDelayMs() });
      await fair.dispatch([parkedJob(it.id, it.data, priority)]);
    } else if (job) {
      await job.updateData(it.data);
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    }
    deps.log.info({ jobId: it.id }, 'failed job enqueued again: retrying it with fresh attempts');
  }
  return outcomes;
}

export async function enqueuePrepared(
  deps: EnqueueDeps,
  items: PreparedRequest[],
  opts: { priority?: number | undefined; batch?: string | undefined; batchOptions?: BatchOptions | undefined },
): Promise<EnqueueOutcome[]> {
  if (opts.batch && opts.batchOptions && (opts.batchOptions.maxMegapixels !== undefined || opts.batchOptions.webhook)) {
    await deps.batches.addJobs(opts.batch, [], opts.batchOptions);
  }
  const outcomes: EnqueueOutcome[] = [];
  const fair = new FairShare(deps.redis, deps.keys, deps.config, deps.log);
  for (let i = 0; i < items.length; i += BULK_CHUNK) outcomes.push(...(await enqueueChunk(deps, fair, items.slice(i, i + BULK_CHUNK), opts.priority)));
  return outcomes;
}
