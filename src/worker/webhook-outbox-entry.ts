/**
 * Reading one webhook outbox entry. The outbox is written by fluxq's own scripts, but a
 * list in Redis can hold anything (a bug of an older version, a hand-made RPUSH, a
 * truncated restore): one unreadable entry must not stop every webhook behind it, so an
 * entry is checked field by field and a bad one says what is wrong with it and, when it
 * can, whose webhook it was (never its secret or its payload).
 */
import type { WebhookDelivery } from './webhooks.js';

export type OutboxEntry =
  | { ok: true; delivery: WebhookDelivery }
  | {
      ok: false;
      /** What is wrong, one line, without any of the entry's values. */
      problem: string;
      /** Whatever could be read of who it was for, to report it. */
      id?: string;
      url?: string;
      jobId?: string;
      batchId?: string;
    };

/** `id` is the event's stream id (it becomes the delivery's BullMQ job id `wh-{id}`). */
const STREAM_ID = /^\d+-\d+$/;

const REQUIRED_STRINGS = ['id', 'url', 'secret', 'type', 'data'] as const;

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function parseOutboxEntry(raw: string): OutboxEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { ok: false, problem: 'not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, problem: 'not a JSON object' };
  const o = parsed as Record<string, unknown>;
  const known = {
    ...(str(o.id) ? { id: str(o.id) } : {}),
    ...(str(o.url) ? { url: str(o.url) } : {}),
    ...(str(o.jobId) ? { jobId: str(o.jobId) } : {}),
    ...(str(o.batchId) ? { batchId: str(o.batchId) } : {}),
  };
  const missing: string[] = REQUIRED_STRINGS.filter((f) => str(o[f]) === undefined);
  if (str(o.id) !== undefined && !STREAM_ID.test(o.id as string)) missing.push('id');
  if (typeof o.at !== 'number' || !Number.isFinite(o.at)) missing.push('at');
  if (!known.jobId && !known.batchId) missing.push('jobId or batchId');
  if (missing.length > 0) return { ok: false, problem: `missing or invalid ${missing.join(', ')}`, ...known };
  try {
    JSON.parse(o.data as string);
  } catch {
    return { ok: false, problem: 'its data is not valid JSON', ...known };
  }
  const delivery: WebhookDelivery = {
    id: o.id as string,
    url: o.url as string,
    secret: o.secret as string,
    type: o.type as string,
    data: o.data as string,
    at: o.at as number,
    ...(known.jobId ? { jobId: known.jobId } : {}),
    ...(known.batchId ? { batchId: known.batchId } : {}),
    // The job's trace context (SPEC §9); optional, and dropped when it is not text.
    ...(str(o.trace) ? { trace: str(o.trace) } : {}),
  };
  return { ok: true, delivery };
}
