import { compareEventIds, parseEventEntry, readEventsAfter, streamPosition } from '../../shared/events.js';
import type { Logger } from '../../shared/logger.js';
import type { RedisClient } from '../../shared/redis.js';

/** One entry of `{QUEUE_PREFIX}:events`, as a subscriber of the hub sees it. */
export interface StreamEntry {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

export interface EventHub {
  /** Live entries from now on (or, with `after`, every entry after that id still in the stream, then live ones; none twice, none skipped). Returns unsubscribe. */
  subscribe(onEntry: (e: StreamEntry) => void, opts?: { after?: string; filter?: (e: StreamEntry) => boolean; onDropped?: (why: string) => void }): () => void;
  close(): Promise<void>;
}

export interface EventHubDeps {
  /** A non-blocking connection: the start position and the replays (XINFO, XRANGE). The blocking reads get a duplicate of it. */
  redis: RedisClient;
  /** `{QUEUE_PREFIX}:events` (RedisKeys.events). */
  streamKey: string;
  logger?: Logger;
}

export interface EventHubOptions {
  /** Longest XREAD BLOCK, in ms (default 5000): an idle hub costs one command per this. */
  blockMs?: number;
  /** Entries per XREAD (default 500). */
  count?: number;
  /** Entries per XRANGE page of a replay (default 500). */
  replayPage?: number;
  /**
   * Live entries one subscriber may have waiting while its replay still runs (default
   * 10000). More, and it is dropped (`onDropped`): memory never grows with a slow one.
   */
  maxBuffered?: number;
}

interface Subscriber {
  onEntry: (e: StreamEntry) => void;
  filter: ((e: StreamEntry) => boolean) | undefined;
  onDropped: ((why: string) => void) | undefined;
  /** The newest id handed over (or skipped by the filter); later entries only. */
  lastId: string;
  /** Live entries held while the replay runs; undefined once live. */
  pending: StreamEntry[] | undefined;
}

/** A stream id a client may send (`ms` or `ms-seq`). */
export const STREAM_ID = /^\d{1,20}(-\d{1,20})?$/;

/**
 * One blocking reader per process that fans `{QUEUE_PREFIX}:events` out to any number of
 * subscribers (SSE clients, waiters): a single XREAD BLOCK loop on a connection of its
 * own, whatever the number of subscribers, so their number does not change the Redis
 * command rate. A subscriber with `after` first replays what the stream holds after that
 * id with XRANGE pages (once, on the shared connection) while the live entries the loop
 * reads meanwhile wait in its bounded buffer; then the buffer is handed over and it is
 * live. Ids only grow, so "deliver only ids above the last one delivered" makes the join
 * free of gaps and duplicates: the replay reads up to the stream's end, which is at or
 * past where the loop stood when it subscribed.
 */
export function createEventHub(deps: EventHubDeps, opts: EventHubOptions = {}): EventHub {
  const blockMs = opts.blockMs ?? 5000;
  const count = opts.count ?? 500;
  const replayPage = opts.replayPage ?? 500;
  const maxBuffered = opts.maxBuffered ?? 10_000;
  const log = deps.logger?.child({ component: 'event-hub' });
  const subs = new Set<Subscriber>();
  let closed = false;
  let reader: RedisClient | undefined;
  let loop: Promise<void> | undefined;

  const drop = (sub: Subscriber, why: string) => {
    if (!subs.delete(sub)) return;
    sub.pending = undefined;
    try {
      sub.onDropped?.(why);
    } catch (err) {
      log?.warn({ err }, 'onDropped threw');
    }
  };

  const hand = (sub: Subscriber, e: StreamEntry) => {
    if (compareEventIds(e.id, sub.lastId) <= 0) return;
    sub.lastId = e.id;
    try {
      if (!sub.filter || sub.filter(e)) sub.onEntry(e);
    } catch (err) {
      log?.warn({ err }, 'a subscriber threw; dropped');
      drop(sub, `the subscriber threw: ${(err as Error).message}`);
    }
  };

  const fanOut = (entries: StreamEntry[]) => {
    for (const sub of [...subs]) {
      for (const e of entries) {
        if (!subs.has(sub)) break;
        if (sub.pending) {
          if (sub.pending.length >= maxBuffered) {
            drop(sub, `more than ${maxBuffered} live entries waited while its replay ran`);
            break;
          }
          sub.pending.push(e);
        } else hand(sub, e);
      }
    }
  };

  const run = async () => {
    const conn = (deps.redis as { duplicate(): RedisClient }).duplicate();
    conn.on('error', () => undefined);
    reader = conn;
    let cursor: string | undefined;
    let failures = 0;
    while (!closed) {
      try {
        cursor ??= (await streamPosition(deps.redis, deps.streamKey)).lastId;
        const read = await readEventsAfter(conn, deps.streamKey, cursor, { count, blockMs });
        cursor = read.lastId;
        failures = 0;
        if (read.events.length > 0) fanOut(read.events.map(toEntry));
      } catch (err) {
        if (closed) break;
        if (failures++ === 0) log?.warn({ err: (err as Error).message }, 'events stream read failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(failures, 6), 5000)));
      }
    }
  };

  const replay = async (sub: Subscriber, after: string) => {
    let start = /^0+(-0+)?$/.test(after) ? '-' : `(${after}`;
    for (;;) {
      const page = (await deps.redis.xrange(deps.streamKey, start, '+', 'COUNT', replayPage)) as [string, string[]][];
      for (const raw of page) {
        if (!subs.has(sub)) return;
        const ev = parseEventEntry(raw);
        if (ev) hand(sub, toEntry(ev));
        else if (compareEventIds(raw[0], sub.lastId) > 0) sub.lastId = raw[0];
      }
      const last = page[page.length - 1];
      if (page.length < replayPage || !last) break;
      start = `(${last[0]}`;
    }
    const waiting = sub.pending ?? [];
    sub.pending = undefined;
    for (const e of waiting) {
      if (!subs.has(sub)) return;
      hand(sub, e);
    }
  };

  return {
    subscribe(onEntry, sopts = {}) {
      if (closed) throw new Error('the event hub is closed');
      const after = sopts.after;
      if (after !== undefined && !STREAM_ID.test(after)) throw new Error(`"${after}" is not a stream id (ms or ms-seq)`);
      const sub: Subscriber = { onEntry, filter: sopts.filter, onDropped: sopts.onDropped, lastId: after ?? '0-0', pending: after !== undefined ? [] : undefined };
      subs.add(sub);
      loop ??= run();
      if (after !== undefined) {
        replay(sub, after).catch((err: unknown) => drop(sub, `replay failed: ${(err as Error).message}`));
      }
      return () => {
        subs.delete(sub);
        sub.pending = undefined;
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const sub of [...subs]) drop(sub, 'the event hub closed');
      reader?.disconnect();
      await loop;
    },
  };
}

function toEntry(ev: { id: string; type: string; data: unknown }): StreamEntry {
  const data = ev.data !== null && typeof ev.data === 'object' && !Array.isArray(ev.data) ? (ev.data as Record<string, unknown>) : { value: ev.data };
  return { id: ev.id, type: ev.type, data };
}
