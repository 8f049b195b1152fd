import { bullmqKeys } from './bullmq-internals.js';

/**
 * Every Redis key and S3 key layout fluxq uses, in one place (SPEC §7). A second place
 * that builds a key is a bug waiting to happen. BullMQ's own keys come from BullMQ
 * (see bullmq-internals.ts for what fluxq relies on in them).
 */

/** BullMQ keeps generation jobs under `{prefix}:{queue}:…`; fluxq's own keys are these. */
export interface RedisKeys {
  /** The durable events stream (SPEC §5). */
  events: string;
  /** Per-job id record and ledger: idempotency, final state, result, attempts. */
  idRecord(jobId: string): string;
  /** A job's upstream calls by operation id (a hash): lease end while in flight, then settled or counted orphaned. */
  idCalls(jobId: string): string;
  /** Batch record (a hash): totals, counts by state, megapixels, timestamps. */
  batch(batchId: string): string;
  /** Ids of a batch's jobs (a set), for manifests, cancel and status. */
  batchJobs(batchId: string): string;
  /** Ids of a batch's jobs that are not final yet (a set); empty = the batch is finished. */
  batchOpen(batchId: string): string;
  /** Short lease held by the worker writing a batch's manifest and batch.completed. */
  batchLease(batchId: string): string;
  /** A sorted copy of a batch's job ids (a zset) read page by page while one manifest is written. */
  batchJobsSnapshot(batchId: string, runId: string): string;
  /** Batches that finished and still owe their manifest and batch.completed (a set). */
  batchesPending: string;
  /** Webhook deliveries written atomically with their event, waiting to be queued (a list). */
  webhookOutbox: string;
  /** Outbox entries being moved into the webhook queue (a list), for crash recovery. */
  webhookRelaying: string;
  /** Outbox entries that could not be read as a delivery (a capped list), kept for a look. */
  webhookDead: string;
  /** Once-only guard of a webhook.failed event. */
  webhookFailedGuard(deliveryId: string): string;
  /** BullMQ's own hash for a generation job. */
  bullJob(jobId: string): string;
  /** BullMQ's sorted set of failed jobs. */
  bullFailed: string;
  /** BullMQ's list of active jobs and sorted set of delayed ones. */
  bullActive: string;
  bullDelayed: string;
  /** BullMQ's limiter key (SET by queue.rateLimit on a 429). */
  limiter: string;
  /** BullMQ's meta hash (paused flag, global concurrency). */
  meta: string;
  /** The adaptive concurrency controller's state (a hash), GLOBAL_CONCURRENCY=auto. */
  concurrency: string;
  /** BullMQ's wake-up marker (a zset): idle workers block on it. */
  bullMarker: string;
  /** Fleet-wide totals since the queue was created (a hash): what `/metrics` reports. */
  stats: string;
  /** Deadlines of jobs not started yet (a zset: job id → deadline in ms), swept by every worker (SPEC §8). */
  deadlines: string;
  /**
   * Per-tenant counters (a hash, fields `{tenant}:{name}`; a tenant has no `:`): final
   * states (`completed`, `failed`, `cancelled`, `expired`), `open` jobs, and by UTC day
   * `mp:{YYYY-MM-DD}` and `cost:{YYYY-MM-DD}` (micro-USD).
   */
  tenantStats: string;
  /** Why the queue is paused (set once per pause, so `queue.paused` is emitted once). */
  pauseReason: string;
  /** The queue that delivers webhooks (its BullMQ name; it lives under the same prefix). */
  webhookQueueName: string;
  /** An OpenAI Batch API batch (a hash): status, timestamps, file ids, counts (SPEC §10). */
  openaiBatch(batchId: string): string;
  /** Job ids an OpenAI batch waits for that belong to an earlier batch (a set): a re-run file's unfinished lines. */
  openaiBatchForeign(batchId: string): string;
  /** Short lease held by the API process moving an OpenAI batch along. */
  openaiBatchLease(batchId: string): string;
  /** Every OpenAI batch by creation time (a zset), for `GET /openai/v1/batches`. */
  openaiBatches: string;
  /** OpenAI batches not in a final status yet (a set): what the sweeper looks at. */
  openaiBatchesOpen: string;
  /** BullMQ's wait list, prioritized zset, priority counter, events stream and job-hash base (fair-dispatch.lua releases jobs there). */
  bullWait: string;
  bullPrioritized: string;
  bullPriorityCounter: string;
  bullEvents: string;
  bullJobBase: string;
  /**
   * Fair share (shared/fair-share.ts). Priority levels with parked jobs (a zset, level →
   * level); per level `{fairBase}{level}:tenants` (zset tenant → pass), per tenant
   * `{fairBase}{level}:t:{tenant}:batches` (zset batch → pass) and per batch the FIFO list
   * `{fairBase}{level}:t:{tenant}:b:{batch}` of parked job ids (`-`: jobs without a batch).
   * fair-dispatch.lua builds these from `fairBase` (the functions below build the same).
   */
  fairLevels: string;
  /** Virtual times (a hash): field `{level}` the level's, `{level}:{tenant}` the tenant's own among its batches. */
  fairClock: string;
  fairBase: string;
  fairTenants(level: number): string;
  fairBatches(level: number, tenant: string): string;
  fairFlow(level: number, tenant: string, batchId: string): string;
  /** `{tenantBase}{tenant}:…`: a tenant's keys, built by the scripts from this base too. */
  tenantBase: string;
  /** A tenant's upstream calls in flight fleet-wide (a zset: op id → lease end in ms). */
  tenantCalls(tenant: string): string;
  /** A tenant's reported megapixels by UTC day (a hash: day number since the epoch → megapixels). */
  tenantMegapixels(tenant: string): string;
  /** A capped tenant's jobs released by the dispatcher and not yet begun (a zset: job id → release time). */
  tenantReleased(tenant: string): string;
}

export function redisKeys(prefix: string, queueName: string): RedisKeys {
  const bull = bullmqKeys(prefix, queueName);
  return {
    events: `${prefix}:events`,
    idRecord: (jobId) => `${prefix}:id:${jobId}`,
    idCalls: (jobId) => `${prefix}:id:${jobId}:calls`,
    batch: (batchId) => `${prefix}:batch:${batchId}`,
    batchJobs: (batchId) => `${prefix}:batch:${batchId}:jobs`,
    batchOpen: (batchId) => `${prefix}:batch:${batchId}:open`,
    batchLease: (batchId) => `${prefix}:batch:${batchId}:lease`,
    batchJobsSnapshot: (batchId, runId) => `${prefix}:batch:${batchId}:jobs-snapshot:${runId}`,
    batchesPending: `${prefix}:batches:pending`,
    webhookOutbox: `${prefix}:webhooks:outbox`,
    webhookRelaying: `${prefix}:webhooks:relaying`,
    webhookDead: `${prefix}:webhooks:dead`,
    webhookFailedGuard: (deliveryId) => `${prefix}:webhooks:failed:${deliveryId}`,
    bullJob: bull.job,
    bullFailed: bull.failed,
    bullActive: bull.active,
    bullDelayed: bull.delayed,
    limiter: bull.limiter,
    meta: bull.meta,
    stats: `${prefix}:stats`,
    deadlines: `${prefix}:deadlines`,
    tenantStats: `${prefix}:tenant-stats`,
    concurrency: `${prefix}:concurrency`,
    bullMarker: bull.marker,
    pauseReason: `${prefix}:pause-reason`,
    webhookQueueName: `${queueName}-webhooks`,
    openaiBatch: (batchId) => `${prefix}:openai:batch:${batchId}`,
    openaiBatchForeign: (batchId) => `${prefix}:openai:batch:${batchId}:foreign`,
    openaiBatchLease: (batchId) => `${prefix}:openai:batch:${batchId}:lease`,
    openaiBatches: `${prefix}:openai:batches`,
    openaiBatchesOpen: `${prefix}:openai:batches:open`,
    bullWait: bull.wait,
    bullPrioritized: bull.prioritized,
    bullPriorityCounter: bull.priorityCounter,
    bullEvents: bull.events,
    bullJobBase: bull.jobBase,
    fairLevels: `${prefix}:fair:levels`,
    fairClock: `${prefix}:fair:clock`,
    fairBase: `${prefix}:fair:`,
    fairTenants: (level) => `${prefix}:fair:${level}:tenants`,
    fairBatches: (level, tenant) => `${prefix}:fair:${level}:t:${tenant}:batches`,
    fairFlow: (level, tenant, batchId) => `${prefix}:fair:${level}:t:${tenant}:b:${batchId}`,
    tenantBase: `${prefix}:tenant:`,
    tenantCalls: (tenant) => `${prefix}:tenant:${tenant}:calls`,
    tenantMegapixels: (tenant) => `${prefix}:tenant:${tenant}:mp`,
    tenantReleased: (tenant) => `${prefix}:tenant:${tenant}:released`,
  };
}

export type ImageExt = 'png' | 'jpg' | 'webp';

export interface ImageKeyParts {
  keyPrefix: string;
  jobId: string;
  batchId?: string | undefined;
  /** The request's `output.keyPrefix`, which replaces `{S3_KEY_PREFIX}/{batch}`. */
  outputKeyPrefix?: string | undefined;
}

/**
 * The folder of a job's images: `{S3_KEY_PREFIX}/{B}/{J}`, `{S3_KEY_PREFIX}/{J}` without
 * a batch, or `{P}/{J}` with `output.keyPrefix = P`. Always without a trailing slash.
 */
export function jobImageFolder(p: ImageKeyParts): string {
  if (p.outputKeyPrefix) return `${p.outputKeyPrefix}/${p.jobId}`;
  if (p.batchId) return `${p.keyPrefix}/${p.batchId}/${p.jobId}`;
  return `${p.keyPrefix}/${p.jobId}`;
}

/** Image `index` (0-based, in `data[]` order) of a job. */
export function imageKey(folder: string, index: number, ext: ImageExt): string {
  return `${folder}/${index}.${ext}`;
}

/** Where a finished batch's manifest lands. */
export function manifestKey(keyPrefix: string, batchId: string): string {
  return `${keyPrefix}/${batchId}/manifest.jsonl`;
}

/** An OpenAI Batch API file (an uploaded input, or a batch's output or error file). */
export function openaiFileKey(keyPrefix: string, fileId: string): string {
  return `${keyPrefix}/files/${fileId}`;
}

/** Content-addressed store for inline input images: one object per distinct content. */
export function inputImageKey(keyPrefix: string, sha256Hex: string, ext: ImageExt): string {
  return `${keyPrefix}/inputs/${sha256Hex}.${ext}`;
}
