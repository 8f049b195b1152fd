import { UpstreamError, oneLine, type UpstreamErrorKind } from '../shared/errors.js';
import { upstreamErrorBodySchema } from '../shared/upstream.js';

/**
 * SPEC §1's error table, in one place. Status codes map to a kind; bodies give the
 * upstream's own type and message; transport errors are transient only when the
 * request can not have reached the upstream.
 */
export const STATUS_KIND: ReadonlyMap<number, UpstreamErrorKind> = new Map<number, UpstreamErrorKind>([
  [400, 'permanent'],
  [404, 'permanent'],
  [413, 'permanent'],
  [422, 'permanent'],
  [401, 'account'],
  [402, 'account'],
  [403, 'account'],
  [429, 'rate_limited'],
  [409, 'transient'],
  [425, 'transient'],
  [500, 'transient'],
  [502, 'transient'],
  [503, 'transient'],
  [408, 'ambiguous'],
  [504, 'ambiguous'],
]);

/** Modelverse's moderation type: permanent whatever the status says. */
const MODERATION_TYPES = new Set(['sensitive_check_error', 'content_moderated', 'request_moderated']);

export function kindForStatus(status: number, type?: string): UpstreamErrorKind {
  if (type && MODERATION_TYPES.has(type) && status >= 400 && status < 500) return 'permanent';
  const known = STATUS_KIND.get(status);
  if (known) return known;
  if (status >= 500) return 'transient';
  if (status >= 400) return 'permanent';
  // 1xx/3xx: the request went nowhere useful (a redirect means a wrong base URL).
  return 'permanent';
}

export const DEFAULT_RETRY_AFTER_MS = 5000;
const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * `Retry-After` in both forms: delta-seconds (`2`, `1.5`) or an HTTP date. Missing or
 * unreadable: 5 s. Clamped to [0, 1 h] so a broken header cannot park the fleet.
 */
export function parseRetryAfter(header: string | string[] | undefined, now = Date.now()): number {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return DEFAULT_RETRY_AFTER_MS;
  const v = value.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = Math.round(Number(v) * 1000);
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return DEFAULT_RETRY_AFTER_MS;
    ms = at - now;
  }
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** The upstream's type and own message from an error body (JSON or not). */
export function readErrorBody(text: string): { type?: string; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    const snippet = oneLine(text, 200);
    return { message: snippet === '' ? 'empty body' : snippet };
  }
  const parsed = upstreamErrorBodySchema.safeParse(json);
  if (parsed.success) {
    const b = parsed.data as Record<string, unknown>;
    if (b.error && typeof b.error === 'object') {
      const e = b.error as { message?: string; type?: string };
      return { type: e.type, message: oneLine(e.message ?? 'no message', 300) };
    }
    if (typeof b.error === 'string') return { type: b.type as string | undefined, message: oneLine(b.error, 300) };
    if (typeof b.message === 'string') return { type: b.type as string | undefined, message: oneLine(b.message, 300) };
    if (typeof b.detail === 'string') return { message: oneLine(b.detail, 300) };
  }
  return { message: oneLine(text, 200) };
}

/** Classify a non-2xx answer. */
export function classifyHttpError(
  status: number,
  bodyText: string,
  headers: { retryAfter?: string | string[] | undefined; location?: string | string[] | undefined } = {},
  now = Date.now(),
): UpstreamError {
  const { type, message } = readErrorBody(bodyText);
  const kind = kindForStatus(status, type);
  let detail = message;
  if (status >= 300 && status < 400) detail = `upstream redirected${headers.location ? ` to ${String(headers.location)}` : ''}; check FLUX_API_BASE_URL`;
  if (kind === 'account' && status === 402) detail = `${message} (out of credits: top up, then run \`fluxq resume\`)`;
  else if (kind === 'account') detail = `${message} (check FLUX_API_KEY, then run \`fluxq resume\`)`;
  return new UpstreamError({
    kind,
    status,
    type,
    detail,
    retryAfterMs: kind === 'rate_limited' || headers.retryAfter !== undefined ? parseRetryAfter(headers.retryAfter, now) : undefined,
  });
}

/** Codes of errors raised before a connection existed: the request was never sent. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET' && code !== 'UND_ERR_ABORTED') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as { code?: string } | undefined)?.code;
}

/**
 * Classify an error that came instead of an answer. Refused, unresolvable or
 * unreachable: the request never left, so it is transient. A timeout or a reset after
 * connecting is ambiguous: the upstream may have generated (and billed) the image.
 */
export function classifyTransportError(err: unknown, opts: { timedOut: boolean; timeoutMs: number }): UpstreamError {
  if (opts.timedOut) {
    return new UpstreamError({ kind: 'ambiguous', detail: `no answer within FLUX_TIMEOUT_MS (${opts.timeoutMs} ms)`, cause: err });
  }
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && NOT_SENT_CODES.has(code)) {
    return new UpstreamError({ kind: 'transient', detail: `connection failed before the request was sent (${code})`, cause: err });
  }
  return new UpstreamError({ kind: 'ambiguous', detail: `connection lost after the request was sent (${code ?? oneLine(message, 120)})`, cause: err });
}
