import type { RedisClient } from './redis.js';

/**
 * The durable events stream `{QUEUE_PREFIX}:events` (SPEC §5, §7). Every entry has the
 * field `type` and the field `data`, a JSON string. Every XADD goes through here or
 * through the finalize script, which writes the same shape.
 */
export const EVENT = {
  jobCompleted: 'job.completed',
  jobFailed: 'job.failed',
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

export interface EventData {
  'job.completed': {
    jobId: string;
    batchId?: string;
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
    error: string;
    attempts: number;
    possibly_billed: number;
    metadata?: Record<string, unknown>;
  };
  'batch.completed': {
    batchId: string;
    total: number;
    completed: number;
    failed: number;
    cancelled: number;
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
