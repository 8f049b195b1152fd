import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { MetricsTime, Queue, type Processor, type Telemetry, type Worker } from 'bullmq';
import type { Config } from '../shared/config.js';
import { PoisonTolerantWorker } from '../shared/bullmq-internals.js';
import { Closers, settlesWithin } from '../shared/closers.js';
import type { JobData } from '../shared/job-data.js';
import { BatchStore } from '../shared/batch-store.js';
import { FairShare } from '../shared/fair-share.js';
import { JobRecords, type FinalizeOutcome } from '../shared/job-record.js';
import { redisKeys, type RedisKeys } from '../shared/keys.js';
import { assertNoEviction } from '../shared/redis-policy.js';
import type { Logger } from '../shared/logger.js';
import type { RedisClient } from '../shared/redis.js';
import type { Tracing } from '../shared/tracing.js';
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
import { recordBullFailure } from './final-failure.js';
import { DeadlineSweeper } from './deadline-sweeper.js';

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
  /** How often to look for jobs whose deadline passed before they started (ms, default 1000). */
  deadlineSweepMs?: number;
  /** DNS for webhook hosts (default: the system's; tests inject one). */
  resolver?: HostResolver;
  /** This process's Prometheus figures (WORKER_METRICS_PORT). */
  metrics?: WorkerMetrics;
  /** An extra CA for https input URLs (tests; production uses the system store or NODE_EXTRA_CA_CERTS). */
  tlsCa?: string | Buffer;
  /** Tests only: hold runs around their call start (never set in production). */
  testHooks?: CallTestHooks;
  /**
   * This process's tracing (shared/tracing.ts, SPEC §9): its BullMQ telemetry goes on
   * every queue and worker, and its flush is the last thing `close()` does.
   */
  tracing?: Tracing;
  /** BullMQ's telemetry (e.g. bullmq-otel's) when the caller runs its own OpenTelemetry SDK; default: `tracing`'s. */
  telemetry?: Telemetry;
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

async function applyQueueSettings(queue: Queue, config: Config, adaptive: AdaptiveConcurrency | undefined): Promise<void> {
  const g = config.worker.globalConcurrency;
  if (typeof g === 'number') await queue.setGlobalConcurrency(g);
  else if (adaptive) await adaptive.start();
  else await queue.removeGlobalConcurrency();
}

/** The worker's own count of runs in progress (what shutdown reports as in flight). */
class InFlight {
  #n = 0;
  get count(): number {
    return this.#n;
  }
  /** `processor`, counting its runs (it keeps three parameters: BullMQ passes the AbortSignal only to those). */
  counting<D, R>(processor: Processor<D, R>): Processor<D, R> {
    return async (job, token, signal) => {
      this.#n++;
      try {
        return await processor(job, token, signal);
      } finally {
        this.#n--;
      }
    };
  }
}

/** What the processor works with besides its deps: built once, each closed by `closers`. */
interface Services {
  keys: RedisKeys;
  records: JobRecords;
  queue: Queue<JobData, JobResult>;
  urlInputs: ReturnType<typeof createUrlInputFetcher>;
  webhooks: WebhookService;
  completer: BatchCompleter;
  adaptive: AdaptiveConcurrency | undefined;
  fair: FairShare;
}

function createServices(opts: CreateWorkerOptions, log: Logger, closers: Closers): Services {
  const { config, redis } = opts;
  // Registered first, so closed last: spans of the shutdown itself are exported too.
  if (opts.tracing) closers.add('tracing', opts.tracing, (t) => t.shutdown());
  const telemetry = telemetryOf(opts);
  const keys = redisKeys(config.queue.prefix, config.queue.name);
  const records = new JobRecords(redis, keys, { ttlS: config.idempotencyTtlS, eventsMaxLen: config.events.maxLen });
  closers.add('upstream client', opts.flux, (f) => f.close());
  const queue = closers.add('queue', new Queue<JobData, JobResult>(config.queue.name, { connection: redis, prefix: config.queue.prefix, ...telemetry }), (q) => q.close());
  queue.on('error', (err) => log.error({ err }, 'queue connection error'));
  const urlInputs = closers.add(
    'input URL fetcher',
    createUrlInputFetcher({
      allowPrivate: config.inputs.allowPrivateUrls,
      timeoutMs: config.inputs.urlTimeoutMs,
      maxBytes: config.inputs.maxBytes,
      ca: opts.tlsCa,
      resolver: opts.resolver,
    }),
    (u) => u.close(),
  );
  const webhooks = closers.add('webhooks', new WebhookService({ config, redis, keys, log, resolver: opts.resolver, ...telemetry }), (w) => w.close());
  const batches = new BatchStore(redis, keys, { eventsMaxLen: config.events.maxLen });
  const completer = closers.add(
    'batch completer',
    new BatchCompleter({ batches, records, s3: opts.s3, bucket: config.s3.bucket ?? '', keyPrefix: config.s3.keyPrefix, log, sweepMs: opts.sweepMs }),
    (c) => c.stop(),
  );
  const m = opts.metrics;
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
  const fair = closers.add('fair-share dispatcher', new FairShare(redis, keys, config, log), (f) => f.stop());
  return { keys, records, queue, urlInputs, webhooks, completer, adaptive, fair };
}

/** Wire the upstream client's outcomes to the metrics and the adaptive controller; returns the 429 feed. */
function observeUpstream(opts: CreateWorkerOptions, adaptive: AdaptiveConcurrency | undefined, log: Logger): (outcome: 'ok' | '429', retryAfterMs?: number) => void {
  const { config, metrics: m } = opts;
  const feed = (outcome: 'ok' | '429', retryAfterMs?: number) =>
    void adaptive?.observe(outcome, retryAfterMs).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'adaptive concurrency update failed'));
  opts.flux.observe((o) => {
    m?.observeUpstream(o);
    if (o.status === 200 && o.kind === undefined) feed('ok');
  });
  if (m) {
    m.concurrency.set(config.worker.concurrency);
    m.globalConcurrency.set(typeof config.worker.globalConcurrency === 'number' ? config.worker.globalConcurrency : 0);
  }
  return feed;
}

function processorDeps(opts: CreateWorkerOptions, s: Services, feed: (outcome: 'ok' | '429', retryAfterMs?: number) => void, log: Logger): ProcessorDeps {
  const { config, redis, metrics: m } = opts;
  const hooks = opts.hooks ?? {};
  return {
    config,
    s3: opts.s3,
    flux: opts.flux,
    records: s.records,
    spool: new Spool(config.worker.spoolDir ?? join(tmpdir(), 'fluxq-spool'), config.worker.spoolMaxBytes, log),
    queue: s.queue,
    prices: { firstMpUsd: config.budget.priceFirstMpUsd, extraMpUsd: config.budget.priceExtraMpUsd },
    // A job became final: queue its webhook now, and finish its batch when it was the last.
    onFinalized: (fin: FinalizeOutcome, batchId: string | undefined) => {
      if (fin.eventId) s.webhooks.kick();
      if (fin.batchFinished && batchId) void s.completer.complete(batchId).then(() => s.webhooks.kick());
    },
    log,
    control: { queue: s.queue, redis, keys: s.keys, eventsMaxLen: config.events.maxLen },
    inputs: {
      s3: opts.s3,
      maxBytes: config.inputs.maxBytes,
      allowedBuckets: allowedInputBuckets(config) ?? [],
      fetchUrl: (field, url, signal) => s.urlInputs.fetch(field, url, signal),
    },
    limiterMax: config.worker.rateLimit?.max ?? UNLIMITED_STARTS,
    uploadRetryWindowMs: config.worker.uploadRetryWindowMs,
    ...(opts.testHooks ? { testHooks: opts.testHooks } : {}),
    fair: s.fair,
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
    onFirstCall: (enqueuedAtMs) => m?.queueWait.observe(Math.max(0, Date.now() - enqueuedAtMs) / 1000),
    onJobFinal: (state, enqueuedAtMs) => {
      if (enqueuedAtMs) m?.jobDuration.observe({ outcome: state }, Math.max(0, Date.now() - enqueuedAtMs) / 1000);
    },
    onRetry: () => {
      m?.jobsRetried.inc();
      void redis.hincrby(s.keys.stats, 'retried', 1).catch(() => undefined);
    },
  };
}

/** `{ telemetry }` for BullMQ's options when there is one, else nothing. */
function telemetryOf(opts: CreateWorkerOptions): { telemetry?: Telemetry } {
  const telemetry = opts.telemetry ?? opts.tracing?.telemetry;
  return telemetry ? { telemetry } : {};
}

function createBullWorker(opts: CreateWorkerOptions, processor: Processor<JobData, JobResult>): Worker<JobData, JobResult> {
  const { config, redis } = opts;
  return new PoisonTolerantWorker<JobData, JobResult>(config.queue.name, processor, {
    ...telemetryOf(opts),
    connection: redis,
    prefix: config.queue.prefix,
    concurrency: config.worker.concurrency,
    autorun: false,
    // Always a limiter: BullMQ honours a queue.rateLimit() window only when one is set.
    limiter: { max: config.worker.rateLimit?.max ?? UNLIMITED_STARTS, duration: config.worker.rateLimit?.durationMs ?? 1000 },
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
}

/** Log the worker's troubles; record failures BullMQ decided without the processor. */
function watchWorker(worker: Worker<JobData, JobResult>, deps: ProcessorDeps, log: Logger): void {
  worker.on('error', (err) => log.error({ err }, 'worker error'));
  // A job ended (a slot in BullMQ's global concurrency freed): release the next fair one.
  worker.on('completed', () => deps.fair?.kick());
  worker.on('failed', () => deps.fair?.kick());
  worker.on('stalled', (jobId) => log.warn({ jobId }, 'job stalled (its worker died or was blocked); it will run again'));
  worker.on('failed', (job, err) => {
    if (!job) return;
    recordBullFailure(deps, job, err, log).catch((e: unknown) => log.error({ err: e, jobId: job.id }, 'could not record a failure'));
  });
}

/**
 * Stop taking jobs and let in-flight ones finish until the deadline; then cut the rest
 * off (the processor puts them back to the queue with their checkpoint).
 */
async function drainWorker(worker: Worker<JobData, JobResult>, deadlineMs: number, inFlight: InFlight, log: Logger): Promise<void> {
  log.info({ inFlight: inFlight.count, deadlineMs }, 'shutting down: no new jobs, finishing in-flight ones');
  const graceful = worker.close();
  if (await settlesWithin(graceful, deadlineMs)) return;
  log.warn('shutdown deadline reached: cutting off in-flight jobs; they go back to the queue');
  worker.cancelAllJobs('shutdown deadline');
  await settlesWithin(graceful, CUT_OFF_GRACE_MS);
  await worker.close(true).catch(() => undefined);
}

/** How long cut-off runs get to put their jobs back before the worker is forced closed. */
const CUT_OFF_GRACE_MS = 10_000;

/** Connect, check Redis, apply the queue's settings, then (autorun) start fetching and the background loops. */
async function startWorker(opts: CreateWorkerOptions, worker: Worker<JobData, JobResult>, s: Services, sweeper: DeadlineSweeper, log: Logger): Promise<void> {
  const { config } = opts;
  await worker.waitUntilReady();
  await assertNoEviction(opts.redis, log);
  await applyQueueSettings(s.queue, config, s.adaptive);
  if (opts.autorun !== false) {
    void worker.run().catch((err: unknown) => log.error({ err }, 'worker stopped'));
    s.webhooks.start();
    s.completer.start();
    sweeper.start();
    s.fair.start();
    s.fair.kick();
  }
  log.info(
    {
      queue: config.queue.name,
      prefix: config.queue.prefix,
      concurrency: config.worker.concurrency,
      globalConcurrency: config.worker.globalConcurrency ?? null,
      rateLimit: config.worker.rateLimit ?? null,
      upstream: opts.flux.urlFor(config.flux.model),
    },
    'worker ready',
  );
}

/** Build a generation worker from its configuration and clients (no globals, no signals). */
export function createWorker(opts: CreateWorkerOptions): FluxqWorker {
  const log = opts.logger.child({ component: 'worker' });
  const closers = new Closers(log);
  const services = createServices(opts, log, closers);
  const feed = observeUpstream(opts, services.adaptive, log);
  const deps = processorDeps(opts, services, feed, log);
  const inFlight = new InFlight();
  const deadlineMs = opts.config.worker.shutdownTimeoutMs;
  const worker = closers.add(
    'worker',
    createBullWorker(opts, inFlight.counting(createProcessor(deps))),
    (w) => drainWorker(w, deadlineMs, inFlight, log),
    deadlineMs + CUT_OFF_GRACE_MS + 10_000,
  );
  watchWorker(worker, deps, log);
  const sweeper = closers.add(
    'deadline sweeper',
    new DeadlineSweeper({ ...deps, records: services.records, queue: services.queue, log, everyMs: opts.deadlineSweepMs ?? 1000 }),
    (d) => d.stop(),
  );
  const ready = startWorker(opts, worker, services, sweeper, log);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await ready.catch(() => undefined);
      await closers.close();
      log.info('worker closed');
    })();
    return closing;
  };

  return { worker, queue: services.queue, ready, close };
}
