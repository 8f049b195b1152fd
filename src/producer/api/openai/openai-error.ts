import type { FieldProblem } from '../../../shared/errors.js';

/** OpenAI's error types, as its clients map them to exception classes. */
export type OpenAiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'api_error' | 'timeout_error';

/**
 * An answer of the OpenAI-compatible surface (SPEC §10) that is an error: its HTTP status
 * and OpenAI's body `{ error: { message, type, param, code } }`. Retryable when the
 * same request may succeed later (429, 502, 503, 504).
 */
export class OpenAiError extends Error {
  override readonly name = 'OpenAiError';
  readonly status: number;
  readonly type: OpenAiErrorType;
  readonly param: string | null;
  readonly code: string | null;
  /** Sent as `x-should-retry`, which the official clients obey instead of retrying by status. */
  shouldRetry: boolean | undefined;

  constructor(status: number, message: string, opts: { type?: OpenAiErrorType; param?: string | null; code?: string | null; shouldRetry?: boolean } = {}) {
    super(message);
    this.shouldRetry = opts.shouldRetry;
    this.status = status;
    this.type = opts.type ?? (status === 404 ? 'not_found_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'api_error' : 'invalid_request_error');
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }

  get retryable(): boolean {
    return this.status === 429 || this.status >= 502;
  }

  body(): { error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A validation failure as a 400 naming its first bad field in `param` and every one in `message`. */
export function invalidRequest(details: readonly FieldProblem[], summary?: string): OpenAiError {
  const message = summary ?? details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
  return new OpenAiError(400, message || 'invalid request', { param: details[0]?.path || null, code: 'invalid_request' });
}

export const notFound = (what: string, id: string) => new OpenAiError(404, `no ${what} with id "${id}"`, { code: `${what}_not_found` });
