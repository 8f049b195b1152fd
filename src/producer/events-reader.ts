import { parseEventEntry, type EventType, type FluxqEvent } from '../shared/events.js';
import { waitForRedis, type RedisClient } from '../shared/redis.js';

export interface ReadEventsOptions {
  /** Consumer group: every group sees every event; members of one group share them. */
  group: string;
  /** This reader's name in the group; restart with the same name to resume. */
  consumer: string;
  /** Where a new group starts: '0' (everything the stream still holds, default) or '$' (only new events). */
  from?: '0' | '$';
  /** Only these types are yielded (others are acknowledged and skipped). */
  types?: readonly EventType[];
  count?: number;
  blockMs?: number;
  /**
   * true (default): an event is acknowledged when you ask for the next one or leave the
   * loop. false: call `ack()` on each event yourself (to keep a failed one pending).
   */
  autoAck?: boolean;
  signal?: AbortSignal;
}

export type ReadEvent = FluxqEvent & { ack(): Promise<void> };

/**
 * Read `{QUEUE_PREFIX}:events` as an async iterator through a Redis consumer group, so a
 * downstream service resumes where it stopped: events delivered to this consumer but
 * not acknowledged (it died mid-way) come first, then new ones. Uses its own connection
 * for the blocking reads.
 */
export async function* readEvents(redis: RedisClient, streamKey: string, opts: ReadEventsOptions): AsyncGenerator<ReadEvent, void, undefined> {
  const conn = (redis as { duplicate(): RedisClient }).duplicate();
  conn.on('error', () => undefined);
  const autoAck = opts.autoAck ?? true;
  const ack = (id: string) => conn.xack(streamKey, opts.group, id).then(() => undefined);
  let unacked: string | undefined;
  try {
    await waitForRedis(conn, 'the events stream');
    try {
      await conn.xgroup('CREATE', streamKey, opts.group, opts.from ?? '0', 'MKSTREAM');
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
    let cursor = '0'; // first this consumer's pending entries, then '>' for new ones
    while (!opts.signal?.aborted) {
      const args: (string | number)[] = ['GROUP', opts.group, opts.consumer, 'COUNT', opts.count ?? 100];
      if (cursor === '>') args.push('BLOCK', opts.blockMs ?? 1000);
      const read = conn.xreadgroup as unknown as (...a: (string | number)[]) => Promise<[string, [string, string[]][]][] | null>;
      const reply = await read.call(conn, ...args, 'STREAMS', streamKey, cursor);
      const entries = reply?.[0]?.[1] ?? [];
      if (cursor !== '>' && entries.length === 0) {
        cursor = '>';
        continue;
      }
      for (const entry of entries) {
        if (cursor !== '>' && entry[1] === null) {
          await ack(entry[0]); // trimmed from the stream while pending
          continue;
        }
        const event = parseEventEntry(entry);
        if (!event || (opts.types && !opts.types.includes(event.type))) {
          await ack(entry[0]);
          continue;
        }
        unacked = autoAck ? entry[0] : undefined;
        yield { ...event, ack: () => ack(entry[0]) };
        if (unacked) await ack(unacked);
        unacked = undefined;
      }
      if (cursor !== '>') cursor = entries.length > 0 ? (entries[entries.length - 1]?.[0] ?? '0') : '>';
    }
  } finally {
    if (unacked) await ack(unacked).catch(() => undefined);
    conn.disconnect();
  }
}
