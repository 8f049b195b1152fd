import { loadConfig } from '../../shared/config.js';
import { compareEventIds, parseEventEntry, readEventsAfter, streamPosition, type FluxqEvent } from '../../shared/events.js';
import { CliError, EXIT } from '../../shared/exit-codes.js';
import { redisKeys } from '../../shared/keys.js';
import { createRedis, waitForRedis, type RedisClient } from '../../shared/redis.js';
import { STREAM_ID } from '../api/event-hub.js';
import { parseEventTypes, selectEvents } from '../event-selector.js';
import type { CommandIO } from './io.js';

export interface EventsCommandOptions {
  batch?: string;
  job?: string;
  /** `t1,t2`. */
  types?: string;
  /** Print entries after this stream id (`0`: the whole stream). */
  after?: string;
  follow?: boolean;
}

const PAGE = 500;

/**
 * `fluxq events [--batch B] [--job J] [--types t1,t2] [--after ID] [--follow]` (SPEC §9):
 * the events stream as JSON lines `{ id, type, data }`, the entries SSE would send.
 * Without --follow: what the stream holds after --after (default: all of it) up to where
 * it stood at the start, then exit 0. With --follow: after --after (default: from now on),
 * then new entries as they come (one blocking XREAD at a time) until `stop` or the reader
 * goes away. Waits for stdout to drain (a slow `jq` slows the reads down, never memory);
 * a closed pipe (`| head`) ends it quietly with 0.
 */
export async function eventsCommand(opts: EventsCommandOptions, io: CommandIO, stop?: Promise<unknown>): Promise<number> {
  if (opts.after !== undefined && !STREAM_ID.test(opts.after)) {
    throw new CliError(`--after "${opts.after}" is not a stream entry id (ms-seq, as printed in "id", or 0 for the whole stream)`, EXIT.usage);
  }
  const matches = selectEvents({ ...(opts.batch ? { batch: opts.batch } : {}), ...(opts.job ? { job: opts.job } : {}), ...(opts.types ? { types: parseEventTypes(opts.types, '--types') ?? [] } : {}) });
  const config = loadConfig(io.env, 'producer');
  const key = redisKeys(config.queue.prefix, config.queue.name).events;
  const redis = createRedis(config, { role: 'producer', connectionName: 'fluxq-events' });
  redis.on('error', () => undefined);
  let reader: RedisClient | undefined;
  let done = false;
  const end = () => {
    done = true;
    reader?.disconnect();
  };
  let failed: Error | undefined;
  const onStdoutError = (err: NodeJS.ErrnoException) => {
    // The reader went away (`| head`): stop quietly. Anything else ends the command with 1.
    if (err.code !== 'EPIPE' && !done) failed = err;
    end();
  };
  io.stdout.on('error', onStdoutError);
  void stop?.then(end);

  /** One line; resolves once stdout takes more (or is gone). */
  const print = async (e: FluxqEvent) => {
    if (done || !matches(e as { type: string; data: Record<string, unknown> })) return;
    const more = io.stdout.write(`${JSON.stringify({ id: e.id, type: e.type, data: e.data })}\n`);
    if (!more && !done) {
      await new Promise<void>((resolve) => {
        const go = () => {
          io.stdout.off('drain', go);
          io.stdout.off('error', go);
          clearInterval(poll);
          resolve();
        };
        const poll = setInterval(() => done && go(), 200);
        io.stdout.once('drain', go);
        io.stdout.once('error', go);
      });
    }
  };

  const outcome = () => {
    if (failed) throw new CliError(`cannot write to stdout: ${failed.message}`, EXIT.runtime);
    return EXIT.ok;
  };
  try {
    await waitForRedis(redis, 'the events stream');
    if (!opts.follow) {
      const until = (await streamPosition(redis, key)).lastId;
      let start = opts.after === undefined || /^0+(-0+)?$/.test(opts.after) ? '-' : `(${opts.after}`;
      while (!done) {
        const page = (await redis.xrange(key, start, until, 'COUNT', PAGE)) as [string, string[]][];
        for (const raw of page) {
          const e = parseEventEntry(raw);
          if (e) await print(e);
          if (done) break;
        }
        const last = page[page.length - 1];
        if (page.length < PAGE || !last || compareEventIds(last[0], until) >= 0) break;
        start = `(${last[0]}`;
      }
      return outcome();
    }
    reader = (redis as { duplicate(): RedisClient }).duplicate();
    reader.on('error', () => undefined);
    await waitForRedis(reader, 'the events stream');
    let cursor = opts.after ?? (await streamPosition(redis, key)).lastId;
    while (!done) {
      try {
        const read = await readEventsAfter(reader, key, cursor, { count: PAGE, blockMs: 2000 });
        cursor = read.lastId;
        for (const e of read.events) await print(e);
      } catch (err) {
        if (done) break;
        throw err;
      }
    }
    return outcome();
  } finally {
    end();
    redis.disconnect();
  }
}
