/**
 * Typed errors. Every error says whether retrying can help (`retryable`) and its
 * message names the job, the field and the fix. None carries a secret or a payload.
 */

/** The five upstream outcomes of SPEC §1, each with its own behaviour. */
export type UpstreamErrorKind = 'permanent' | 'account' | 'rate_limited' | 'transient' | 'ambiguous';

export interface UpstreamErrorInit {
  kind: UpstreamErrorKind;
  /** HTTP status, when the upstream answered. */
  status?: number;
  /** Modelverse error type (`param_error`, `sensitive_check_error`, …), when the body had one. */
  type?: string;
  /** The upstream's own message, or what went wrong in transport, one line. */
  detail: string;
  /** From `Retry-After` on a 429 (or a 503 that sent one). */
  retryAfterMs?: number;
  cause?: unknown;
}

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly kind: UpstreamErrorKind;
  readonly status: number | undefined;
  readonly type: string | undefined;
  readonly detail: string;
  readonly retryAfterMs: number | undefined;

  constructor(init: UpstreamErrorInit) {
    super(formatReason(init.kind, init.status, init.type, init.detail), { cause: init.cause });
    ({ kind: this.kind, status: this.status, type: this.type, detail: this.detail, retryAfterMs: this.retryAfterMs } = init);
  }

  /** Permanent and account-wide errors never succeed by retrying the same job. */
  get retryable(): boolean {
    return this.kind === 'transient' || this.kind === 'ambiguous' || this.kind === 'rate_limited';
  }

  /** The upstream may have generated (and billed) an image we did not receive. */
  get possiblyBilled(): boolean {
    return this.kind === 'ambiguous';
  }
}

/**
 * The one-line failure reason of SPEC §7: class, HTTP status when there was one, the
 * upstream's type and own message. `permanent: HTTP 422 sensitive_check_error: refused`.
 */
export function formatReason(kind: string, status: number | undefined, type: string | undefined, detail: string): string {
  const parts = [`${kind}:`];
  if (status !== undefined) parts.push(`HTTP ${status}`);
  if (type) parts.push(`${type}:`);
  else if (status !== undefined) parts[parts.length - 1] += ':';
  parts.push(detail);
  return oneLine(parts.join(' '));
}

/** A bad input image (missing object, not an image, too big, refused URL). Never retryable. */
export class InputError extends Error {
  override readonly name = 'InputError';
  readonly retryable = false;
  /** The envelope field, e.g. `input_image_3`. */
  readonly field: string;

  constructor(field: string, detail: string) {
    super(`${field}: ${detail}`);
    this.field = field;
  }
}

/** An input image could not be read for now (its server answered 5xx, or timed out); retried. */
export class InputUnavailableError extends Error {
  override readonly name = 'InputUnavailableError';
  readonly retryable = true;
  readonly field: string;

  constructor(field: string, detail: string, options?: { cause?: unknown }) {
    super(oneLine(`${field}: ${detail}`), options);
    this.field = field;
  }
}

/**
 * What an S3 error means for the job that hit it:
 *  - `config`: the bucket, the credentials or the endpoint are wrong. Every job would hit
 *    it alike and no retry fixes it: the queue is paused until someone fixes it.
 *  - `request`: S3 refused this one request (a 4xx such as `KeyTooLongError`,
 *    `InvalidArgument`, `EntityTooLarge`). Sending it again cannot help: the job fails.
 *  - `outage`: S3 is unreachable, slow or overloaded (5xx, 429/503 `SlowDown`, timeouts,
 *    connection errors). Waiting helps: the bytes are kept and the upload retried.
 */
export type S3ErrorKind = 'config' | 'request' | 'outage';

/**
 * S3 error names that mean a wrong bucket, wrong or missing credentials or a wrong
 * endpoint/region: waiting does not help. Besides these, any 401/403 is `config`.
 */
export const S3_CONFIG_ERRORS: ReadonlySet<string> = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidBucketName',
  'PermanentRedirect',
  'AuthorizationHeaderMalformed',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AccountProblem',
  'AllAccessDisabled',
  'NotSignedUp',
  'IllegalLocationConstraintException',
  'CredentialsProviderError',
]);

/** S3 error names that say "try again later" even though some come with a 4xx status. */
export const S3_OUTAGE_ERRORS: ReadonlySet<string> = new Set([
  'RequestTimeout',
  'SlowDown',
  'OperationAborted',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestThrottled',
  'ServiceUnavailable',
  'InternalError',
  'TimeoutError',
]);

/** A 403 about the object asked for, not the credentials (an archived input image). */
const S3_REQUEST_403 = new Set(['InvalidObjectState']);

/** Sort an S3 SDK error (its `name` and `$metadata.httpStatusCode`) into config, request or outage. */
export function classifyS3Error(name: string, status: number | undefined): S3ErrorKind {
  if (S3_CONFIG_ERRORS.has(name)) return 'config';
  if (S3_OUTAGE_ERRORS.has(name)) return 'outage';
  if (status === undefined || status === 0) return 'outage'; // no answer: network, timeout, abort
  if ((status === 401 || status === 403) && !S3_REQUEST_403.has(name)) return 'config';
  if (status === 301) return 'config'; // the bucket lives in another region/endpoint
  if (status === 408 || status === 429) return 'outage';
  if (status >= 400 && status < 500) return 'request';
  return 'outage'; // 5xx, and anything else a proxy may answer
}

export interface StorageErrorInit {
  /** What was being done, e.g. `writing images/b/j/0.png`. */
  doing: string;
  /** The S3 error code (`KeyTooLongError`), or the SDK/transport error's name. */
  code: string;
  status?: number | undefined;
  /** S3's own message, one line. */
  detail: string;
  kind: S3ErrorKind;
  cause?: unknown;
}

/**
 * S3 could not store or read an object. `kind` says what that means (S3ErrorKind):
 * waiting helps for an outage, a config error pauses the queue, a request error fails
 * the job (`reason` is its SPEC §7 failure reason).
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly kind: S3ErrorKind;
  readonly doing: string;
  readonly code: string;
  readonly status: number | undefined;
  readonly detail: string;

  constructor(init: StorageErrorInit) {
    super(oneLine(`${init.doing} failed: ${init.code}${init.status ? ` (HTTP ${init.status})` : ''}: ${init.detail}`), { cause: init.cause });
    ({ kind: this.kind, doing: this.doing, code: this.code, status: this.status, detail: this.detail } = init);
  }

  /** The bucket or the credentials are wrong: no retry fixes it, every job would hit it. */
  get config(): boolean {
    return this.kind === 'config';
  }

  /** Only a request error is never worth retrying. */
  get retryable(): boolean {
    return this.kind !== 'request';
  }

  /** The one-line failure reason of a request error: `permanent: S3 400 KeyTooLongError writing images/…/0.png: …`. */
  get reason(): string {
    const status = this.status !== undefined ? ` ${this.status}` : '';
    return oneLine(`permanent: S3${status} ${this.code} ${this.doing}: ${this.detail}`);
  }
}

/** Wrap an S3 SDK error as a StorageError saying what was being done, classified. */
export function storageError(doing: string, err: unknown): StorageError {
  const e = err as { name?: string; message?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  const code = (e?.name && e.name !== 'Error' ? e.name : undefined) ?? e?.Code ?? e?.code ?? 'Error';
  const detail = oneLine(e?.message ?? String(err), 300);
  return new StorageError({ doing, code, status, detail, kind: classifyS3Error(code, status), cause: err });
}

/** A batch reached its megapixel budget: the job fails without an upstream call. */
export class BudgetError extends Error {
  override readonly name = 'BudgetError';
  readonly retryable = false;

  constructor(batchId: string, limitMp: number) {
    super(`budget: batch ${batchId} reached ${limitMp} megapixels`);
  }

  /** TENANT_MAX_MEGAPIXELS_PER_DAY reached (SPEC §8): the tenant's reported megapixels of this UTC day. */
  static ofTenant(tenant: string, limitMp: number): BudgetError {
    const err = new BudgetError('', limitMp);
    err.message = `budget: tenant ${tenant} reached ${limitMp} megapixels today`;
    return err;
  }
}

/**
 * The job's tenant has TENANT_MAX_CONCURRENCY calls in flight fleet-wide: the job waits
 * (delayed briefly, no attempt spent) and tries its call start again.
 */
export class TenantLimitedError extends Error {
  override readonly name = 'TenantLimitedError';
  readonly retryable = true;
  readonly tenant: string;

  constructor(tenant: string, jobId: string) {
    super(`job ${jobId}: tenant ${tenant} is at its TENANT_MAX_CONCURRENCY; the job waits for one of its calls to end`);
    this.tenant = tenant;
  }
}

/** One or more configuration variables are bad; `problems` holds one line per variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly retryable = false;
  readonly problems: string[];

  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/** One bad field of a request envelope, with its dotted path (`width`, `requests.3.width`). */
export interface FieldProblem {
  path: string;
  message: string;
}

/** A request envelope failed validation; nothing was enqueued. */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  readonly retryable = false;
  readonly details: FieldProblem[];

  constructor(details: FieldProblem[], summary?: string) {
    super(summary ?? details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; '));
    this.details = details;
  }
}

/** Redis refused or could not be reached while enqueuing; nothing is buffered offline. */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError';
  readonly retryable = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
  }
}

/** Collapse whitespace and cap the length so a reason is always one readable line. */
export function oneLine(text: string, max = 500): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
