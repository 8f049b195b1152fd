import { createHash } from 'node:crypto';
import type { FieldProblem } from '../../../shared/errors.js';

/**
 * One line of an OpenAI batch input file (SPEC §10): `{ custom_id, method: "POST", url:
 * "/v1/images/generations", body }`, `body` being the images request. Its envelope gets
 * a job id derived from the file's content and the custom_id, so the same file batched
 * again names the same jobs and pays for nothing already completed.
 */
export const BATCH_ENDPOINT = '/v1/images/generations';
const MAX_CUSTOM_ID = 512;
/** Fields of the OpenAI images request that never go into the envelope. */
const OPENAI_ONLY = ['response_format', 'n', 'size'] as const;

export interface BatchLine {
  customId: string;
  /** The request envelope (without id and batch). */
  envelope: Record<string, unknown>;
}

export type ParsedLine = { ok: true; value: BatchLine } | { ok: false; problems: FieldProblem[]; customId?: string };

/**
 * The job id of a line: `oai-` + 40 hex of sha256(tenant, file sha256, custom_id). The
 * tenant is part of it, so one tenant's re-run never answers from another's images.
 */
export function lineJobId(tenant: string, fileSha256: string, customId: string): string {
  return `oai-${createHash('sha256').update(tenant).update('\0').update(fileSha256).update('\0').update(customId).digest('hex').slice(0, 40)}`;
}

/**
 * The images request body as an envelope: `response_format` must be `b64_json` or `url`,
 * `n` 1, `size` `WxH` (width and height); the rest is the §1 request, checked by the
 * envelope's rules later.
 */
export function imagesBodyToEnvelope(body: Record<string, unknown>, where = ''): { envelope: Record<string, unknown>; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const envelope: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!(OPENAI_ONLY as readonly string[]).includes(k)) envelope[k] = v;
  if (body.response_format !== undefined && body.response_format !== 'b64_json' && body.response_format !== 'url') {
    problems.push({ path: `${where}response_format`, message: 'must be "b64_json" or "url"' });
  }
  if (body.n !== undefined && body.n !== 1) problems.push({ path: `${where}n`, message: 'must be 1 (one image per request)' });
  if (body.size !== undefined) {
    const m = typeof body.size === 'string' ? /^(\d{2,5})x(\d{2,5})$/.exec(body.size) : null;
    if (!m) problems.push({ path: `${where}size`, message: 'must be "WIDTHxHEIGHT", e.g. "1024x1024"' });
    else {
      envelope.width ??= Number(m[1]);
      envelope.height ??= Number(m[2]);
    }
  }
  for (const k of ['id', 'batch'] as const) {
    if (body[k] !== undefined) problems.push({ path: `${where}${k}`, message: `is set by fluxq (${k === 'id' ? 'from custom_id, or the Idempotency-Key header' : 'the batch id'}); remove it` });
  }
  return { envelope, problems };
}

/** A line's JSON value → its custom_id and envelope, or every problem with it (paths as in the line). */
export function parseBatchLine(value: unknown): ParsedLine {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { ok: false, problems: [{ path: '', message: 'must be a JSON object { custom_id, method, url, body }' }] };
  const v = value as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  for (const k of Object.keys(v)) if (!['custom_id', 'method', 'url', 'body'].includes(k)) problems.push({ path: k, message: 'is not a field of a batch request line' });
  const customId = typeof v.custom_id === 'string' ? v.custom_id : undefined;
  if (customId === undefined || customId.length === 0 || customId.length > MAX_CUSTOM_ID) {
    problems.push({ path: 'custom_id', message: `is required: a string of 1–${MAX_CUSTOM_ID} characters` });
  }
  if (v.method !== 'POST') problems.push({ path: 'method', message: 'must be "POST"' });
  if (v.url !== BATCH_ENDPOINT) problems.push({ path: 'url', message: `must be "${BATCH_ENDPOINT}"` });
  if (v.body === null || typeof v.body !== 'object' || Array.isArray(v.body)) {
    problems.push({ path: 'body', message: 'must be the images request object { prompt, … }' });
    return { ok: false, problems, ...(customId ? { customId } : {}) };
  }
  const { envelope, problems: bodyProblems } = imagesBodyToEnvelope(v.body as Record<string, unknown>, 'body.');
  problems.push(...bodyProblems);
  if (problems.length > 0 || customId === undefined) return { ok: false, problems, ...(customId ? { customId } : {}) };
  return { ok: true, value: { customId, envelope } };
}
