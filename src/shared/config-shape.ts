import type { z } from 'zod';
import type { Secret } from './secret.js';
import type { TenantToken } from './config-values.js';

/**
 * The shape of fluxq's configuration: the `Config` every part is built from, and the type of a
 * row of the variable table (config-table.ts). The table's `at` paths are checked against
 * `Config` here, so a row cannot land in a field that does not exist or has another type.
 */

/** Who is starting: each role requires different variables. */
export type ConfigRole = 'worker' | 'producer' | 'api' | 'demo';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** OTLP protocols fluxq exports traces with (SPEC §9). */
export const TRACE_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
/** The OpenTelemetry SDK's `OTEL_TRACES_SAMPLER` values. */
export const TRACE_SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

/** The typed configuration every part of fluxq is built from (config-table.ts says which variable fills which field). */
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
    /** Set only when both RATE_LIMIT_MAX and RATE_LIMIT_DURATION_MS are. */
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
    /** API_TOKENS: tenant tokens (SPEC §8); a request made with one is that tenant's. */
    tenantTokens: readonly TenantToken[];
    insecure: boolean;
    bodyLimitBytes: number;
    presignTtlS: number;
  };
  openai: { syncTimeoutS: number; batchWindowS: number; batchSweepMs: number };
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
  /** SPEC §9: OTLP export; on when an endpoint is set (the SDK reads the variables itself too). */
  tracing: {
    endpoint: string | undefined;
    tracesEndpoint: string | undefined;
    protocol: (typeof TRACE_PROTOCOLS)[number];
    serviceName: string | undefined;
    sampler: (typeof TRACE_SAMPLERS)[number];
  };
  /** SPEC §8: per-tenant weights and caps, by tenant name (a tenant not named has weight 1 and no cap). */
  fairShare: {
    weights: ReadonlyMap<string, number>;
    maxConcurrency: ReadonlyMap<string, number>;
    maxMegapixelsPerDay: ReadonlyMap<string, number>;
  };
  logLevel: LogLevel;
}

/** Values a variable sets whole; the path does not walk into them. */
type Leaf = string | number | boolean | Secret | readonly unknown[] | ReadonlyMap<string, number>;

/** Every field of `Config` a variable can fill: `'worker.concurrency'`, `'worker.keepCompleted.count'`, … */
export type ConfigPath<T = Config> = {
  [K in keyof T & string]: NonNullable<T[K]> extends Leaf ? K : `${K}.${ConfigPath<NonNullable<T[K]>>}`;
}[keyof T & string];

/**
 * The type of the field at a path (`ConfigValue<'worker.concurrency'>` is `number`). A field inside
 * an object that may be undefined may be too (`worker.rateLimit.max`): the object is left undefined
 * when none of its fields is set.
 */
export type ConfigValue<P extends string, T = Config> = P extends `${infer K}.${infer Rest}`
  ? K extends keyof T
    ? ConfigValue<Rest, NonNullable<T[K]>> | (undefined extends T[K] ? undefined : never)
    : never
  : P extends keyof T
    ? T[P]
    : never;

/**
 * One row of the variable table. `parse` reads the variable's text (never called for an unset or
 * blank one); a value it refuses is reported as `NAME must be {rule}, got "value"`. A field that
 * cannot be undefined needs a `default`; one that can has none (unset means what `doc` says).
 */
type VariableAt<P extends ConfigPath, V = ConfigValue<P>> = {
  /** Where the value lands in `Config`. Several variables may land at one path: the first one set wins. */
  at: P;
  parse: z.ZodType<NonNullable<V>, string>;
  /** What the variable accepts, as the error message and the README say it. */
  rule: string;
  /** One line for the README (Markdown). */
  doc: string;
  /** A variable of SPEC §3's table (its name and default are fixed there). */
  spec?: true;
} & (undefined extends V ? { default?: undefined } : { default: NonNullable<V> });

export type ConfigVariable = { [P in ConfigPath]: VariableAt<P> }[ConfigPath];
