import type { z } from 'zod';
import type { ConfigPath, ConfigVariable } from './config-shape.js';
import { LOG_LEVELS, TRACE_PROTOCOLS, TRACE_SAMPLERS } from './config-shape.js';
import { BUCKET, BUCKET_RULE, bool, bucketNames, decimal, hostNames, httpUrl, int, intOrAuto, oneOf, redisUrls, secret, tenantNumbers, tenantTokens, text } from './config-values.js';

/**
 * SPEC §3 and fluxq's own variables, each once: how its text is parsed, its default, where it
 * lands in `Config`, and one line of documentation. `loadConfig` builds `Config` from this table,
 * and `npm run docs:config` writes README's configuration tables from it (a test compares them).
 */

/** SPEC §7: the largest upstream answer a worker reads (128 MiB). */
export const DEFAULT_MAX_RESPONSE_BYTES = 134_217_728;

/**
 * Dead-worker detection (SPEC §7 Field conditions: a SIGKILLed worker's jobs run again
 * within 20 s at the defaults). A live worker renews its locks every lockDuration/2, so a
 * job stalls only when its process is dead or its event loop blocked longer than 5 s
 * (measured: p99 event-loop delay at C = 32 with 4 MP images is well under 100 ms). A dead
 * worker's job is back in the wait list at most lockDuration + stalledInterval = 15 s after
 * the kill.
 */
export const DEFAULT_LOCK_DURATION_MS = 10_000;
export const DEFAULT_STALLED_INTERVAL_MS = 5_000;

/** Second key segments fluxq itself uses under QUEUE_PREFIX (see keys.ts). */
export const RESERVED_QUEUE_NAMES = ['events', 'id', 'batch', 'batches', 'webhooks', 'concurrency', 'stats', 'openai', 'fair', 'tenant'];

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const NAME_RULE = '1–64 letters, digits, . _ -';

export const CONFIG_TABLE = {
  // SPEC §3
  REDIS_URL: {
    spec: true, at: 'redis.urls', ...redisUrls(), default: ['redis://127.0.0.1:6379'],
    doc: 'the Redis server; with `REDIS_CLUSTER=1` a comma list of seed-node URLs (`redis://h1:p1,redis://h2:p2`)',
  },
  REDIS_CLUSTER: {
    spec: true, at: 'redis.cluster', ...bool(), default: false,
    doc: '1: `REDIS_URL` names a Redis Cluster; `QUEUE_PREFIX` must then start with a hash tag such as `{fluxq}`',
  },
  QUEUE_PREFIX: {
    spec: true, at: 'queue.prefix', default: 'fluxq',
    ...text(/^(\{[A-Za-z0-9._-]{1,64}\}|[A-Za-z0-9._-]{1,64})([A-Za-z0-9._-]{0,64})$/, 'letters, digits, . _ - (a Redis Cluster hash tag such as {fluxq} may lead)'),
    doc: "BullMQ's `prefix`: the first segment of every Redis key",
  },
  QUEUE_NAME: {
    spec: true, at: 'queue.name', ...text(NAME, NAME_RULE), default: 'generate',
    doc: `the queue; not ${RESERVED_QUEUE_NAMES.map((n) => `\`${n}\``).join(', ')} (fluxq's own keys use those names under the prefix)`,
  },
  FLUX_API_BASE_URL: {
    spec: true, at: 'flux.baseUrl', ...httpUrl(true), default: 'https://api.modelverse.cn/v1',
    doc: 'the upstream API (a trailing `/` is dropped)',
  },
  FLUX_MODEL: { spec: true, at: 'flux.model', ...text(NAME, NAME_RULE), default: 'flux-2-pro', doc: 'the model named in upstream calls' },
  FLUX_API_KEY: { spec: true, at: 'flux.apiKey', ...secret(), doc: 'the upstream API key; required by the worker' },
  MODELVERSE_API_KEY: { spec: true, at: 'flux.apiKey', ...secret(), doc: 'read when `FLUX_API_KEY` is unset' },
  FLUX_TIMEOUT_MS: { spec: true, at: 'flux.timeoutMs', ...int(1000), default: 120_000, doc: 'deadline of one upstream call' },
  WORKER_CONCURRENCY: { spec: true, at: 'worker.concurrency', ...int(1, 1024), default: 4, doc: 'in-flight upstream calls per worker process' },
  GLOBAL_CONCURRENCY: {
    spec: true, at: 'worker.globalConcurrency', ...intOrAuto(),
    doc: "in-flight upstream calls across ALL workers, unset = no cap (BFL accounts allow 24 active tasks); `auto`: the fleet finds the account's limit from 429s",
  },
  AUTO_CONCURRENCY_MIN: {
    spec: true, at: 'worker.autoConcurrencyMin', ...int(1, 10_000), default: 1,
    doc: 'with `GLOBAL_CONCURRENCY=auto`: the limit it ramps up from, and its floor',
  },
  AUTO_CONCURRENCY_MAX: {
    spec: true, at: 'worker.autoConcurrencyMax', ...int(1, 10_000), default: 64,
    doc: 'with `GLOBAL_CONCURRENCY=auto`: the ceiling of the limit (it cuts on a 429 and probes above the limit it found rarely enough that 429s stay under 2 % of calls; `WORKER_CONCURRENCY` still caps each process)',
  },
  RATE_LIMIT_MAX: {
    spec: true, at: 'worker.rateLimit.max', ...int(1),
    doc: 'upstream calls per `RATE_LIMIT_DURATION_MS` across ALL workers; unset = no limit; set both or neither',
  },
  RATE_LIMIT_DURATION_MS: { spec: true, at: 'worker.rateLimit.durationMs', ...int(1), doc: 'the window of `RATE_LIMIT_MAX`' },
  MAX_AMBIGUOUS_RETRIES: {
    spec: true, at: 'worker.maxAmbiguousRetries', ...int(0, 100), default: 2,
    doc: 'retries of a call whose outcome is unknown (it may have been billed)',
  },
  IDEMPOTENCY_TTL_S: {
    spec: true, at: 'idempotencyTtlS', ...int(1), default: 604_800,
    doc: 'an `id` keeps mapping to its job/result this long, even after the job is trimmed',
  },
  JOB_ATTEMPTS: { spec: true, at: 'worker.jobAttempts', ...int(1, 1000), default: 5, doc: 'tries per job' },
  BACKOFF_BASE_MS: { spec: true, at: 'worker.backoffBaseMs', ...int(1), default: 1000, doc: 'base of the retry backoff (exponential with jitter)' },
  S3_ENDPOINT: { spec: true, at: 's3.endpoint', ...httpUrl(), doc: 'unset = AWS; set for MinIO, R2, etc.' },
  S3_REGION: { spec: true, at: 's3.region', ...text(/^[a-z0-9-]{1,64}$/i, 'a region name such as us-east-1 or auto'), default: 'us-east-1', doc: 'the S3 region' },
  S3_BUCKET: { spec: true, at: 's3.bucket', ...text(BUCKET, BUCKET_RULE), doc: 'where images go; required by the worker and the API' },
  S3_ACCESS_KEY_ID: {
    spec: true, at: 's3.accessKeyId', ...text(),
    doc: 'unset = the AWS SDK default credential chain; set both or neither with `S3_SECRET_ACCESS_KEY`',
  },
  S3_SECRET_ACCESS_KEY: { spec: true, at: 's3.secretAccessKey', ...secret(), doc: 'the secret of `S3_ACCESS_KEY_ID`' },
  S3_FORCE_PATH_STYLE: { spec: true, at: 's3.forcePathStyle', ...bool(), default: false, doc: 'path-style bucket URLs (1 for MinIO-style endpoints)' },
  S3_KEY_PREFIX: {
    spec: true, at: 's3.keyPrefix', default: 'images',
    ...text(/^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, 'a key prefix without leading or trailing "/" (letters, digits, . _ ~ - /)'),
    doc: 'the first segment of every object key fluxq writes',
  },
  API_HOST: { spec: true, at: 'api.host', ...text(/^[^\s]+$/, 'a host name or IP address'), default: '0.0.0.0', doc: 'the address `fluxq api` listens on' },
  API_PORT: { spec: true, at: 'api.port', ...int(0, 65535), default: 8080, doc: 'the port `fluxq api` listens on' },
  API_TOKEN: {
    spec: true, at: 'api.token', ...secret(/^[\x21-\x7e]{16,512}$/, 'at least 16 printable characters without spaces'),
    doc: 'the bearer token the API requires; unset = the API refuses to start unless `API_INSECURE=1`',
  },
  API_BODY_LIMIT_BYTES: { spec: true, at: 'api.bodyLimitBytes', ...int(1024), default: 67_108_864, doc: 'larger request bodies get 413' },
  PRESIGN_TTL_S: { spec: true, at: 'api.presignTtlS', ...int(1, 604800), default: 3600, doc: 'lifetime of presigned GET URLs in the API and gallery' },
  WORKER_METRICS_PORT: { spec: true, at: 'worker.metricsPort', ...int(0, 65535), doc: 'unset = no metrics listener on workers' },
  WEBHOOK_ALLOWED_HOSTS: { spec: true, at: 'webhooks.allowedHosts', ...hostNames(), doc: 'unset = any public host; a comma list to restrict' },
  MAX_MEGAPIXELS_PER_BATCH: { spec: true, at: 'budget.maxMegapixelsPerBatch', ...decimal(0, true), doc: 'unset = no cap' },
  PRICE_FIRST_MP_USD: {
    spec: true, at: 'budget.priceFirstMpUsd', ...decimal(0), default: 0.03,
    doc: 'estimated cost of the first output megapixel of an image',
  },
  PRICE_EXTRA_MP_USD: {
    spec: true, at: 'budget.priceExtraMpUsd', ...decimal(0), default: 0.015,
    doc: 'estimated cost of each further output or input megapixel',
  },
  MAX_INPUT_IMAGE_BYTES: { spec: true, at: 'inputs.maxBytes', ...int(1), default: 20_971_520, doc: 'the largest input image' },
  INPUT_URL_ALLOW_PRIVATE: {
    spec: true, at: 'inputs.allowPrivateUrls', ...bool(), default: false,
    doc: 'input image URLs to private/loopback addresses are refused unless 1',
  },
  EVENTS_MAX_LEN: { spec: true, at: 'events.maxLen', ...int(1), default: 1_000_000, doc: 'events stream cap (approximate trimming)' },
  SHUTDOWN_TIMEOUT_MS: {
    spec: true, at: 'worker.shutdownTimeoutMs', ...int(0), default: 60_000,
    doc: 'after SIGTERM, in-flight jobs get this long; what is unfinished then goes back to the queue with its progress checkpoint',
  },
  // SPEC §8
  TENANT_WEIGHTS: {
    spec: true, at: 'fairShare.weights', ...tenantNumbers(1, 1000), default: new Map<string, number>(),
    doc: "each tenant's share of upstream call starts, `name=weight` (1–1000); a tenant not named has weight 1",
  },
  TENANT_MAX_CONCURRENCY: {
    spec: true, at: 'fairShare.maxConcurrency', ...tenantNumbers(1, 10_000), default: new Map<string, number>(),
    doc: "a tenant's upstream calls in flight across ALL workers, `name=N`; a tenant not named has no cap of its own",
  },
  TENANT_MAX_MEGAPIXELS_PER_DAY: {
    spec: true, at: 'fairShare.maxMegapixelsPerDay', ...tenantNumbers(0, Number.MAX_SAFE_INTEGER, true), default: new Map<string, number>(),
    doc: "a tenant's reported megapixels per UTC day, `name=N`; once reached, its further jobs fail with `budget: tenant T reached N megapixels today` and no upstream call",
  },
  LOG_LEVEL: { spec: true, at: 'logLevel', ...oneOf(LOG_LEVELS), default: 'info', doc: 'the least severe log line written' },
  // SPEC §9 Tracing: the OpenTelemetry SDK reads these itself (and the other OTEL_* variables it knows)
  OTEL_EXPORTER_OTLP_ENDPOINT: {
    spec: true, at: 'tracing.endpoint', ...httpUrl(),
    doc: 'OTLP base URL (`/v1/traces` is appended); this or the next one set = the process exports traces; both unset = tracing off (no SDK is loaded)',
  },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: { spec: true, at: 'tracing.tracesEndpoint', ...httpUrl(), doc: 'OTLP traces URL, used as it is' },
  OTEL_EXPORTER_OTLP_PROTOCOL: {
    spec: true, at: 'tracing.protocol', ...oneOf(TRACE_PROTOCOLS), default: 'http/protobuf',
    doc: 'how spans are sent (`grpc` is not supported)',
  },
  OTEL_SERVICE_NAME: { spec: true, at: 'tracing.serviceName', ...text(), doc: '`service.name` of the spans; unset = `fluxq-worker`, `fluxq-api` or `fluxq-cli`' },
  OTEL_TRACES_SAMPLER: {
    spec: true, at: 'tracing.sampler', ...oneOf(TRACE_SAMPLERS), default: 'parentbased_always_on',
    doc: 'which traces are recorded (`OTEL_TRACES_SAMPLER_ARG`: the ratio of the `traceidratio` ones)',
  },

  // fluxq's own
  LOCK_DURATION_MS: {
    at: 'worker.lockDurationMs', ...int(1000), default: DEFAULT_LOCK_DURATION_MS,
    doc: 'BullMQ job lock; renewed every half of it while the worker lives, so it bounds how long a dead worker\'s jobs wait to be picked up, not how long a call may take (a job stalls only if its process dies or its event loop blocks for more than half of it)',
  },
  STALLED_INTERVAL_MS: {
    at: 'worker.stalledIntervalMs', ...int(1000), default: DEFAULT_STALLED_INTERVAL_MS,
    doc: "how often workers look for jobs whose worker died; a SIGKILLed worker's jobs run again within `LOCK_DURATION_MS + STALLED_INTERVAL_MS` (15 s at the defaults)",
  },
  UPLOAD_RETRY_WINDOW_MS: {
    at: 'worker.uploadRetryWindowMs', ...int(0), default: 120_000,
    doc: 'how long an upload keeps retrying while S3 is unreachable, holding the generated bytes, before the attempt fails (the bytes are spooled, see below)',
  },
  SPOOL_DIR: { at: 'worker.spoolDir', ...text(undefined, 'a directory'), doc: 'where a worker keeps generated images whose upload failed; unset = `$TMPDIR/fluxq-spool`' },
  SPOOL_MAX_BYTES: {
    at: 'worker.spoolMaxBytes', ...int(0), default: 1024 * 1024 * 1024,
    doc: 'spool cap; past it bytes are kept in memory for the current attempt only',
  },
  API_TOKENS: {
    at: 'api.tenantTokens', ...tenantTokens(), default: [],
    doc: 'comma list `name=token` of tenant tokens (SPEC §8): a request made with one is that tenant\'s and sees and cancels only its own jobs and batches; `API_TOKEN` stays the operator\'s and sees all. Never logged',
  },
  API_INSECURE: { at: 'api.insecure', ...bool(), default: false, doc: 'let `fluxq api` start without `API_TOKEN`' },
  AUTO_PROBE_ROUNDS: {
    at: 'worker.autoProbeRounds', ...int(1, 100_000), default: 100,
    doc: 'with `GLOBAL_CONCURRENCY=auto`: rounds at the learned limit between probes above it',
  },
  KEEP_COMPLETED_JOBS: {
    at: 'worker.keepCompleted.count', ...int(0), default: 1000,
    doc: 'how many completed jobs BullMQ keeps (`removeOnComplete` on the Worker); results stay readable through the id record for `IDEMPOTENCY_TTL_S`',
  },
  KEEP_COMPLETED_AGE_S: { at: 'worker.keepCompleted.age', ...int(1), default: 24 * 3600, doc: 'how long BullMQ keeps completed jobs' },
  KEEP_FAILED_JOBS: { at: 'worker.keepFailed.count', ...int(0), default: 10_000, doc: 'how many failed jobs BullMQ keeps (`removeOnFail`)' },
  KEEP_FAILED_AGE_S: { at: 'worker.keepFailed.age', ...int(1), default: 7 * 24 * 3600, doc: 'how long BullMQ keeps failed jobs' },
  INPUT_URL_TIMEOUT_MS: { at: 'inputs.urlTimeoutMs', ...int(100), default: 30_000, doc: 'deadline of an `https://` input image download' },
  INPUT_S3_BUCKETS: {
    at: 'inputs.s3Buckets', ...bucketNames(), default: [],
    doc: 'comma list of buckets besides `S3_BUCKET` that `s3://` inputs may name (SPEC §7); unset = `S3_BUCKET` only',
  },
  MAX_RESPONSE_BYTES: {
    at: 'flux.maxResponseBytes', ...int(1024), default: DEFAULT_MAX_RESPONSE_BYTES,
    doc: 'the largest upstream answer a worker reads: a 200 whose Content-Length is above it is refused unread, one without a Content-Length is cut once it passes it; either way the call is ambiguous (`ambiguous: HTTP 200: answer larger than MAX_RESPONSE_BYTES (N bytes)`), retried and counted as possibly billed. Error answers are read only up to 64 KiB',
  },
  WEBHOOK_TIMEOUT_MS: { at: 'webhooks.timeoutMs', ...int(100), default: 10_000, doc: 'a webhook delivery that gets no answer within this is a failed try' },
  WEBHOOK_ATTEMPTS: { at: 'webhooks.attempts', ...int(1, 100), default: 8, doc: 'tries per webhook delivery before `webhook.failed`' },
  OPENAI_SYNC_TIMEOUT_S: {
    at: 'openai.syncTimeoutS', ...int(1, 86_400), default: 300,
    doc: '`POST /openai/v1/images/generations` answers within this; past it 504 naming the job id (the job goes on; re-posting its `Idempotency-Key` returns the result)',
  },
  OPENAI_BATCH_WINDOW_S: {
    at: 'openai.batchWindowS', ...int(1, 604_800), default: 86_400,
    doc: 'how long an OpenAI batch\'s `completion_window: "24h"` lasts; past it the batch expires (shorter only for tests)',
  },
  OPENAI_BATCH_SWEEP_MS: {
    at: 'openai.batchSweepMs', ...int(100, 600_000), default: 2000,
    doc: 'how often `fluxq api` moves OpenAI batches along (finished → output files written, window passed → expired)',
  },
  WEBHOOK_BACKOFF_MS: { at: 'webhooks.backoffMs', ...int(1), default: 2000, doc: 'base of the webhook retry backoff (exponential, jitter 0.5)' },
} satisfies Record<string, ConfigVariable>;

export type ConfigTable = typeof CONFIG_TABLE;
export type VariableName = keyof ConfigTable;

/** Fails to compile, naming the field, when a `Config` field has no variable that fills it. */
type Unfilled = Exclude<ConfigPath, ConfigTable[VariableName]['at']>;
const _everyFieldHasAVariable: [Unfilled] extends [never] ? 'every field has a variable' : Unfilled = 'every field has a variable';
void _everyFieldHasAVariable;

/** Every variable as parsed, or its default; undefined when it is unset and has none. */
export type ConfigValues = {
  [N in VariableName]: z.output<ConfigTable[N]['parse']> | (ConfigTable[N] extends { default: unknown } ? never : undefined);
};
