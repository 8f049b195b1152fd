import type { S3Client } from '@aws-sdk/client-s3';
import { Queue, type Telemetry } from 'bullmq';
import { BatchStore, type BatchOptions } from '../shared/batch-store.js';
import type { Config } from '../shared/config.js';
import { QueueUnavailableError, ValidationError } from '../shared/errors.js';
import { TENANT_RE, TENANT_RULE, batchIdProblem, jobIdProblem } from '../shared/ids.js';
import { deadlineProblem } from '../shared/deadline.js';
import type { JobData } from '../shared/job-data.js';
import { JobRecords } from '../shared/job-record.js';
import { redisKeys, type RedisKeys } from '../shared/keys.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import type { QueueControlDeps } from '../shared/queue-control.js';
import { createRedis, describeRedis, waitForRedis, type RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { createS3Client } from '../shared/s3.js';
import type { InputImageField } from '../shared/upstream.js';
import { getBatchStatus, type BatchStatus } from './batch-status.js';
import { cancelBatch, cancelJob, type CancelOutcome } from './cancel.js';
import { enqueuePrepared, type EnqueueOutcome, type EnqueueStatus } from './enqueue-idempotent.js';
import { readEvents, type ReadEvent, type ReadEventsOptions } from './events-reader.js';
import { FINAL_STATES, getJobStatus, type JobState, type JobStatus } from './job-status.js';
import { prepareRequests, refuseWebhookUrl } from './prepare.js';
import { BulkValidationError } from './validate.js';

export { BULK_CHUNK, JOB_NAME, type EnqueueOutcome, type EnqueueStatus } from './enqueue-idempotent.js';
export { BulkValidationError, validateRequests } from './validate.js';

export interface ProducerOptions {
  config: Config;
  /** A producer-role connection (no offline queue). Created, and then owned, when absent. */
  redis?: RedisClient;
  /** For storing inline input images; created on first need when absent. */
  s3?: S3Client;
  logger?: Logger;
  /**
   * BullMQ's telemetry for the queue (e.g. `new BullMQOtel({ tracerName: 'fluxq' })` from bullmq-otel),
   * for BullMQ's own spans. fluxq's `fluxq.enqueue` spans and the context each job
   * carries come from the OpenTelemetry API whether or not this is set.
   */
  telemetry?: Telemetry;
}

export interface EnqueueOptions {
  /** Batch of every request that names none. */
  batch?: string;
  /** BullMQ priority (1 highest). */
  priority?: number;
  /** Tenant of every request that names none (SPEC §8; default `default`). */
  tenant?: string;
  /** Deadline (RFC 3339) of every request that names none (SPEC §8). */
  deadline?: string;
  /** Budget of `batch` (megapixels in + out as reported): no upstream call once reached. */
  maxMegapixels?: number;
  /** Webhook of `batch`: receives batch.completed. */
  batchWebhook?: { url: string; secret: string };
  /** CLI only: the bytes of an input value that names a local file, or undefined. */
  readLocalInput?: (field: InputImageField, value: string) => Promise<Buffer | undefined>;
  /** CLI only: whether a value names an existing local file (checked during validation). */
  localFile?: (value: string) => boolean;
}

export interface BulkEnqueueResult {
  outcomes: EnqueueOutcome[];
  created: number;
  existing: number;
  retried: number;
}

export interface Producer {
  readonly queue: Queue<JobData, JobResult>;
  readonly redis: RedisClient;
  readonly control: QueueControlDeps;
  readonly keys: RedisKeys;
  readonly records: JobRecords;
  readonly batches: BatchStore;
  /** Enqueue one request (SPEC §2). The same `id` twice is one job. */
  enqueue(request: unknown, opts?: EnqueueOptions): Promise<EnqueueOutcome>;
  /** Validate every request first, then enqueue in chunks; all-or-nothing on validation. */
  enqueueBulk(requests: readonly unknown[], opts?: EnqueueOptions): Promise<BulkEnqueueResult>;
  getJob(id: string): Promise<JobStatus | undefined>;
  getBatch(id: string): Promise<BatchStatus | undefined>;
  /** Poll until the job is completed, failed or cancelled. */
  waitFor(id: string, opts?: { timeoutMs?: number; pollMs?: number }): Promise<JobStatus>;
  /**
   * Poll (O(1) a poll) until every job of the batch is final; `onProgress` sees the
   * status as it changes, read at most once per `progressMs` (default 2000).
   */
  waitForBatch(id: string, opts?: { timeoutMs?: number; pollMs?: number; progressMs?: number; onProgress?: (b: BatchStatus) => void }): Promise<BatchStatus>;
  /** Cancel a job that has not started. */
  cancelJob(id: string): Promise<CancelOutcome>;
  /** Cancel every job of a batch that has not started; undefined when the batch is unknown. */
  cancelBatch(id: string): Promise<{ cancelled: number; active: number; open: number } | undefined>;
  /** The events stream through a consumer group, as an async iterator (resumes after a restart). */
  events(opts: ReadEventsOptions): AsyncGenerator<ReadEvent, void, undefined>;
  close(): Promise<void>;
}

function isConnectionError(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return /enableOfflineQueue|Connection is closed|ECONNREFUSED|ETIMEDOUT|ECONNRESET|EPIPE|max retries|Stream isn't writeable/i.test(m);
}

export function createProducer(opts: ProducerOptions): Producer {
  const { config } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'producer' });
  const ownsRedis = opts.redis === undefined;
  const redis = opts.redis ?? createRedis(config, { role: 'producer', connectionName: 'fluxq-producer' });
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  const where = describeRedis(config);
  const keys = redisKeys(config.queue.prefix, config.queue.name);
  const records = new JobRecords(redis, keys, { ttlS: config.idempotencyTtlS, eventsMaxLen: config.events.maxLen });
  const batches = new BatchStore(redis, keys, { eventsMaxLen: config.events.maxLen });
  const queue = new Queue<JobData, JobResult>(config.queue.name, { connection: redis, prefix: config.queue.prefix, ...(opts.telemetry ? { telemetry: opts.telemetry } : {}) });
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  const control: QueueControlDeps = { queue, redis, keys, eventsMaxLen: config.events.maxLen };
  let s3 = opts.s3;
  const ownsS3 = s3 === undefined;
  const inputStore = () => {
    if (!s3 && config.s3.bucket) s3 = createS3Client(config);
    return { s3, bucket: config.s3.bucket, keyPrefix: config.s3.keyPrefix, maxBytes: config.inputs.maxBytes };
  };

  async function connected<T>(fn: () => Promise<T>): Promise<T> {
    await waitForRedis(redis, where);
    try {
      return await fn();
    } catch (err) {
      if (isConnectionError(err)) {
        throw new QueueUnavailableError(`Redis at ${where} is unreachable (${(err as Error).message}); the enqueue did not complete. Retry with the same ids: nothing is enqueued twice.`, { cause: err });
      }
      throw err;
    }
  }

  async function enqueueBulk(requests: readonly unknown[], o: EnqueueOptions = {}): Promise<BulkEnqueueResult> {
    const badBatch = o.batch === undefined ? undefined : batchIdProblem(o.batch);
    if (badBatch) throw new ValidationError([{ path: 'batch', message: badBatch }]);
    if (o.batchWebhook) {
      const why = refuseWebhookUrl(o.batchWebhook.url, config);
      if (why) throw new ValidationError([{ path: 'webhook_url', message: `refused: ${why}` }]);
    }
    const badTenant = o.tenant === undefined || TENANT_RE.test(o.tenant) ? undefined : TENANT_RULE;
    if (badTenant) throw new ValidationError([{ path: 'tenant', message: badTenant }]);
    const badDeadline = o.deadline === undefined ? undefined : deadlineProblem(o.deadline);
    if (badDeadline) throw new ValidationError([{ path: 'deadline', message: badDeadline }]);
    const prepared = await prepareRequests(requests, { config, inputStore, batch: o.batch, tenant: o.tenant, deadline: o.deadline, readLocalInput: o.readLocalInput, localFile: o.localFile });
    const batchOptions: BatchOptions = {};
    if (o.maxMegapixels !== undefined) batchOptions.maxMegapixels = o.maxMegapixels;
    if (o.batchWebhook) batchOptions.webhook = o.batchWebhook;
    if (o.tenant) batchOptions.tenant = o.tenant;
    return connected(async () => {
      const outcomes = await enqueuePrepared({ config, redis, keys, records, batches, queue, log }, prepared, { priority: o.priority, batch: o.batch, batchOptions });
      const count = (s: EnqueueStatus) => outcomes.filter((x) => x.status === s).length;
      return { outcomes, created: count('created'), existing: count('exists'), retried: count('retried') };
    });
  }

  async function enqueue(request: unknown, o: EnqueueOptions = {}): Promise<EnqueueOutcome> {
    try {
      const result = await enqueueBulk([request], o);
      return result.outcomes[0] as EnqueueOutcome;
    } catch (err) {
      if (err instanceof BulkValidationError) throw new ValidationError(err.items[0]?.details ?? []);
      throw err;
    }
  }

  const getJob = (id: string) => connected(() => getJobStatus({ queue, records }, id));
  const getBatch = (id: string) => connected(() => getBatchStatus({ batches, queue }, id));

  async function poll<T>(read: () => Promise<T>, done: (v: T) => boolean, w: { timeoutMs?: number; pollMs?: number }, what: string, onEach?: (v: T) => void): Promise<T> {
    const timeoutMs = w.timeoutMs ?? 24 * 3600_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await read();
      onEach?.(v);
      if (done(v)) return v;
      if (Date.now() > deadline) throw new Error(`${what} is not finished after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, w.pollMs ?? 250));
    }
  }

  const waitFor = async (id: string, w: { timeoutMs?: number; pollMs?: number } = {}) => {
    // No job can have such an id: waiting for one would only hang.
    const badId = jobIdProblem(id);
    if (badId) throw new ValidationError([{ path: 'id', message: badId }]);
    return poll(() => getJob(id), (s) => s !== undefined && FINAL_STATES.has(s.state as JobState), { timeoutMs: 10 * 60_000, ...w }, `job ${id}`) as Promise<JobStatus>;
  };

  /**
   * O(1) a poll: the batch hash and the size of its open set say whether it is done and
   * whether a job finished. The full status (its waiting/active/delayed counts cost a
   * read per open job) is read when the batch is done, and for `onProgress` when a job
   * finished or the queue moved otherwise, at most once per `progressMs`.
   */
  const waitForBatch = (id: string, w: { timeoutMs?: number; pollMs?: number; progressMs?: number; onProgress?: (b: BatchStatus) => void } = {}) => {
    let last = '';
    let probeAtFull = '';
    let lastFull = 0;
    const progressMs = Math.max(w.progressMs ?? 2000, w.pollMs ?? 250);
    const probe = () =>
      connected(async () => {
        const [rec, open] = await Promise.all([batches.get(id), redis.scard(keys.batchOpen(id))]);
        return rec ? { done: open === 0 && rec.total > 0, key: JSON.stringify([rec, open]) } : undefined;
      });
    const read = async (): Promise<BatchStatus | undefined | 'running'> => {
      const p = await probe();
      if (!p) return undefined;
      // A job finished since the last full read, or (waiting → active moves leave no trace
      // in the probe) twice the interval passed.
      const since = Date.now() - lastFull;
      const due = w.onProgress !== undefined && since >= progressMs && (p.key !== probeAtFull || since >= 2 * progressMs);
      if (!p.done && !due) return 'running';
      lastFull = Date.now();
      probeAtFull = p.key;
      return getBatch(id);
    };
    return poll(
      read,
      (b) => b !== 'running' && b?.state === 'completed',
      w,
      `batch ${id}`,
      (b) => {
        if (b === 'running') return;
        const key = JSON.stringify(b);
        if (b && key !== last) w.onProgress?.(b);
        last = key;
      },
    ) as Promise<BatchStatus>;
  };

  const cancelDeps = { queue, records, batches, keys };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await queue.close().catch(() => undefined);
      if (ownsRedis) redis.disconnect();
      if (ownsS3) s3?.destroy();
    })());

  return {
    queue,
    redis,
    control,
    keys,
    records,
    batches,
    enqueue,
    enqueueBulk,
    getJob,
    getBatch,
    waitFor,
    waitForBatch,
    cancelJob: (id) => connected(() => cancelJob(cancelDeps, id)),
    cancelBatch: (id) => connected(() => cancelBatch(cancelDeps, id)),
    events: (o) => readEvents(redis, keys.events, o),
    close,
  };
}
