import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { MetricsTime, Queue, Worker, type Job, type JobJson } from 'bullmq';
import type { Config } from '../shared/config.js';
import { EVENT } from '../shared/events.js';
import type { JobData } from '../shared/job-data.js';
import { BatchStore } from '../shared/batch-store.js';
import { JobRecords, type FinalizeOutcome } from '../shared/job-record.js';
import { redisKeys } from '../shared/keys.js';
import { assertNoEviction } from '../shared/redis-policy.js';
import type { Logger } from '../shared/logger.js';
import type { RedisClient } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { allowedInputBuckets } from '../shared/s3-ref.js';
import type { HostResolver } from '../shared/address-policy.js';
import type { FluxClient } from './flux-client.js';
import { createProcessor, type CallTestHooks, type ProcessorDeps } from './process-job.js';
import { AdaptiveConcurrency } from './adaptive-concurrency.js';
import { BatchCompleter } from './batch-completion.js';
import { createUrlInputFetcher } from './fetch-input-url.js';
import { Spool } from './spool.js';
import type { WorkerMetrics } from './metrics.js';
import { WebhookService } from './webhooks.js';

/** BullMQ's limiter max when RATE_LIMIT_MAX is unset: a limiter must exist for 429 back-off to hold. */
export const UNLIMITED_STARTS = 1_000_000;

export interface WorkerHooks {
  onRateLimited?: (retryAfterMs: number) => void;
  onStored?: (bytes: number) => void;
  onCompleted?: (result: JobResult, jobId: string) => void;
  onFinalFailure?: (jobId: string, reason: string) => void;
}

export interface CreateWorkerOptions {
  config: Config;
  /** A worker-role connection (maxRetriesPerRequest: null); the caller closes it. */
  redis: RedisClient;
  s3: S3Client;
  flux: FluxClient;
  logger: Logger;
  hooks?: WorkerHooks;
  /** Start fetching jobs at once (default true). */
  autorun?: boolean;
  /** How often to look for batches that owe batch.completed (ms, default 5000). */
  sweepMs?: number;
  /** DNS for webhook hosts (default: the system's; tests inject one). */
  resolver?: HostResolver;
  /** This process's Prometheus figures (WORKER_METRICS_PORT). */
  metrics?: WorkerMetrics;
  /** An extra CA for https input URLs (tests; production uses the system store or NODE_EXTRA_CA_CERTS). */
  tlsCa?: string | Buffer;
  /** Tests only: hold runs around their call start (never set in production). */
  testHooks?: CallTestHooks;
}

export interface FluxqWorker {
  readonly worker: Worker<JobData, JobResult>;
  readonly queue: Queue<JobData, JobResult>;
  /** Resolves once the worker is connected and its queue settings are applied. */
  ready: Promise<void>;
  /**
   * Stop taking jobs, let in-flight ones finish until SHUTDOWN_TIMEOUT_MS, then cut
   * the rest off (they go back to the queue with their checkpoint). Idempotent.
   */
  close(): Promise<void>;
}

/** BullMQ parses job data itself; data that is not JSON must fail the job, not the worker. */
class FluxqBullWorker extends Worker<JobData, JobResult> {
  protected override createJob(data: JobJson, jobId: string): Job<JobData, JobResult> {
    try {
      return super.createJob(data, jobId);
    } catch (err) {
      const job = super.createJob({ ...data, data: '{}' }, jobId);
      (job as Job & { fluxqPoison?: string }).fluxqPoison = `job data is not valid JSON (${(err as Error).message}); it was not written by fluxq`;
      return job;
    }
  }
}

async function applyQueueSettings(queue: Queue, config: Config, adaptive: AdaptiveConcurrency | undefined): Promise<void> {
  const g = config.worker.globalConcurrency;
  if (typeof g === 'number') await queue.setGlobalConcurrency(g);
  else if (adaptive) await adaptive.start();
  else await queue.removeGlobalConcurrency();
}

/** Build a generation worker from its configuration and clients (no globals, no signals). */
export function createWorker(opts: CreateWorkerOptions): FluxqWorker {
  const { config, redis, s3, flux, logger } = opts;
  const log = logger.child({ component: 'worker' });
  const keys = redisKeys(config.queue.prefix, config.queue.name);
  const records = new JobRecords(redis, keys, { ttlS: config.idempotencyTtlS, eventsMaxLen: config.events.maxLen });
  const queue = new Queue<JobData, JobResult>(config.queue.name, { connection: redis, prefix: config.queue.prefix });
  queue.on('error', (err) => log.error({ err }, 'queue connection error'));
  const limiterMax = config.worker.rateLimit?.max ?? UNLIMITED_STARTS;
  const spool = new Spool(config.worker.spoolDir ?? join(tmpdir(), 'fluxq-spool'), config.worker.spoolMaxBytes, log);
  const batches = new BatchStore(redis, keys, { eventsMaxLen: config.events.maxLen });
  const completer = new BatchCompleter({ batches, records, s3, bucket: config.s3.bucket ?? '', keyPrefix: config.s3.keyPrefix, log, sweepMs: opts.sweepMs });
  const webhooks = new WebhookService({ config, redis, keys, log, resolver: opts.resolver });
  const urlInputs = createUrlInputFetcher({
    allowPrivate: config.inputs.allowPrivateUrls,
    timeoutMs: config.inputs.urlTimeoutMs,
    maxBytes: config.inputs.maxBytes,
    ca: opts.tlsCa,
    resolver: opts.resolver,
  });
  /** A job became final: queue its webhook now, and finish its batch when it was the last. */
  const onFinalized = (fin: FinalizeOutcome, batchId: string | undefined) => {
    if (fin.eventId) webhooks.kick();
    if (fin.batchFinished && batchId) void completer.complete(batchId).then(() => webhooks.kick());
  };

  const m = opts.metrics;
  const hooks = opts.hooks ?? {};
  const adaptive =
    config.worker.globalConcurrency === 'auto'
      ? new AdaptiveConcurrency(
          redis,
          keys,
          { min: config.worker.autoConcurrencyMin, max: config.worker.autoConcurrencyMax, probeRounds: config.worker.autoProbeRounds },
          log,
          (limit) => m?.globalConcurrency.set(limit),
        )
      : undefined;
  const feed = (outcome: 'ok' | '429', retryAfterMs?: number) =>
    void adaptive?.observe(outcome, retryAfterMs).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'adaptive concurrency update failed'));
  flux.observe((o) => {
    m?.observeUpstream(o);
    if (o.status === 200 && o.kind === undefined) feed('ok');
  });
  if (m) {
    m.concurrency.set(config.worker.concurrency);
    m.globalConcurrency.set(typeof config.worker.globalConcurrency === 'number' ? config.worker.globalConcurrency : 0);
  }
  const deps: ProcessorDeps = {
    config,
    s3,
    flux,
    records,
    spool,
    queue,
    prices: { firstMpUsd: config.budget.priceFirstMpUsd, extraMpUsd: config.budget.priceExtraMpUsd },
    onFinalized,
    log,
    control: { queue, redis, keys, eventsMaxLen: config.events.maxLen },
    inputs: { s3, maxBytes: config.inputs.maxBytes, allowedBuckets: allowedInputBuckets(config) ?? [], fetchUrl: (field, url, signal) => urlInputs.fetch(field, url, signal) },
    limiterMax,
    uploadRetryWindowMs: config.worker.uploadRetryWindowMs,
    ...(opts.testHooks ? { testHooks: opts.testHooks } : {}),
    onRateLimited: (ms) => {
      m?.rateLimited.inc();
      feed('429', ms);
      hooks.onRateLimited?.(ms);
    },
    onStored: (bytes) => {
      m?.bytesUploaded.inc(bytes);
      hooks.onStored?.(bytes);
    },
    onCompleted: (result, jobId) => {
      m?.jobsCompleted.inc();
      hooks.onCompleted?.(result, jobId);
    },
    onFinalFailure: (jobId, reason) => {
      m?.jobsFailed.inc();
      hooks.onFinalFailure?.(jobId, reason);
    },
    onRetry: () => {
      m?.jobsRetried.inc();
      void redis.hincrby(keys.stats, 'retried', 1).catch(() => undefined);
    },
  };

  const worker = new FluxqBullWorker(config.queue.name, createProcessor(deps), {
    connection: redis,
    prefix: config.queue.prefix,
    concurrency: config.worker.concurrency,
    autorun: false,
    // Always a limiter: BullMQ honours a queue.rateLimit() window only when one is set.
    limiter: { max: limiterMax, duration: config.worker.rateLimit?.durationMs ?? 1000 },
    // Minutes-long calls: the lock is renewed every lockDuration/2 while the process
    // lives, so lockDuration bounds how long a dead worker's jobs wait to be picked up.
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    // A stalled re-run is counted as possibly billed by the ledger, which also bounds it.
    maxStalledCount: 1 + config.worker.maxAmbiguousRetries + 2,
    // 429s and pauses put a job back without an attempt; this ends a job that loops forever.
    maxStartedAttempts: 1000,
    // Set on the Worker, not per job (per-job options are copied into every job hash, #2625).
    removeOnComplete: config.worker.keepCompleted,
    removeOnFail: config.worker.keepFailed,
    metrics: { maxDataPoints: MetricsTime.ONE_WEEK * 2 },
  });

  worker.on('error', (err) => log.error({ err }, 'worker error'));
  worker.on('stalled', (jobId) => log.warn({ jobId }, 'job stalled (its worker died or was blocked); it will run again'));
  // BullMQ can fail a job without our processor (stall limit, maxStartedAttempts,
  // unparseable data): record it and emit job.failed there too. finalize() is
  // idempotent, so a job the processor already recorded is left alone.
  worker.on('failed', (job, err) => {
    if (!job?.id || !job.finishedOn) return;
    const jobId = job.id;
    records
      .get(jobId)
      .then(async (rec) => {
        if (rec?.state) return;
        const reason = err.message.includes(':') ? err.message : `internal: ${err.message}`;
        const data = job.data as Partial<JobData> | undefined;
        const batchId = rec?.batchId ?? data?.batch;
        const fin = await records.finalize(jobId, {
          state: 'failed',
          batchId,
          webhook: data?.webhook,
          error: reason,
          event: {
            type: EVENT.jobFailed,
            data: { jobId, ...(batchId ? { batchId } : {}), error: reason, attempts: rec?.attempts ?? 0, possibly_billed: rec?.possiblyBilled ?? 0 },
          },
        });
        if (fin.recorded) onFinalized(fin, batchId);
        deps.onFinalFailure?.(jobId, reason);
      })
      .catch((e: unknown) => log.error({ err: e, jobId }, 'could not record a failure'));
  });

  const ready = (async () => {
    await worker.waitUntilReady();
    await assertNoEviction(redis, log);
    await applyQueueSettings(queue, config, adaptive);
    if (opts.autorun !== false) {
      void worker.run().catch((err: unknown) => log.error({ err }, 'worker stopped'));
      webhooks.start();
      completer.start();
    }
    log.info(
      {
        queue: config.queue.name,
        prefix: config.queue.prefix,
        concurrency: config.worker.concurrency,
        globalConcurrency: config.worker.globalConcurrency ?? null,
        rateLimit: config.worker.rateLimit ?? null,
        upstream: flux.urlFor(config.flux.model),
      },
      'worker ready',
    );
  })();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await ready.catch(() => undefined);
      const deadlineMs = config.worker.shutdownTimeoutMs;
      log.info({ inFlight: (worker as unknown as { lockManager?: { getActiveJobCount(): number } }).lockManager?.getActiveJobCount() ?? null, deadlineMs }, 'shutting down: no new jobs, finishing in-flight ones');
      const graceful = worker.close();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), deadlineMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        log.warn('shutdown deadline reached: cutting off in-flight jobs; they go back to the queue');
        worker.cancelAllJobs('shutdown deadline');
        await Promise.race([graceful, new Promise((r) => setTimeout(r, 10_000))]);
        await worker.close(true).catch(() => undefined);
      }
      await completer.stop().catch(() => undefined);
      await webhooks.close().catch(() => undefined);
      await urlInputs.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      await flux.close().catch(() => undefined);
      log.info('worker closed');
    })();
    return closing;
  };

  return { worker, queue, ready, close };
}
