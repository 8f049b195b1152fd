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
    this.kind = init.kind;
    this.status = init.status;
    this.type = init.type;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs;
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
 * S3 could not store or read an object. Waiting helps (the bytes are kept and the upload
 * retried) unless `config` says the bucket or the credentials are wrong, which no retry
 * fixes and which every job would hit alike.
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly retryable = true;
  readonly config: boolean;

  constructor(message: string, options?: { cause?: unknown; config?: boolean }) {
    super(oneLine(message), options);
    this.config = options?.config ?? false;
  }
}

/** S3 error names that mean a wrong bucket or wrong credentials: waiting does not help. */
export const S3_CONFIG_ERRORS: ReadonlySet<string> = new Set(['NoSuchBucket', 'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidBucketName', 'PermanentRedirect', 'AuthorizationHeaderMalformed']);

/** Wrap an S3 SDK error as a StorageError saying what was being done. */
export function storageError(doing: string, err: unknown): StorageError {
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? e.code ?? 'Error';
  return new StorageError(`${doing} failed: ${name}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`, { cause: err, config: S3_CONFIG_ERRORS.has(name) });
}

/** A batch reached its megapixel budget: the job fails without an upstream call. */
export class BudgetError extends Error {
  override readonly name = 'BudgetError';
  readonly retryable = false;

  constructor(batchId: string, limitMp: number) {
    super(`budget: batch ${batchId} reached ${limitMp} megapixels`);
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
