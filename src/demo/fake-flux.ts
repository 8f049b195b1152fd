import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeBase64Strict } from '../shared/base64.js';
import { sniffImageType } from '../shared/image-type.js';
import { INPUT_IMAGE_FIELDS, MAX_PIXELS } from '../shared/upstream.js';
import { imageSize } from './image-size.js';
import { synthJpeg, synthPng, TINY_WEBP, type SplitPng } from './synth-image.js';

/**
 * A faithful fake of the flux-2-pro upstream (SPEC §1, Modelverse flavour): the same
 * route, auth, body rules, response and error bodies, with fault injection and a log
 * of every request. The demo runs on it; tests and the bench drive it over HTTP.
 */

export type Fault =
  | { type: 'status'; status: number; errorType?: string; message?: string; retryAfter?: string; body?: string }
  | { type: 'moderation' }
  | { type: 'timeout' } // hold the request open, never answer
  | { type: 'reset' } // destroy the socket once the request is read
  | { type: 'truncated' } // a 200 whose JSON is cut in half
  | { type: 'not-json' } // a 200 with an HTML body
  | { type: 'empty-data' } // a 200 with data: []
  | { type: 'bad-base64' } // a 200 whose b64_json is not base64
  | { type: 'not-image' } // a 200 whose b64_json decodes to non-image bytes
  | { type: 'webp' } // a 200 with a WebP image
  | { type: 'images'; count: number } // a 200 with several images
  | { type: 'delay'; ms: number } // extra latency, then a normal answer
  | { type: 'dribble'; ms: number } // a normal 200, its body written in ten pieces over `ms`
  // a 200 of `bytes` in all (one PNG-headed image padded to size), generated as it is
  // written, never held whole; with a Content-Length unless `contentLength` is false
  | { type: 'oversized'; bytes: number; contentLength?: boolean };

export interface FaultRule {
  fault: Fault;
  /** Only requests whose prompt contains this (or matches it). */
  prompt?: string | RegExp;
  /** How many requests it applies to; unlimited when absent. */
  times?: number;
}

export interface CallRecord {
  seq: number;
  /** Arrival time (ms since epoch) and when the answer ended. */
  at: number;
  endedAt?: number;
  model: string;
  authorization: string | undefined;
  /** Body fields as sent, in order. */
  fields: string[];
  prompt?: string;
  seed?: number;
  width?: number;
  height?: number;
  output_format?: string;
  safety_tolerance?: unknown;
  /** sha256 of each input image's decoded bytes, by field. */
  inputSha256: Record<string, string>;
  status?: number;
  outcome: string;
  /** sha256 of each image served (for byte-identity checks). */
  servedSha256: string[];
  inFlightAtArrival: number;
  /** Body bytes written so far (the `oversized` fault counts them). */
  bytesSent?: number;
}

export interface FakeFluxOptions {
  apiKey?: string;
  /** Latency of every answer (ms). */
  latencyMs?: number;
  /** Uniform extra latency in [0, jitterMs). */
  jitterMs?: number;
  models?: string[];
  /** An account concurrency limit: over this many in flight → 429 with Retry-After. */
  concurrencyLimit?: number;
  /** Retry-After (seconds) sent with concurrency-limit 429s. */
  concurrencyRetryAfter?: string;
  /** Share of noisy rows in generated PNGs (bytes per pixel grows with it). */
  entropy?: number;
  defaultWidth?: number;
  defaultHeight?: number;
  /** Random faults (seeded): share of requests answered 500 / ambiguously. */
  random?: { rate5xx?: number; rateAmbiguous?: number; seed?: number };
  /** Called when a request arrives (after its body is read), before any answer. */
  onRequest?: (call: CallRecord) => void;
  host?: string;
  port?: number;
}

const ALLOWED_FIELDS = new Set<string>(['prompt', ...INPUT_IMAGE_FIELDS, 'seed', 'width', 'height', 'safety_tolerance', 'output_format', 'webhook_url', 'webhook_secret']);
const MP = 1024 * 1024;

function errorBody(message: string, type: string): string {
  return JSON.stringify({ error: { message, type } });
}

export class FakeFlux {
  readonly calls: CallRecord[] = [];
  readonly rules: FaultRule[] = [];
  inFlight = 0;
  maxInFlight = 0;
  #server: Server | undefined;
  #opts: Required<Pick<FakeFluxOptions, 'apiKey' | 'latencyMs' | 'jitterMs' | 'entropy' | 'defaultWidth' | 'defaultHeight'>> & FakeFluxOptions;
  #pngs = new Map<string, SplitPng>();
  #jpegs = new Map<string, (tag: string) => Buffer>();
  #rateLimitUntil = 0;
  #rateLimitRetryAfter = '5';
  #rng: () => number;
  #seq = 0;
  #held = new Set<ServerResponse>();
  url = '';

  constructor(opts: FakeFluxOptions = {}) {
    this.#opts = { apiKey: 'fake-flux-key', latencyMs: 50, jitterMs: 0, entropy: 0.5, defaultWidth: 1024, defaultHeight: 1024, ...opts };
    let s = (opts.random?.seed ?? 42) >>> 0 || 1;
    this.#rng = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 0x1_0000_0000;
    };
  }

  get apiKey(): string {
    return this.#opts.apiKey;
  }

  /** Change latency etc. while running. */
  configure(patch: Partial<FakeFluxOptions>): void {
    Object.assign(this.#opts, patch);
  }

  /** Add a fault rule; rules are tried in order, first match wins. */
  inject(rule: FaultRule): this {
    this.rules.push(rule);
    return this;
  }

  clearFaults(): void {
    this.rules.length = 0;
    this.#rateLimitUntil = 0;
  }

  /** Answer every request 429 (with this Retry-After) for the next `ms`. */
  rateLimitFor(ms: number, retryAfterSeconds = String(Math.ceil(ms / 1000))): void {
    this.#rateLimitUntil = Date.now() + ms;
    this.#rateLimitRetryAfter = retryAfterSeconds;
  }

  callsFor(prompt: string): CallRecord[] {
    return this.calls.filter((c) => c.prompt === prompt);
  }

  /** Calls answered 200 with images. */
  get successfulCalls(): CallRecord[] {
    return this.calls.filter((c) => c.status === 200 && c.servedSha256.length > 0);
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(errorBody(`fake failed: ${(err as Error).message}`, 'internal_error'));
        }
      });
    });
    this.#server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.#server?.listen(this.#opts.port ?? 0, this.#opts.host ?? '127.0.0.1', resolve));
    const addr = this.#server.address() as AddressInfo;
    this.url = `http://${addr.address}:${addr.port}/v1`;
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.#held) res.destroy();
    this.#held.clear();
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  #takeRule(prompt: string | undefined): Fault | undefined {
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i] as FaultRule;
      if (rule.prompt !== undefined) {
        if (prompt === undefined) continue;
        const hit = typeof rule.prompt === 'string' ? prompt.includes(rule.prompt) : rule.prompt.test(prompt);
        if (!hit) continue;
      }
      if (rule.times !== undefined) {
        rule.times--;
        if (rule.times <= 0) this.rules.splice(i, 1);
      }
      return rule.fault;
    }
    return undefined;
  }

  async #readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const text = await this.#readBody(req);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let counted = true;
    const release = () => {
      if (counted) {
        counted = false;
        this.inFlight--;
      }
    };
    res.on('close', release);
    res.on('finish', release);

    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const model = decodeURIComponent(path.replace(/^\/v1\//, '').replace(/^\//, ''));
    const call: CallRecord = {
      seq: ++this.#seq,
      at: started,
      model,
      authorization: req.headers.authorization,
      fields: [],
      inputSha256: {},
      outcome: 'pending',
      servedSha256: [],
      inFlightAtArrival: this.inFlight,
    };
    this.calls.push(call);
    const answer = (status: number, body: string | Buffer[], headers: Record<string, string> = {}) => {
      call.status = status;
      const parts = Array.isArray(body) ? body : [Buffer.from(body)];
      const length = parts.reduce((n, p) => n + p.length, 0);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(length), ...headers });
      for (const p of parts) res.write(p);
      res.end(() => {
        call.endedAt = Date.now();
      });
    };
    const fail = (status: number, message: string, type: string, headers: Record<string, string> = {}) => {
      call.outcome = `${status} ${type}`;
      answer(status, errorBody(message, type), headers);
    };

    if (req.method !== 'POST' || !path.startsWith('/v1/')) return fail(404, `no route ${req.method} ${path}`, 'param_error');
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return fail(400, 'request body must be a JSON object', 'param_error');
    }
    call.fields = Object.keys(body);
    if (typeof body.prompt === 'string') call.prompt = body.prompt;
    if (typeof body.seed === 'number') call.seed = body.seed;
    if (typeof body.width === 'number') call.width = body.width;
    if (typeof body.height === 'number') call.height = body.height;
    if (typeof body.output_format === 'string') call.output_format = body.output_format;
    if ('safety_tolerance' in body) call.safety_tolerance = body.safety_tolerance;

    // Input images: must decode to an image; record their sha256 so tests can compare.
    let inputPixels = 0;
    for (const field of INPUT_IMAGE_FIELDS) {
      const v = body[field];
      if (v === undefined) continue;
      const bytes = typeof v === 'string' ? decodeBase64Strict(v) : undefined;
      if (!bytes || !sniffImageType(bytes)) return fail(400, `${field} is not a base64 image`, 'param_error');
      call.inputSha256[field] = createHash('sha256').update(bytes).digest('hex');
      const size = imageSize(bytes);
      inputPixels += size ? size.width * size.height : MP;
    }
    this.#opts.onRequest?.(call);

    const expected = `Bearer ${this.#opts.apiKey}`;
    if (req.headers.authorization !== expected) return fail(401, 'invalid api key', 'auth_error');
    if (this.#opts.models && !this.#opts.models.includes(model)) return fail(404, `model ${model} not found`, 'param_error');
    const unknown = call.fields.filter((f) => !ALLOWED_FIELDS.has(f));
    if (unknown.length > 0) return fail(400, `unknown field(s): ${unknown.join(', ')}`, 'param_error');
    if (typeof body.prompt !== 'string' || body.prompt.trim() === '') return fail(400, 'prompt is required', 'param_error');
    for (const dim of ['width', 'height'] as const) {
      const d = body[dim];
      if (d !== undefined && (typeof d !== 'number' || !Number.isInteger(d) || d < 64 || d % 32 !== 0)) {
        return fail(400, `${dim} must be an integer >= 64 and a multiple of 32`, 'param_error');
      }
    }
    const width = (body.width as number | undefined) ?? this.#opts.defaultWidth;
    const height = (body.height as number | undefined) ?? this.#opts.defaultHeight;
    if (width * height > MAX_PIXELS) return fail(400, 'width x height must be at most 4 MP', 'param_error');
    if (body.safety_tolerance !== undefined && (typeof body.safety_tolerance !== 'string' || !/^[0-6]$/.test(body.safety_tolerance))) {
      return fail(400, 'safety_tolerance must be a string "0"-"6"', 'param_error');
    }
    if (body.output_format !== undefined && body.output_format !== 'png' && body.output_format !== 'jpeg') {
      return fail(400, 'output_format must be png or jpeg', 'param_error');
    }
    if (body.seed !== undefined && (typeof body.seed !== 'number' || !Number.isInteger(body.seed))) return fail(400, 'seed must be an integer', 'param_error');

    // Account-wide limits come before the work.
    if (Date.now() < this.#rateLimitUntil) {
      return fail(429, 'rate limit exceeded', 'rate_limit', { 'retry-after': this.#rateLimitRetryAfter });
    }
    if (this.#opts.concurrencyLimit !== undefined && this.inFlight > this.#opts.concurrencyLimit) {
      return fail(429, `too many active tasks (limit ${this.#opts.concurrencyLimit})`, 'rate_limit', { 'retry-after': this.#opts.concurrencyRetryAfter ?? '1' });
    }

    let fault = this.#takeRule(body.prompt);
    const random = this.#opts.random;
    if (!fault && random) {
      const r = this.#rng();
      if (r < (random.rate5xx ?? 0)) fault = { type: 'status', status: 500, errorType: 'internal_error', message: 'injected 500' };
      else if (r < (random.rate5xx ?? 0) + (random.rateAmbiguous ?? 0)) fault = { type: 'truncated' };
    }

    const latency = this.#opts.latencyMs + (this.#opts.jitterMs > 0 ? Math.random() * this.#opts.jitterMs : 0) + (fault?.type === 'delay' ? fault.ms : 0);
    if (fault?.type === 'timeout') {
      call.outcome = 'timeout';
      this.#held.add(res);
      res.on('close', () => this.#held.delete(res));
      return;
    }
    if (fault?.type === 'reset') {
      call.outcome = 'reset';
      req.socket.destroy();
      return;
    }
    if (latency > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, latency);
        res.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
      if (res.destroyed || res.writableEnded) {
        call.outcome = 'client went away';
        return;
      }
    }

    if (fault?.type === 'status') {
      call.outcome = `${fault.status} injected`;
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {};
      return answer(fault.status, fault.body ?? errorBody(fault.message ?? `injected ${fault.status}`, fault.errorType ?? 'internal_error'), headers);
    }
    if (fault?.type === 'moderation') return fail(400, 'prompt refused by moderation', 'sensitive_check_error');

    const outputPixels = width * height;
    const head = (n: number) =>
      `{"created":${Math.floor(Date.now() / 1000)},"input_mp":${Math.ceil(inputPixels / MP)},"output_mp":${Math.ceil(outputPixels / MP) * n},"total_pixels":${outputPixels * n + inputPixels},"data":[`;
    if (fault?.type === 'not-json') {
      call.outcome = 'not-json';
      return answer(200, '<html><body>502 Bad Gateway</body></html>', { 'content-type': 'text/html' });
    }
    if (fault?.type === 'empty-data') {
      call.outcome = 'empty-data';
      return answer(200, `${head(0)}]}`);
    }
    if (fault?.type === 'bad-base64') {
      call.outcome = 'bad-base64';
      return answer(200, `${head(1)}{"b64_json":"iVBORw0K!!not*base64??"}]}`);
    }
    if (fault?.type === 'not-image') {
      call.outcome = 'not-image';
      return answer(200, `${head(1)}{"b64_json":"${Buffer.from('this is plain text, not an image at all').toString('base64')}"}]}`);
    }

    if (fault?.type === 'oversized') return this.#oversized(res, call, head(1), fault);

    const count = fault?.type === 'images' ? fault.count : 1;
    const parts: Buffer[] = [Buffer.from(head(count))];
    for (let i = 0; i < count; i++) {
      const tag = `seq=${call.seq} image=${i} seed=${call.seed ?? ''}`;
      let b64: Buffer[];
      if (fault?.type === 'webp') {
        const bytes = TINY_WEBP;
        call.servedSha256.push(createHash('sha256').update(bytes).digest('hex'));
        b64 = [Buffer.from(bytes.toString('base64'))];
      } else if (body.output_format === 'jpeg') {
        const bytes = this.#jpeg(width, height)(tag);
        call.servedSha256.push(createHash('sha256').update(bytes).digest('hex'));
        b64 = [Buffer.from(bytes.toString('base64'))];
      } else {
        const png = this.#png(width, height);
        const tail = png.tail(tag);
        call.servedSha256.push(createHash('sha256').update(png.prefix).update(tail).digest('hex'));
        b64 = [png.prefixBase64, Buffer.from(tail.toString('base64'))];
      }
      parts.push(Buffer.from(`${i > 0 ? ',' : ''}{"b64_json":"`), ...b64, Buffer.from('"}'));
    }
    parts.push(Buffer.from(']}'));
    if (fault?.type === 'truncated') {
      call.outcome = 'truncated';
      call.servedSha256 = [];
      const whole = Buffer.concat(parts);
      return answer(200, [whole.subarray(0, Math.floor(whole.length / 2))]);
    }
    call.outcome = 'ok';
    if (fault?.type === 'dribble') return this.#dribble(res, call, parts, fault.ms);
    return answer(200, parts);
  }

  #dribble(res: ServerResponse, call: CallRecord, parts: Buffer[], ms: number): void {
    const whole = Buffer.concat(parts);
    call.status = 200;
    call.outcome = 'dribbling';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(whole.length) });
    const step = Math.ceil(whole.length / 10);
    let i = 0;
    const tick = () => {
      if (res.destroyed) {
        call.outcome = 'client went away mid-body';
        return;
      }
      res.write(whole.subarray(i * step, (i + 1) * step));
      i++;
      if (i < 10) setTimeout(tick, ms / 10);
      else {
        call.outcome = 'ok';
        res.end(() => {
          call.endedAt = Date.now();
        });
      }
    };
    tick();
  }

  /** Write a `bytes`-long 200 piece by piece as the socket drains: 64 KiB in memory at most. */
  #oversized(res: ServerResponse, call: CallRecord, head: string, fault: { bytes: number; contentLength?: boolean }): void {
    const PIECE = 65_536; // base64 characters per write (48 KiB of image)
    const first = Buffer.alloc((PIECE / 4) * 3);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]).copy(first);
    const firstPiece = Buffer.from(first.toString('base64'));
    const fill = Buffer.from(Buffer.alloc((PIECE / 4) * 3).toString('base64'));
    const open = Buffer.from(`${head}{"b64_json":"`);
    const close = Buffer.from('"}]}');
    const b64Length = Math.max(4, Math.floor((fault.bytes - open.length - close.length) / 4) * 4);
    const total = open.length + b64Length + close.length;
    call.status = 200;
    call.outcome = 'oversized';
    call.bytesSent = 0;
    res.writeHead(200, { 'content-type': 'application/json', ...(fault.contentLength === false ? {} : { 'content-length': String(total) }) });
    let written = 0; // base64 characters
    const send = (piece: Buffer): boolean => {
      call.bytesSent = (call.bytesSent ?? 0) + piece.length;
      return res.write(piece);
    };
    const pump = () => {
      while (!res.destroyed) {
        if (written >= b64Length) {
          send(close);
          res.end(() => {
            call.endedAt = Date.now();
          });
          return;
        }
        const n = Math.min(PIECE, b64Length - written);
        const piece = (written === 0 ? firstPiece : fill).subarray(0, n);
        written += n;
        if (!send(piece)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    res.once('close', () => {
      if (written < b64Length) call.outcome = 'client went away mid-body';
    });
    send(open);
    pump();
  }

  #png(width: number, height: number): SplitPng {
    const key = `${width}x${height}`;
    let png = this.#pngs.get(key);
    if (!png) {
      png = synthPng({ width, height, entropy: this.#opts.entropy, seed: this.#pngs.size + 1 });
      this.#pngs.set(key, png);
    }
    return png;
  }

  #jpeg(width: number, height: number): (tag: string) => Buffer {
    const key = `${width}x${height}`;
    let j = this.#jpegs.get(key);
    if (!j) {
      j = synthJpeg({ width, height, entropy: this.#opts.entropy, seed: 7 });
      this.#jpegs.set(key, j);
    }
    return j;
  }
}

export async function startFakeFlux(opts: FakeFluxOptions = {}): Promise<FakeFlux> {
  return new FakeFlux(opts).start();
}
