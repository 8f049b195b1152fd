import { z } from 'zod';
import { ConfigError } from './errors.js';
import { Secret } from './secret.js';

/**
 * SPEC §3: every environment variable, its default and its rule, in one zod schema.
 * `loadConfig(env, role)` reads an env object (never `process.env` itself), and fails
 * with a ConfigError that lists one line per bad or missing variable.
 * Booleans accept 1/true/0/false only; an empty value counts as unset.
 */

/** Who is starting: each role requires different variables. */
export type ConfigRole = 'worker' | 'producer' | 'api' | 'demo';

type Env = Record<string, string | undefined>;

const unset = (v: string | undefined): v is undefined => v === undefined || v.trim() === '';
const shown = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);

function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  const rule = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
  return z.string().optional().transform((v, ctx): number | undefined => {
    if (unset(v)) return undefined;
    const n = Number(v.trim());
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be ${rule}, got ${shown(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

function decimal(min: number, exclusiveMin = false) {
  const rule = exclusiveMin ? `a number > ${min}` : `a number ≥ ${min}`;
  return z.string().optional().transform((v, ctx): number | undefined => {
    if (unset(v)) return undefined;
    const n = Number(v.trim());
    if (!/^\d+(\.\d+)?$/.test(v.trim()) || !Number.isFinite(n) || n < min || (exclusiveMin && n === min)) {
      ctx.addIssue({ code: 'custom', message: `must be ${rule}, got ${shown(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

function bool() {
  return z.string().optional().transform((v, ctx): boolean | undefined => {
    if (unset(v)) return undefined;
    if (v === '1' || v === 'true') return true;
    if (v === '0' || v === 'false') return false;
    ctx.addIssue({ code: 'custom', message: `must be 1, true, 0 or false, got ${shown(v)}` });
    return z.NEVER;
  });
}

function text(pattern?: RegExp, rule?: string) {
  return z.string().optional().transform((v, ctx): string | undefined => {
    if (unset(v)) return undefined;
    const t = v.trim();
    if (pattern && !pattern.test(t)) {
      ctx.addIssue({ code: 'custom', message: `must be ${rule}, got ${shown(t)}` });
      return z.NEVER;
    }
    return t;
  });
}

function httpUrl() {
  return text(/^https?:\/\/[^\s/$.?#][^\s]*$/i, 'an http:// or https:// URL');
}

/** SPEC §7: the largest upstream answer a worker reads (128 MiB). */
export const DEFAULT_MAX_RESPONSE_BYTES = 134_217_728;

const REDIS_URL_RE = /^rediss?:\/\/[^\s,]+$/i;
const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
const PREFIX_RE = /^(\{[A-Za-z0-9._-]{1,64}\}|[A-Za-z0-9._-]{1,64})([A-Za-z0-9._-]{0,64})$/;
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const BUCKET_RULE = 'a bucket name (3–63 lower-case letters, digits, . -)';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** Second key segments fluxq itself uses under QUEUE_PREFIX (see keys.ts). */
export const RESERVED_QUEUE_NAMES = ['events', 'id', 'batch', 'batches', 'webhooks', 'concurrency', 'stats'];

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

/** The raw schema: env variable name → parsed value (undefined when unset). */
export const envSchema = z.object({
  REDIS_URL: z.string().optional().transform((v, ctx): string[] | undefined => {
    if (unset(v)) return undefined;
    const urls = v.split(',').map((u) => u.trim()).filter(Boolean);
    const bad = urls.filter((u) => !REDIS_URL_RE.test(u));
    if (urls.length === 0 || bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `must be a redis:// or rediss:// URL (a comma list with REDIS_CLUSTER=1), got ${shown(v)}` });
      return z.NEVER;
    }
    return urls;
  }),
  REDIS_CLUSTER: bool(),
  QUEUE_PREFIX: text(PREFIX_RE, 'letters, digits, . _ - (a Redis Cluster hash tag such as {fluxq} may lead)'),
  QUEUE_NAME: text(NAME_RE, '1–64 letters, digits, . _ -'),
  FLUX_API_BASE_URL: httpUrl(),
  FLUX_MODEL: text(NAME_RE, '1–64 letters, digits, . _ -'),
  FLUX_API_KEY: text(),
  MODELVERSE_API_KEY: text(),
  FLUX_TIMEOUT_MS: int(1000),
  WORKER_CONCURRENCY: int(1, 1024),
  GLOBAL_CONCURRENCY: z.string().optional().transform((v, ctx): number | 'auto' | undefined => {
    if (unset(v)) return undefined;
    if (v.trim() === 'auto') return 'auto';
    const n = Number(v.trim());
    if (!/^\d+$/.test(v.trim()) || n < 1 || !Number.isSafeInteger(n)) {
      ctx.addIssue({ code: 'custom', message: `must be an integer ≥ 1 or "auto", got ${shown(v)}` });
      return z.NEVER;
    }
    return n;
  }),
  AUTO_CONCURRENCY_MIN: int(1, 10_000),
  AUTO_CONCURRENCY_MAX: int(1, 10_000),
  AUTO_PROBE_ROUNDS: int(1, 100_000),
  RATE_LIMIT_MAX: int(1),
  RATE_LIMIT_DURATION_MS: int(1),
  MAX_AMBIGUOUS_RETRIES: int(0, 100),
  IDEMPOTENCY_TTL_S: int(1),
  JOB_ATTEMPTS: int(1, 1000),
  BACKOFF_BASE_MS: int(1),
  S3_ENDPOINT: httpUrl(),
  S3_REGION: text(/^[a-z0-9-]{1,64}$/i, 'a region name such as us-east-1 or auto'),
  S3_BUCKET: text(BUCKET_RE, BUCKET_RULE),
  S3_ACCESS_KEY_ID: text(),
  S3_SECRET_ACCESS_KEY: text(),
  S3_FORCE_PATH_STYLE: bool(),
  S3_KEY_PREFIX: text(/^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/, 'a key prefix without leading or trailing "/" (letters, digits, . _ ~ - /)'),
  API_HOST: text(/^[^\s]+$/, 'a host name or IP address'),
  API_PORT: int(0, 65535),
  API_TOKEN: text(/^[\x21-\x7e]{16,512}$/, 'at least 16 printable characters without spaces'),
  API_INSECURE: bool(),
  API_BODY_LIMIT_BYTES: int(1024),
  PRESIGN_TTL_S: int(1, 604800),
  WORKER_METRICS_PORT: int(0, 65535),
  WEBHOOK_ALLOWED_HOSTS: text(/^[A-Za-z0-9.*:[\]-]+(\s*,\s*[A-Za-z0-9.*:[\]-]+)*$/, 'a comma list of host names or IP literals'),
  MAX_MEGAPIXELS_PER_BATCH: decimal(0, true),
  PRICE_FIRST_MP_USD: decimal(0),
  PRICE_EXTRA_MP_USD: decimal(0),
  MAX_INPUT_IMAGE_BYTES: int(1),
  MAX_RESPONSE_BYTES: int(1024),
  INPUT_URL_ALLOW_PRIVATE: bool(),
  INPUT_S3_BUCKETS: z.string().optional().transform((v, ctx): string[] | undefined => {
    if (unset(v)) return undefined;
    const names = v.split(',').map((b) => b.trim());
    const bad = names.filter((b) => !BUCKET_RE.test(b));
    if (bad.length > 0) {
      ctx.addIssue({ code: 'custom', message: `must be a comma list of bucket names, each ${BUCKET_RULE}, got ${shown(bad[0] ?? '')}` });
      return z.NEVER;
    }
    return names;
  }),
  INPUT_URL_TIMEOUT_MS: int(100),
  EVENTS_MAX_LEN: int(1),
  SHUTDOWN_TIMEOUT_MS: int(0),
  LOG_LEVEL: text(new RegExp(`^(${LOG_LEVELS.join('|')})$`), LOG_LEVELS.join(', ')),
  SPOOL_DIR: text(),
  SPOOL_MAX_BYTES: int(0),
  WEBHOOK_TIMEOUT_MS: int(100),
  WEBHOOK_ATTEMPTS: int(1, 100),
  WEBHOOK_BACKOFF_MS: int(1),
  KEEP_COMPLETED_JOBS: int(0),
  KEEP_COMPLETED_AGE_S: int(1),
  KEEP_FAILED_JOBS: int(0),
  KEEP_FAILED_AGE_S: int(1),
  LOCK_DURATION_MS: int(1000),
  STALLED_INTERVAL_MS: int(1000),
  UPLOAD_RETRY_WINDOW_MS: int(0),
});

type RawEnv = z.output<typeof envSchema>;

export type LogLevel = (typeof LOG_LEVELS)[number];

/** The typed configuration every part of fluxq is built from. */
export interface Config {
  redis: { urls: string[]; cluster: boolean };
  queue: { prefix: string; name: string };
  flux: {
    baseUrl: string;
    model: string;
    apiKey: Secret | undefined;
    timeoutMs: number;
    /** `MAX_RESPONSE_BYTES`: a 200 answer larger than this is cut off and ambiguous (SPEC §7). */
    maxResponseBytes: number;
  };
  worker: {
    concurrency: number;
    globalConcurrency: number | 'auto' | undefined;
    autoConcurrencyMin: number;
    autoConcurrencyMax: number;
    autoProbeRounds: number;
    rateLimit: { max: number; durationMs: number } | undefined;
    maxAmbiguousRetries: number;
    jobAttempts: number;
    backoffBaseMs: number;
    shutdownTimeoutMs: number;
    metricsPort: number | undefined;
    spoolDir: string | undefined;
    spoolMaxBytes: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    uploadRetryWindowMs: number;
    /** BullMQ retention of finished jobs (the id record keeps results for IDEMPOTENCY_TTL_S). */
    keepCompleted: { count: number; age: number };
    keepFailed: { count: number; age: number };
  };
  idempotencyTtlS: number;
  s3: {
    endpoint: string | undefined;
    region: string;
    bucket: string | undefined;
    accessKeyId: string | undefined;
    secretAccessKey: Secret | undefined;
    forcePathStyle: boolean;
    keyPrefix: string;
  };
  api: {
    host: string;
    port: number;
    token: Secret | undefined;
    insecure: boolean;
    bodyLimitBytes: number;
    presignTtlS: number;
  };
  webhooks: { allowedHosts: string[] | undefined; timeoutMs: number; attempts: number; backoffMs: number };
  budget: { maxMegapixelsPerBatch: number | undefined; priceFirstMpUsd: number; priceExtraMpUsd: number };
  inputs: {
    maxBytes: number;
    allowPrivateUrls: boolean;
    urlTimeoutMs: number;
    /** INPUT_S3_BUCKETS: buckets besides S3_BUCKET that `s3://` inputs may name. */
    s3Buckets: string[];
  };
  events: { maxLen: number };
  logLevel: LogLevel;
}

function crossChecks(raw: RawEnv, role: ConfigRole): string[] {
  const problems: string[] = [];
  const cluster = raw.REDIS_CLUSTER ?? false;
  const prefix = raw.QUEUE_PREFIX ?? 'fluxq';
  if (cluster && !/^\{[^}]+\}/.test(prefix)) {
    problems.push(`QUEUE_PREFIX must start with a hash tag such as {fluxq} when REDIS_CLUSTER=1, got ${shown(prefix)}`);
  }
  if (!cluster && raw.REDIS_URL && raw.REDIS_URL.length > 1) {
    problems.push('REDIS_URL holds several URLs; set REDIS_CLUSTER=1 for a Redis Cluster or give one URL');
  }
  const name = raw.QUEUE_NAME ?? 'generate';
  if (RESERVED_QUEUE_NAMES.includes(name)) {
    problems.push(`QUEUE_NAME must not be one of ${RESERVED_QUEUE_NAMES.join(', ')} (fluxq keys use them), got ${shown(name)}`);
  }
  if ((raw.RATE_LIMIT_MAX === undefined) !== (raw.RATE_LIMIT_DURATION_MS === undefined)) {
    problems.push(
      raw.RATE_LIMIT_MAX === undefined
        ? 'RATE_LIMIT_MAX is required when RATE_LIMIT_DURATION_MS is set'
        : 'RATE_LIMIT_DURATION_MS is required when RATE_LIMIT_MAX is set',
    );
  }
  if ((raw.S3_ACCESS_KEY_ID === undefined) !== (raw.S3_SECRET_ACCESS_KEY === undefined)) {
    problems.push(
      raw.S3_ACCESS_KEY_ID === undefined
        ? 'S3_ACCESS_KEY_ID is required when S3_SECRET_ACCESS_KEY is set'
        : 'S3_SECRET_ACCESS_KEY is required when S3_ACCESS_KEY_ID is set',
    );
  }
  const min = raw.AUTO_CONCURRENCY_MIN ?? 1;
  const max = raw.AUTO_CONCURRENCY_MAX ?? 64;
  if (min > max) problems.push(`AUTO_CONCURRENCY_MIN must be ≤ AUTO_CONCURRENCY_MAX, got ${min} > ${max}`);
  if (role === 'worker') {
    if (!raw.FLUX_API_KEY && !raw.MODELVERSE_API_KEY) problems.push('FLUX_API_KEY (or MODELVERSE_API_KEY) is required by the worker');
    if (!raw.S3_BUCKET) problems.push('S3_BUCKET is required by the worker');
  }
  if (role === 'api') {
    if (!raw.S3_BUCKET) problems.push('S3_BUCKET is required by the API (presigned URLs, health check, inline inputs)');
    if (!raw.API_TOKEN && !raw.API_INSECURE) problems.push('API_TOKEN is required by the API (or set API_INSECURE=1 to run without auth)');
  }
  return problems;
}

function toConfig(raw: RawEnv): Config {
  const rateLimit =
    raw.RATE_LIMIT_MAX !== undefined && raw.RATE_LIMIT_DURATION_MS !== undefined
      ? { max: raw.RATE_LIMIT_MAX, durationMs: raw.RATE_LIMIT_DURATION_MS }
      : undefined;
  const apiKey = raw.FLUX_API_KEY ?? raw.MODELVERSE_API_KEY;
  return {
    redis: { urls: raw.REDIS_URL ?? ['redis://127.0.0.1:6379'], cluster: raw.REDIS_CLUSTER ?? false },
    queue: { prefix: raw.QUEUE_PREFIX ?? 'fluxq', name: raw.QUEUE_NAME ?? 'generate' },
    flux: {
      baseUrl: (raw.FLUX_API_BASE_URL ?? 'https://api.modelverse.cn/v1').replace(/\/+$/, ''),
      model: raw.FLUX_MODEL ?? 'flux-2-pro',
      apiKey: apiKey ? new Secret(apiKey) : undefined,
      timeoutMs: raw.FLUX_TIMEOUT_MS ?? 120_000,
      maxResponseBytes: raw.MAX_RESPONSE_BYTES ?? DEFAULT_MAX_RESPONSE_BYTES,
    },
    worker: {
      concurrency: raw.WORKER_CONCURRENCY ?? 4,
      globalConcurrency: raw.GLOBAL_CONCURRENCY,
      autoConcurrencyMin: raw.AUTO_CONCURRENCY_MIN ?? 1,
      autoConcurrencyMax: raw.AUTO_CONCURRENCY_MAX ?? 64,
      autoProbeRounds: raw.AUTO_PROBE_ROUNDS ?? 100,
      rateLimit,
      maxAmbiguousRetries: raw.MAX_AMBIGUOUS_RETRIES ?? 2,
      jobAttempts: raw.JOB_ATTEMPTS ?? 5,
      backoffBaseMs: raw.BACKOFF_BASE_MS ?? 1000,
      shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS ?? 60_000,
      metricsPort: raw.WORKER_METRICS_PORT,
      spoolDir: raw.SPOOL_DIR,
      spoolMaxBytes: raw.SPOOL_MAX_BYTES ?? 1024 * 1024 * 1024,
      lockDurationMs: raw.LOCK_DURATION_MS ?? DEFAULT_LOCK_DURATION_MS,
      stalledIntervalMs: raw.STALLED_INTERVAL_MS ?? DEFAULT_STALLED_INTERVAL_MS,
      uploadRetryWindowMs: raw.UPLOAD_RETRY_WINDOW_MS ?? 120_000,
      keepCompleted: { count: raw.KEEP_COMPLETED_JOBS ?? 1000, age: raw.KEEP_COMPLETED_AGE_S ?? 24 * 3600 },
      keepFailed: { count: raw.KEEP_FAILED_JOBS ?? 10_000, age: raw.KEEP_FAILED_AGE_S ?? 7 * 24 * 3600 },
    },
    idempotencyTtlS: raw.IDEMPOTENCY_TTL_S ?? 604_800,
    s3: {
      endpoint: raw.S3_ENDPOINT,
      region: raw.S3_REGION ?? 'us-east-1',
      bucket: raw.S3_BUCKET,
      accessKeyId: raw.S3_ACCESS_KEY_ID,
      secretAccessKey: raw.S3_SECRET_ACCESS_KEY ? new Secret(raw.S3_SECRET_ACCESS_KEY) : undefined,
      forcePathStyle: raw.S3_FORCE_PATH_STYLE ?? false,
      keyPrefix: raw.S3_KEY_PREFIX ?? 'images',
    },
    api: {
      host: raw.API_HOST ?? '0.0.0.0',
      port: raw.API_PORT ?? 8080,
      token: raw.API_TOKEN ? new Secret(raw.API_TOKEN) : undefined,
      insecure: raw.API_INSECURE ?? false,
      bodyLimitBytes: raw.API_BODY_LIMIT_BYTES ?? 67_108_864,
      presignTtlS: raw.PRESIGN_TTL_S ?? 3600,
    },
    webhooks: {
      allowedHosts: raw.WEBHOOK_ALLOWED_HOSTS?.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
      timeoutMs: raw.WEBHOOK_TIMEOUT_MS ?? 10_000,
      attempts: raw.WEBHOOK_ATTEMPTS ?? 8,
      backoffMs: raw.WEBHOOK_BACKOFF_MS ?? 2000,
    },
    budget: {
      maxMegapixelsPerBatch: raw.MAX_MEGAPIXELS_PER_BATCH,
      priceFirstMpUsd: raw.PRICE_FIRST_MP_USD ?? 0.03,
      priceExtraMpUsd: raw.PRICE_EXTRA_MP_USD ?? 0.015,
    },
    inputs: {
      maxBytes: raw.MAX_INPUT_IMAGE_BYTES ?? 20_971_520,
      allowPrivateUrls: raw.INPUT_URL_ALLOW_PRIVATE ?? false,
      urlTimeoutMs: raw.INPUT_URL_TIMEOUT_MS ?? 30_000,
      s3Buckets: raw.INPUT_S3_BUCKETS ?? [],
    },
    events: { maxLen: raw.EVENTS_MAX_LEN ?? 1_000_000 },
    logLevel: (raw.LOG_LEVEL as LogLevel | undefined) ?? 'info',
  };
}

/**
 * Parse and validate the environment for a role. Throws ConfigError naming every bad
 * variable, one line each (`WORKER_CONCURRENCY must be an integer from 1 to 1024, got "abc"`).
 */
export function loadConfig(env: Env, role: ConfigRole): Config {
  // Each field is parsed on its own so one bad value never hides another, and the
  // cross-checks (required-by-role, pairs) still run on what did parse.
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, field] of Object.entries(envSchema.shape)) {
    const result = field.safeParse(env[key]);
    if (result.success) raw[key] = result.data;
    else for (const issue of result.error.issues) problems.push(`${key} ${issue.message}`);
  }
  problems.push(...crossChecks(raw as RawEnv, role));
  if (problems.length > 0) throw new ConfigError(problems);
  return toConfig(raw as RawEnv);
}

/** The variable names the schema knows, e.g. for checking docker-compose.yml. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);
