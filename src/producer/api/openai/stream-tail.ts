import { Cluster, type Redis } from 'ioredis';
import { waitForRedis, type RedisClient } from '../../../shared/redis.js';
import type { EventFeed, StreamEntry } from './job-final-waiter.js';

/**
 * One blocking XREAD on the events stream for the whole API process, handing every new
 * entry to its subscribers (live entries only). Redis sees one command per batch of
 * entries or per `blockMs` when idle, whatever the number of subscribers.
 */
export function tailEvents(redis: RedisClient, streamKey: string, opts: { blockMs?: number; onError?: (err: Error) => void } = {}): EventFeed & { close(): void } {
  const reader: RedisClient = redis instanceof Cluster ? redis.duplicate() : (redis as Redis).duplicate();
  reader.on('error', () => undefined);
  const subscribers = new Set<(e: StreamEntry) => void>();
  let closed = false;
  let started: Promise<void> | undefined;

  async function loop(lastId: string): Promise<void> {
    let last = lastId;
    while (!closed) {
      try {
        const reply = (await reader.xread('COUNT', 1000, 'BLOCK', opts.blockMs ?? 5000, 'STREAMS', streamKey, last)) as [string, [string, string[]][]][] | null;
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const f: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
            const entry: StreamEntry = { id, type: f.type ?? '', data: f.data ?? '' };
            for (const s of subscribers) s(entry);
          }
        }
      } catch (err) {
        if (closed) return;
        opts.onError?.(err as Error);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Start at the stream's current end, so a subscriber sees every entry added after it subscribed. */
  async function start(): Promise<void> {
    // The producer's connection options have no offline queue: wait until it is ready.
    await waitForRedis(reader, 'the events stream');
    const lastEntry = (await reader.xrevrange(streamKey, '+', '-', 'COUNT', 1)) as [string, string[]][];
    void loop(lastEntry[0]?.[0] ?? '0-0');
  }

  return {
    async subscribe(onEntry) {
      subscribers.add(onEntry);
      started ??= start().catch((err: unknown) => {
        started = undefined;
        subscribers.delete(onEntry);
        throw err;
      });
      await started;
      return () => subscribers.delete(onEntry);
    },
    close() {
      closed = true;
      reader.disconnect();
    },
  };
}
