import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { Job, Queue } from 'bullmq';
import type { Config } from '../shared/config.js';
import { envelopeInputs, generationParams, parseEnvelope, type Envelope } from '../shared/envelope.js';
import { InputError, QueueUnavailableError, ValidationError, type FieldProblem } from '../shared/errors.js';
import type { JobData } from '../shared/job-data.js';
import { generationJobOptions } from '../shared/job-options.js';
import { JobRecords } from '../shared/job-record.js';
import { redisKeys, type RedisKeys } from '../shared/keys.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { createRedis, describeRedis, waitForRedis, type RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { createS3Client } from '../shared/s3.js';
import type { InputImageField } from '../shared/upstream.js';
import { checkImageBytes, decodeInlineImage, inputForm, parseS3Ref, storeInputImage, type InputStoreDeps } from './inputs.js';
import type { QueueControlDeps } from '../shared/queue-control.js';
import { getBatchStatus, type BatchStatus } from './batch-status.js';
import { FINAL_STATES, getJobStatus, type JobState, type JobStatus } from './job-status.js';

/** BullMQ job name of every generation job. */
export const JOB_NAME = 'generate';
/** `addBulk` chunk: BullMQ sends a bulk as one pipeline; big ones stall Redis (#1670). */
export const BULK_CHUNK = 500;

export interface ProducerOptions {
  config: Config;
  /** A producer-role connection (no offline queue). Created, and then owned, when absent. */
  redis?: RedisClient;
  /** For storing inline input images; created on first need when absent. */
  s3?: S3Client;
  logger?: Logger;
}

export interface EnqueueOptions {
  /** Batch of every request that names none. */
  batch?: string;
  /** BullMQ priority (1 highest). */
  priority?: number;
  /**
   * CLI only: read an input value that is a local file path. Returns the bytes, or
   * undefined when the value does not name a file.
   */
  readLocalInput?: (field: InputImageField, value: string) => Promise<Buffer | undefined>;
}

export type EnqueueStatus = 'created' | 'exists' | 'retried';

export interface EnqueueOutcome {
  id: string;
  status: EnqueueStatus;
  batchId?: string;
}

export interface BulkEnqueueResult {
  outcomes: EnqueueOutcome[];
  created: number;
  existing: number;
  retried: number;
}

/** Validation of a bulk: one entry per bad item, nothing enqueued. */
export class BulkValidationError extends ValidationError {
  readonly items: { index: number; details: FieldProblem[] }[];

  constructor(items: { index: number; details: FieldProblem[] }[]) {
    super(
      items.flatMap((it) => it.details.map((d) => ({ path: d.path ? `${it.index}.${d.path}` : String(it.index), message: d.message }))),
      `${items.length} invalid request(s); nothing was enqueued`,
    );
    this.items = items;
  }
}

export interface Producer {
  readonly queue: Queue<JobData, JobResult>;
  readonly redis: RedisClient;
  readonly control: QueueControlDeps;
  readonly keys: RedisKeys;
  readonly records: JobRecords;
  /** Enqueue one request (SPEC §2). The same `id` twice is one job. */
  enqueue(request: unknown, opts?: EnqueueOptions): Promise<EnqueueOutcome>;
  /** Validate every request first, then enqueue in chunks; all-or-nothing on validation. */
  enqueueBulk(requests: readonly unknown[], opts?: EnqueueOptions): Promise<BulkEnqueueResult>;
  getJob(id: string): Promise<JobStatus | undefined>;
  getBatch(id: string): Promise<BatchStatus | undefined>;
  /** Poll until the job is completed, failed or cancelled. */
  waitFor(id: string, opts?: { timeoutMs?: number; pollMs?: number }): Promise<JobStatus>;
  close(): Promise<void>;
}

interface Prepared {
  id: string;
  batchId: string | undefined;
  data: JobData;
}

function isConnectionError(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return /enableOfflineQueue|Connection is closed|ECONNREFUSED|ETIMEDOUT|ECONNRESET|EPIPE|max retries|Stream isn't writeable/i.test(m);
}

/**
 * Validate requests without touching Redis or S3: every bad field of every item, and
 * ids used twice. Pure; the CLI uses it to report all lines before enqueueing any.
 */
export function validateRequests(requests: readonly unknown[]): { envelopes: (Envelope | undefined)[]; problems: { index: number; details: FieldProblem[] }[] } {
  const problems: { index: number; details: FieldProblem[] }[] = [];
  const envelopes: (Envelope | undefined)[] = requests.map((req, index) => {
    try {
      return parseEnvelope(req);
    } catch (err) {
      if (err instanceof ValidationError) problems.push({ index, details: err.details });
      else throw err;
      return undefined;
    }
  });
  const seen = new Map<string, number>();
  envelopes.forEach((env, index) => {
    if (!env?.id) return;
    const first = seen.get(env.id);
    if (first !== undefined) problems.push({ index, details: [{ path: 'id', message: `"${env.id}" is used twice (first at item ${first})` }] });
    else seen.set(env.id, index);
  });
  problems.sort((a, b) => a.index - b.index);
  return { envelopes, problems };
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
  const queue = new Queue<JobData, JobResult>(config.queue.name, { connection: redis, prefix: config.queue.prefix });
  queue.on('error', (err) => log.debug({ err: err.message }, 'queue error'));
  let s3 = opts.s3;
  const ownsS3 = s3 === undefined;
  const inputStore = (): InputStoreDeps => {
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

  /** Inline inputs → S3 references; s3:// and https:// references are kept. */
  async function prepareInputs(env: Envelope, o: EnqueueOptions, known: Set<string>): Promise<JobData['inputs']> {
    const inputs = envelopeInputs(env);
    const out: Partial<Record<InputImageField, string>> = {};
    for (const [field, value] of Object.entries(inputs) as [InputImageField, string][]) {
      const form = inputForm(value);
      if (form === 's3') {
        if (!parseS3Ref(value)) throw new InputError(field, 'must be s3://bucket/key');
        out[field] = value;
      } else if (form === 'https') {
        try {
          new URL(value);
        } catch {
          throw new InputError(field, 'is not a valid https:// URL');
        }
        out[field] = value;
      } else if (form === 'data-url' || form === 'base64') {
        const bytes = decodeInlineImage(field, value, config.inputs.maxBytes);
        out[field] = await storeInputImage(inputStore(), field, bytes, known);
      } else {
        const bytes = o.readLocalInput ? await o.readLocalInput(field, value) : undefined;
        if (!bytes) {
          throw new InputError(field, `must be base64, a data:image/…;base64, URL, s3://bucket/key or an https:// URL${o.readLocalInput ? ', or an existing file' : ''}`);
        }
        out[field] = await storeInputImage(inputStore(), field, checkImageBytes(field, bytes, config.inputs.maxBytes), known);
      }
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }

  function toJobData(env: Envelope, batchId: string | undefined, inputs: JobData['inputs']): JobData {
    const data: JobData = { v: 1, params: generationParams(env) };
    if (inputs) data.inputs = inputs;
    if (batchId) data.batch = batchId;
    if (env.metadata) data.metadata = env.metadata;
    if (env.model) data.model = env.model;
    if (env.output?.keyPrefix) data.outputKeyPrefix = env.output.keyPrefix;
    if (env.webhook_url && env.webhook_secret) data.webhook = { url: env.webhook_url, secret: env.webhook_secret };
    return data;
  }

  /** Validate all, then store inputs; any problem → BulkValidationError, nothing enqueued. */
  async function prepareAll(requests: readonly unknown[], o: EnqueueOptions): Promise<Prepared[]> {
    const { envelopes, problems: bad } = validateRequests(requests);
    if (bad.length > 0) throw new BulkValidationError(bad);

    const known = new Set<string>();
    const prepared: Prepared[] = [];
    for (const [index, env] of (envelopes as Envelope[]).entries()) {
      const batchId = env.batch ?? o.batch;
      try {
        const inputs = await prepareInputs(env, o, known);
        prepared.push({ id: env.id ?? randomUUID(), batchId, data: toJobData(env, batchId, inputs) });
      } catch (err) {
        if (err instanceof InputError) bad.push({ index, details: [{ path: err.field, message: err.message.slice(err.field.length + 2) }] });
        else throw err;
      }
    }
    if (bad.length > 0) throw new BulkValidationError(bad);
    return prepared;
  }

  /** Enqueue one chunk, idempotently (SPEC §7 Ids). */
  async function enqueueChunk(items: Prepared[], o: EnqueueOptions): Promise<EnqueueOutcome[]> {
    const check = redis.pipeline();
    for (const it of items) {
      check.hmget(keys.idRecord(it.id), 'state', 'final', 'gen');
      check.exists(keys.bullJob(it.id));
      check.zscore(keys.bullFailed, it.id);
    }
    const replies = (await check.exec()) ?? [];
    const at = (i: number) => {
      const [err, value] = replies[i] ?? [null, null];
      if (err) throw err;
      return value;
    };

    const outcomes: EnqueueOutcome[] = [];
    const toAdd: Prepared[] = [];
    const toRetry: Prepared[] = [];
    const toReopen: Prepared[] = [];
    items.forEach((it, n) => {
      const [state, final, gen] = at(n * 3) as (string | null)[];
      const recordFinal = state !== null && final !== null && final === (gen ?? '1') ? state : undefined;
      const jobExists = at(n * 3 + 1) === 1;
      const inFailed = at(n * 3 + 2) !== null;
      const outcome = (status: EnqueueStatus): EnqueueOutcome => ({ id: it.id, status, ...(it.batchId ? { batchId: it.batchId } : {}) });
      if (recordFinal === 'completed') outcomes.push(outcome('exists'));
      else if (jobExists && inFailed) {
        toRetry.push(it);
        outcomes.push(outcome('retried'));
      } else if (jobExists) outcomes.push(outcome('exists'));
      else if (recordFinal === 'failed' || recordFinal === 'cancelled') {
        toReopen.push(it);
        toAdd.push(it);
        outcomes.push(outcome('retried'));
      } else {
        toAdd.push(it);
        outcomes.push(outcome('created'));
      }
    });

    for (const it of [...toReopen, ...toRetry]) await records.reopen(it.id);
    if (toAdd.length > 0) {
      const reg = redis.pipeline();
      const now = Date.now();
      for (const it of toAdd) {
        records.register(reg, it.id, it.batchId, now);
        if (it.batchId) reg.sadd(keys.batchJobs(it.batchId), it.id);
      }
      await reg.exec();
      await queue.addBulk(toAdd.map((it) => ({ name: JOB_NAME, data: it.data, opts: generationJobOptions(config, it.id, o.priority) })));
    }
    for (const it of toRetry) {
      const job = await Job.fromId<JobData, JobResult>(queue, it.id);
      if (!job) continue;
      await job.updateData(it.data);
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      log.info({ jobId: it.id }, 'failed job enqueued again: retrying it with fresh attempts');
    }
    return outcomes;
  }

  async function enqueueBulk(requests: readonly unknown[], o: EnqueueOptions = {}): Promise<BulkEnqueueResult> {
    const prepared = await prepareAll(requests, o);
    return connected(async () => {
      const outcomes: EnqueueOutcome[] = [];
      for (let i = 0; i < prepared.length; i += BULK_CHUNK) {
        outcomes.push(...(await enqueueChunk(prepared.slice(i, i + BULK_CHUNK), o)));
      }
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
  const prices = { firstMpUsd: config.budget.priceFirstMpUsd, extraMpUsd: config.budget.priceExtraMpUsd };
  const getBatch = (id: string) => connected(() => getBatchStatus({ queue, redis, records, keys, prices }, id));
  const control: QueueControlDeps = { queue, redis, keys, eventsMaxLen: config.events.maxLen };

  async function waitFor(id: string, w: { timeoutMs?: number; pollMs?: number } = {}): Promise<JobStatus> {
    const deadline = Date.now() + (w.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const status = await getJob(id);
      if (status && FINAL_STATES.has(status.state as JobState)) return status;
      if (Date.now() > deadline) throw new Error(`job ${id} is still ${status?.state ?? 'unknown'} after ${w.timeoutMs ?? 600_000} ms`);
      await new Promise((r) => setTimeout(r, w.pollMs ?? 250));
    }
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await queue.close().catch(() => undefined);
      if (ownsRedis) redis.disconnect();
      if (ownsS3) s3?.destroy();
    })());

  return { queue, redis, control, keys, records, enqueue, enqueueBulk, getJob, getBatch, waitFor, close };
}
