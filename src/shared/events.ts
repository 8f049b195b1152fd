import type { RedisClient } from './redis.js';

/**
 * The durable events stream `{QUEUE_PREFIX}:events` (SPEC §5, §7). Every entry has the
 * field `type` and the field `data`, a JSON string. Every XADD goes through here or
 * through the finalize script, which writes the same shape.
 */
export const EVENT = {
  jobCompleted: 'job.completed',
  jobFailed: 'job.failed',
  jobExpired: 'job.expired',
  batchCompleted: 'batch.completed',
  queuePaused: 'queue.paused',
  queueResumed: 'queue.resumed',
  webhookFailed: 'webhook.failed',
} as const;

export type EventType = (typeof EVENT)[keyof typeof EVENT];

export interface StoredImage {
  bucket: string;
  key: string;
  contentType: string;
  bytes: number;
  sha256: string;
}

/** A batch's jobs by final state (SPEC §5, §8): its record and batch.completed carry them. */
export interface BatchTally {
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
  expired: number;
}

export interface EventData {
  'job.completed': {
    jobId: string;
    batchId?: string;
    tenant?: string;
    images: StoredImage[];
    attempts: number;
    possibly_billed: number;
    output_mp: number;
    input_mp: number;
    metadata?: Record<string, unknown>;
  };
  'job.failed': {
    jobId: string;
    batchId?: string;
    tenant?: string;
    error: string;
    attempts: number;
    possibly_billed: number;
    metadata?: Record<string, unknown>;
  };
  /** SPEC §8: the same fields as job.failed. */
  'job.expired': EventData['job.failed'];
  'batch.completed': BatchTally & {
    batchId: string;
    tenant?: string;
    output_mp: number;
    input_mp: number;
    possibly_billed: number;
    cost_usd: number;
    manifest: string;
  };
  'queue.paused': { reason: string; status?: number };
  'queue.resumed': { by: string };
  'webhook.failed': ({ jobId: string } | { batchId: string }) & { url: string; attempts: number; error: string };
}

export interface FluxqEvent<K extends EventType = EventType> {
  /** The stream entry id (`1700000000000-0`). */
  id: string;
  type: K;
  data: EventData[K];
}

/** Append one event, capping the stream at about `maxLen` entries (XADD MAXLEN ~). */
export async function emitEvent<K extends EventType>(
  redis: RedisClient,
  streamKey: string,
  maxLen: number,
  type: K,
  data: EventData[K],
): Promise<string> {
  const id = await redis.xadd(streamKey, 'MAXLEN', '~', String(maxLen), '*', 'type', type, 'data', JSON.stringify(data));
  return id ?? '';
}

/** Parse one raw stream entry (`[id, [field, value, …]]`). */
export function parseEventEntry(entry: [string, string[]]): FluxqEvent | undefined {
  const [id, fields] = entry;
  let type: string | undefined;
  let data: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'type') type = fields[i + 1];
    else if (fields[i] === 'data') data = fields[i + 1];
  }
  if (!type || data === undefined) return undefined;
  try {
    return { id, type: type as EventType, data: JSON.parse(data) as EventData[EventType] };
  } catch {
    return undefined;
  }
}

/** Order of two stream ids (`ms-seq`): negative, 0 or positive, like a comparator. */
export function compareEventIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map((p) => BigInt(p || '0'));
  const [bm = 0n, bs = 0n] = b.split('-').map((p) => BigInt(p || '0'));
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

/** Where the stream stands: its newest id ever written, and what it still holds. */
export interface StreamPosition {
  /** The id of the newest entry ever added ('0-0' for a stream that does not exist). */
  lastId: string;
  /** The id of the oldest entry still held, if any. */
  firstId: string | undefined;
  /** Entries held now. */
  length: number;
  /** Entries ever added (Redis ≥ 7.0). */
  entriesAdded: number | undefined;
  /** The newest id removed by XDEL (Redis ≥ 7.0; trimming does not move it). */
  maxDeletedId: string | undefined;
}

/** One XINFO STREAM: O(1), whatever the stream's length. */
export async function streamPosition(redis: RedisClient, streamKey: string): Promise<StreamPosition> {
  let reply: unknown[];
  try {
    reply = (await redis.xinfo('STREAM', streamKey)) as unknown[];
  } catch (err) {
    if (/no such key/i.test((err as Error).message)) return { lastId: '0-0', firstId: undefined, length: 0, entriesAdded: 0, maxDeletedId: undefined };
    throw err;
  }
  const info = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) info.set(String(reply[i]), reply[i + 1]);
  const first = info.get('first-entry');
  const added = info.get('entries-added');
  const maxDeleted = info.get('max-deleted-entry-id');
  return {
    lastId: String(info.get('last-generated-id') ?? '0-0'),
    firstId: Array.isArray(first) ? String(first[0]) : undefined,
    length: Number(info.get('length') ?? 0),
    entriesAdded: added === undefined || added === null ? undefined : Number(added),
    maxDeletedId: maxDeleted === undefined || maxDeleted === null ? undefined : String(maxDeleted),
  };
}

/**
 * Whether entries newer than `afterId` may be gone (the reader fell behind the MAXLEN
 * cap, or XDEL). Trimming removes the oldest first, so while the oldest entry held is
 * not newer than `afterId` nothing after it was trimmed. From '0-0' (the stream did not
 * exist yet) every entry ever added came later: one is gone when fewer are held.
 * Errs towards yes: the caller then re-reads what it follows once.
 */
export function trimmedAfter(pos: StreamPosition, afterId: string): boolean {
  if (pos.maxDeletedId !== undefined && compareEventIds(pos.maxDeletedId, afterId) > 0) return true;
  if (compareEventIds(afterId, '0-0') === 0 && pos.entriesAdded !== undefined) return pos.entriesAdded > pos.length;
  return pos.firstId !== undefined && compareEventIds(pos.firstId, afterId) > 0;
}

/**
 * Entries after `afterId`, waiting up to `blockMs` for one (XREAD BLOCK; give it a
 * connection of its own, a blocked one answers nothing else). `lastId` is where the
 * next read starts, also past entries that do not parse.
 */
export async function readEventsAfter(
  conn: RedisClient,
  streamKey: string,
  afterId: string,
  opts: { count: number; blockMs: number },
): Promise<{ events: FluxqEvent[]; lastId: string }> {
  const reply = (await conn.xread('COUNT', opts.count, 'BLOCK', opts.blockMs, 'STREAMS', streamKey, afterId)) as [string, [string, string[]][]][] | null;
  const entries = reply?.[0]?.[1] ?? [];
  const events: FluxqEvent[] = [];
  for (const entry of entries) {
    const ev = parseEventEntry(entry);
    if (ev) events.push(ev);
  }
  return { events, lastId: entries.length > 0 ? (entries[entries.length - 1]?.[0] ?? afterId) : afterId };
}

/**
 * SPEC §8: whether a tenant token's event feed (`GET /v1/events`) carries `ev`. The
 * operator (`undefined`) sees every event; a tenant sees its jobs' and batches' events
 * (`data.tenant`; none means `default`) and the queue-wide `queue.paused` / `queue.resumed`,
 * never another tenant's nor a `webhook.failed` (it names no tenant).
 */
export function eventVisibleTo(tenant: string | undefined): (ev: Pick<FluxqEvent, 'type' | 'data'>) => boolean {
  return (ev) => {
    if (tenant === undefined) return true;
    if (ev.type === EVENT.queuePaused || ev.type === EVENT.queueResumed) return true;
    if (ev.type === EVENT.webhookFailed) return false;
    const t = (ev.data as { tenant?: unknown }).tenant;
    return (typeof t === 'string' ? t : 'default') === tenant;
  };
}
