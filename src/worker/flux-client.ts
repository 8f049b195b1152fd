import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { DEFAULT_MAX_RESPONSE_BYTES, type Config } from '../shared/config.js';
import { ConfigError, UpstreamError } from '../shared/errors.js';
import type { Secret } from '../shared/secret.js';
import { ATTR, SPAN, SpanKind, inSpan } from '../shared/spans.js';
import type { UpstreamBody } from '../shared/upstream.js';
import { classifyHttpError, classifyTransportError } from './classify.js';
import type { DecodedResponse } from './decode.js';
import { decodeUpstreamStream } from './decode-stream.js';
import { jsonBody } from './request-body.js';

export interface FluxClientOptions {
  /** `FLUX_API_BASE_URL`, without a trailing slash. */
  baseUrl: string;
  apiKey: Secret;
  /** `FLUX_TIMEOUT_MS`: the whole call, headers and body. */
  timeoutMs: number;
  /** Keep-alive sockets to the upstream; sized to the worker's concurrency. */
  connections: number;
  /** A dispatcher of the caller's (tests, proxies); the client then owns none. */
  dispatcher?: Dispatcher;
  /** `MAX_RESPONSE_BYTES`: the largest 200 answer read (default 134217728); past it the call is ambiguous. */
  maxResponseBytes?: number;
}

/** An error answer's body is read this far, for its type and message; the rest is dropped. */
export const MAX_ERROR_BODY_BYTES = 65_536;

/** The first `max` bytes of an error body as text; the stream is destroyed past them. */
async function readBoundedText(body: AsyncIterable<Buffer> & { destroy(): unknown }, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    chunks.push(chunk.subarray(0, max - n));
    n += Math.min(chunk.length, max - n);
    if (n >= max) break; // leaving the loop destroys the stream
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface UpstreamAnswer {
  status: number;
  /** The 200 body, decoded strictly while it arrived (decode-stream.ts). */
  decoded: DecodedResponse;
  latencyMs: number;
}

/** Called once per upstream call with its outcome, for metrics. */
export type UpstreamObserver = (outcome: { status: number | 'error'; latencyMs: number; kind?: string }) => void;

/**
 * The flux-2-pro HTTP client: `POST {base}/{model}` with `Authorization: Bearer`, a
 * JSON body, a deadline, and a keep-alive pool. Every failure is an UpstreamError
 * classified per SPEC §1; none carries the API key.
 */
export class FluxClient {
  readonly #opts: FluxClientOptions;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  #observer: UpstreamObserver | undefined;
  readonly #host: string;

  /** The client a worker of this configuration uses: pool sized to WORKER_CONCURRENCY. */
  static fromConfig(config: Config): FluxClient {
    if (!config.flux.apiKey) throw new ConfigError(['FLUX_API_KEY (or MODELVERSE_API_KEY) is required by the worker']);
    return new FluxClient({
      baseUrl: config.flux.baseUrl,
      apiKey: config.flux.apiKey,
      timeoutMs: config.flux.timeoutMs,
      connections: config.worker.concurrency,
      maxResponseBytes: config.flux.maxResponseBytes,
    });
  }

  constructor(opts: FluxClientOptions) {
    this.#opts = opts;
    this.#host = URL.canParse(opts.baseUrl) ? new URL(opts.baseUrl).host : '';
    this.#ownsDispatcher = opts.dispatcher === undefined;
    this.#dispatcher =
      opts.dispatcher ??
      new Agent({
        connections: Math.max(1, opts.connections),
        pipelining: 1,
        keepAliveTimeout: 30_000,
        // Our own deadline (AbortSignal) fires first; these only bound a broken socket.
        headersTimeout: opts.timeoutMs + 5000,
        bodyTimeout: opts.timeoutMs + 5000,
        connect: { timeout: Math.min(10_000, opts.timeoutMs) },
      });
  }

  /** Observe every call's outcome (metrics, adaptive concurrency). */
  observe(observer: UpstreamObserver): void {
    this.#observer = observer;
  }

  urlFor(model: string): string {
    return `${this.#opts.baseUrl}/${encodeURIComponent(model)}`;
  }

  /**
   * One upstream call, in a `flux.generate` span: its HTTP status, its error class
   * (SPEC §1) and, answered, the output megapixels (SPEC §9).
   */
  generate(model: string, body: UpstreamBody, signal?: AbortSignal): Promise<UpstreamAnswer> {
    return inSpan(SPAN.generate, { kind: SpanKind.CLIENT, attributes: { [ATTR.serverAddress]: this.#host, 'fluxq.model': model } }, async (span) => {
      try {
        const answer = await this.#generate(model, body, signal);
        span.setAttributes({ [ATTR.httpStatus]: answer.status, [ATTR.outputMp]: answer.decoded.meta.output_mp });
        return answer;
      } catch (err) {
        if (err instanceof UpstreamError) {
          span.setAttribute(ATTR.errorClass, err.kind);
          if (err.status !== undefined) span.setAttribute(ATTR.httpStatus, err.status);
        }
        throw err;
      }
    });
  }

  async #generate(model: string, body: UpstreamBody, signal?: AbortSignal): Promise<UpstreamAnswer> {
    const started = performance.now();
    const deadline = AbortSignal.timeout(this.#opts.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    const key = this.#opts.apiKey.reveal();
    const scrub = (text: string) => (key.length >= 4 ? text.split(key).join('[redacted]') : text);
    let status = 0;
    try {
      // The same bytes as JSON.stringify(body), made while the socket takes them: the
      // base64 inputs are never copied into one big string (request-body.ts).
      const payload = jsonBody(body);
      const res = await request(this.urlFor(model), {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json', 'content-length': String(payload.length) },
        body: Readable.from(payload.pieces(), { objectMode: false }),
        dispatcher: this.#dispatcher,
        signal: combined,
      });
      status = res.statusCode;
      if (status >= 200 && status < 300) {
        const length = Number(res.headers['content-length']);
        try {
          const decoded = await decodeUpstreamStream(res.body, Number.isFinite(length) ? length : undefined, this.#opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
          const latencyMs = performance.now() - started;
          this.#observer?.({ status, latencyMs });
          return { status, decoded, latencyMs };
        } catch (err) {
          res.body.destroy(); // an answer refused unread (too large) must not hold the socket
          if (err instanceof UpstreamError) this.#observer?.({ status, latencyMs: performance.now() - started, kind: err.kind });
          throw err;
        }
      }
      const bodyText = await readBoundedText(res.body, MAX_ERROR_BODY_BYTES);
      const latencyMs = performance.now() - started;
      const err = classifyHttpError(status, scrub(bodyText), {
        retryAfter: res.headers['retry-after'],
        location: res.headers.location,
      });
      this.#observer?.({ status, latencyMs, kind: err.kind });
      throw err;
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      // The caller's own signal (shutdown, cancel) is not an upstream outcome: rethrow it.
      if (signal?.aborted && !deadline.aborted) throw err;
      const classified = classifyTransportError(err, { timedOut: deadline.aborted, timeoutMs: this.#opts.timeoutMs });
      this.#observer?.({ status: status || 'error', latencyMs: performance.now() - started, kind: classified.kind });
      throw classified;
    }
  }

  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }
}
