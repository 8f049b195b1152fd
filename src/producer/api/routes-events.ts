import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ValidationError } from '../../shared/errors.js';
import { batchIdProblem } from '../../shared/ids.js';
import type { Logger } from '../../shared/logger.js';
import { parseEventTypes, selectEvents, type EventSelector } from '../event-selector.js';
import { STREAM_ID, type EventHub, type StreamEntry } from './event-hub.js';

export interface EventStreamOptions {
  /** A `: keep-alive` comment line this often, in ms (SPEC §9: 15 s). */
  keepAliveMs?: number;
  /**
   * Bytes one client may have waiting in its socket's write buffer from earlier rounds
   * of the hub (default 1 MiB). A client that reads slower than events come is cut off
   * past it (it reconnects with Last-Event-ID and misses nothing still in the stream);
   * the API holds at most this plus one XREAD reply's worth for it.
   */
  maxBufferedBytes?: number;
}

type EventsRequest = FastifyRequest<{ Params: { id?: string }; Querystring: { batch?: string; job?: string; types?: string; after?: string } }>;

/**
 * TENANT HOOK (SPEC §8): the one place tenant scoping will filter the live events. When
 * entries carry `data.tenant`, return false here for an entry the caller's tenant may not
 * see; until then every authenticated caller sees every entry.
 */
function visibleToCaller(_req: FastifyRequest, _entry: StreamEntry): boolean {
  return true;
}

/** One SSE event: `id:`, `event:`, and the entry's data JSON on one `data:` line. */
export function sseFrame(e: StreamEntry): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

function readRequest(req: EventsRequest): { selector: EventSelector; after: string | undefined } {
  const q = req.query;
  const batch = req.params.id ?? q.batch;
  if (batch !== undefined) {
    const why = batchIdProblem(batch);
    if (why) throw new ValidationError([{ path: 'batch', message: why }], `batch "${batch}" ${why}`);
  }
  const header = req.headers['last-event-id'];
  // The header wins: a browser reconnecting keeps the first URL's ?after= and sends the newest id it saw.
  const after = (Array.isArray(header) ? header[0] : header)?.trim() || q.after;
  if (after !== undefined && !STREAM_ID.test(after)) {
    throw new ValidationError([{ path: header ? 'Last-Event-ID' : 'after', message: `"${after}" is not a stream entry id (ms-seq, or 0 for the whole stream)` }]);
  }
  const types = parseEventTypes(q.types);
  return { selector: { ...(batch !== undefined ? { batch } : {}), ...(q.job !== undefined ? { job: q.job } : {}), ...(types ? { types } : {}) }, after };
}

/**
 * `GET /v1/events` and `GET /v1/batches/:id/events` (SPEC §9): server-sent events from the
 * process's one event hub. Each client is a subscriber with its filter; nothing here
 * touches Redis per client but the one replay a resume asks for.
 */
export function eventRoutes(app: FastifyInstance, hub: EventHub, logger: Logger, opts: EventStreamOptions = {}): void {
  const keepAliveMs = opts.keepAliveMs ?? 15_000;
  const maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
  const log = logger.child({ component: 'sse' });
  let open = 0;

  const stream = (req: EventsRequest, reply: FastifyReply) => {
    const { selector, after } = readRequest(req);
    const matches = selectEvents(selector);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': fluxq events\n\n');
    open++;
    let finished = false;
    let unsubscribe = () => {};
    let burst = 0; // bytes written in this round of the hub
    let burstEnds = false;
    const finish = (why?: string) => {
      if (finished) return;
      finished = true;
      open--;
      clearInterval(keepAlive);
      unsubscribe();
      if (why) log.info({ why, open }, 'event stream client cut off');
      if (why && res.writableLength > 0) res.destroy();
      else res.end();
    };
    const keepAlive = setInterval(() => {
      if (res.writableLength > maxBufferedBytes) finish(`the client stopped reading (over ${maxBufferedBytes} bytes waiting)`);
      else res.write(': keep-alive\n\n');
    }, keepAliveMs);
    res.on('close', () => finish());
    unsubscribe = hub.subscribe(
      (e) => {
        if (finished) return;
        // What waits from earlier rounds counts, not the round being written now (the hub
        // hands over one XREAD reply at once): a reading client drains between rounds.
        if (res.writableLength - burst > maxBufferedBytes) {
          finish(`the client read too slowly (over ${maxBufferedBytes} bytes waiting)`);
          return;
        }
        const frame = sseFrame(e);
        res.write(frame);
        burst += Buffer.byteLength(frame);
        if (!burstEnds) {
          burstEnds = true;
          setImmediate(() => {
            burst = 0;
            burstEnds = false;
          });
        }
      },
      { ...(after !== undefined ? { after } : {}), filter: (e) => visibleToCaller(req, e) && matches(e), onDropped: (why) => finish(why) },
    );
  };

  app.get('/v1/events', stream);
  app.get('/v1/batches/:id/events', stream);
}
