import { createHash, type Hash } from 'node:crypto';
import { ambiguous, answerTooLarge, checkImage, checkResponseShape, parseResponseJson, type DecodedResponse } from './decode.js';

/**
 * Decode a 200 body while it arrives, without ever holding it whole: each `b64_json`
 * value is base64-decoded chunk by chunk straight into its image buffer (sized from
 * Content-Length) and hashed on the way; only the small JSON around the values is kept
 * and parsed at the end. A 4 MP answer (~12 MB of base64) then costs its 9 MB of image,
 * with no 12 MB string, joined buffer or JSON copy, and no long step on the event loop.
 * As strict as `decodeUpstreamResponse`: standard alphabet, whole quads, padding only at
 * the end; the one JSON escape base64 can need, `\/`, is undone in the stream.
 */

const KEY = Buffer.from('"b64_json"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SLASH = 0x2f;
const EQUALS = 0x3d;
const EMPTY = Buffer.alloc(0);
/** The JSON around the images is small; a body that is mostly not image is no answer. */
export const MAX_SKELETON_BYTES = 1 << 20;

interface Value {
  out: Buffer | undefined;
  pieces: Buffer[];
  written: number;
  hash: Hash;
  /** Base64 characters (0–3) waiting for the rest of their quad, and a pending backslash. */
  carry: Buffer;
  escape: boolean;
  padded: boolean;
  invalid: boolean;
}

export class StreamingDecoder {
  #inValue = false;
  #skeleton: Buffer[] = [];
  #skeletonBytes = 0;
  /** The tail of the skeleton still being searched for a key (it may straddle chunks). */
  #scan: Buffer = Buffer.alloc(0);
  #values: Value[] = [];
  #seen = 0;
  readonly #contentLength: number | undefined;

  /** `contentLength` (when the answer sent one) sizes each image buffer up front. */
  constructor(contentLength?: number) {
    this.#contentLength = contentLength !== undefined && Number.isFinite(contentLength) && contentLength > 0 ? contentLength : undefined;
  }

  write(chunk: Buffer): void {
    this.#seen += chunk.length;
    let at = 0;
    while (at < chunk.length) at = this.#inValue ? this.#valueBytes(chunk, at) : this.#skeletonBytesFrom(chunk, at);
  }

  #pushSkeleton(bytes: Buffer): void {
    if (bytes.length === 0 || this.#skeletonBytes > MAX_SKELETON_BYTES) return;
    this.#skeleton.push(bytes);
    this.#skeletonBytes += bytes.length;
  }

  #skeletonBytesFrom(chunk: Buffer, from: number): number {
    const offset = this.#scan.length;
    const text = offset > 0 ? Buffer.concat([this.#scan, chunk.subarray(from)]) : chunk.subarray(from);
    const k = text.indexOf(KEY);
    if (k === -1) {
      this.#pushSkeleton(chunk.subarray(from));
      this.#scan = Buffer.from(text.subarray(Math.max(0, text.length - KEY.length)));
      return chunk.length;
    }
    let i = k + KEY.length;
    while (i < text.length && (text[i] === 0x20 || text[i] === 0x0a || text[i] === 0x0d || text[i] === 0x09 || text[i] === 0x3a)) i++;
    if (i >= text.length) {
      // The key's tail or the colon is at the end of this chunk: wait for the next one.
      this.#pushSkeleton(chunk.subarray(from));
      this.#scan = Buffer.from(text.subarray(k));
      return chunk.length;
    }
    const upTo = Math.max(0, (text[i] === QUOTE ? i + 1 : k + KEY.length) - offset);
    this.#pushSkeleton(chunk.subarray(from, from + upTo));
    this.#scan = Buffer.alloc(0);
    if (text[i] === QUOTE) this.#startValue(from + upTo, chunk.length);
    return from + upTo;
  }

  #startValue(at: number, chunkLength: number): void {
    let out: Buffer | undefined;
    if (this.#contentLength !== undefined) {
      const left = Math.max(0, this.#contentLength - (this.#seen - (chunkLength - at)));
      out = Buffer.allocUnsafe(Math.floor((left * 3) / 4) + 3);
    }
    this.#values.push({ out, pieces: [], written: 0, hash: createHash('sha256'), carry: EMPTY, escape: false, padded: false, invalid: false });
    this.#inValue = true;
  }

  #valueBytes(chunk: Buffer, from: number): number {
    const v = this.#values[this.#values.length - 1] as Value;
    let close = chunk.indexOf(QUOTE, from);
    // An escaped quote is not the end (it is not base64 either: the value is invalid).
    while (close !== -1 && close > from && chunk[close - 1] === BACKSLASH) {
      v.invalid = true;
      close = chunk.indexOf(QUOTE, close + 1);
    }
    const stop = close === -1 ? chunk.length : close;
    let part = this.#unescape(v, chunk.subarray(from, stop));
    if (v.carry.length > 0) {
      // Finish the quad the last chunk left open, without copying this whole chunk.
      const need = 4 - v.carry.length;
      if (part.length < need) {
        v.carry = Buffer.concat([v.carry, part]);
        part = EMPTY;
      } else {
        this.#decodeQuads(v, Buffer.concat([v.carry, part.subarray(0, need)]));
        part = part.subarray(need);
        v.carry = EMPTY;
      }
    }
    const whole = part.length - (part.length % 4);
    if (whole > 0) this.#decodeQuads(v, part.subarray(0, whole));
    if (part.length > whole) v.carry = Buffer.from(part.subarray(whole));
    if (close === -1) return chunk.length;
    if (v.carry.length !== 0 || v.escape) v.invalid = true;
    this.#inValue = false;
    this.#pushSkeleton(Buffer.from('"')); // the value is "" in the skeleton
    return close + 1;
  }

  /** `\/` → `/`; any other escape cannot be base64. A backslash at the chunk's end waits. */
  #unescape(v: Value, bytes: Buffer): Buffer {
    if (!v.escape && bytes.indexOf(BACKSLASH) === -1) return bytes;
    const out = Buffer.allocUnsafe(bytes.length);
    let n = 0;
    for (const b of bytes) {
      if (v.escape) {
        v.escape = false;
        if (b === SLASH) out[n++] = SLASH;
        else v.invalid = true;
      } else if (b === BACKSLASH) v.escape = true;
      else out[n++] = b;
    }
    return out.subarray(0, n);
  }

  #decodeQuads(v: Value, quads: Buffer): void {
    if (v.invalid) return;
    if (v.padded) {
      v.invalid = true; // data after the padding
      return;
    }
    const eq = quads.indexOf(EQUALS);
    let pad = 0;
    if (eq !== -1) {
      pad = quads.length - eq;
      if (pad > 2 || quads.subarray(eq).some((b) => b !== EQUALS)) {
        v.invalid = true;
        return;
      }
      v.padded = true;
    }
    if (quads.indexOf(0x2d) !== -1 || quads.indexOf(0x5f) !== -1) {
      v.invalid = true; // the URL-safe alphabet
      return;
    }
    const expected = (quads.length / 4) * 3 - pad;
    const text = quads.toString('latin1');
    if (v.out && v.written + expected <= v.out.length) {
      // Straight into the image buffer: no intermediate buffer, no copy.
      const n = v.out.write(text, v.written, 'base64');
      if (n !== expected) {
        v.invalid = true; // a character outside the alphabet was skipped by the decoder
        return;
      }
      v.hash.update(v.out.subarray(v.written, v.written + n));
      v.written += n;
      return;
    }
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length !== expected) {
      v.invalid = true;
      return;
    }
    v.hash.update(bytes);
    if (v.out) v.pieces.push(v.out.subarray(0, v.written));
    v.out = undefined;
    v.pieces.push(bytes);
    v.written += bytes.length;
  }

  /** The decoded answer, or an ambiguous UpstreamError saying what was wrong with it. */
  end(): DecodedResponse {
    if (this.#inValue || this.#skeletonBytes > MAX_SKELETON_BYTES) throw ambiguous('body is not valid JSON (truncated or not JSON)');
    const { json, data } = parseResponseJson(Buffer.concat(this.#skeleton).toString('utf8'));
    const cut = Array.isArray(data) ? data.filter((d) => (d as { b64_json?: unknown } | null)?.b64_json === '').length : 0;
    if (cut !== this.#values.length) throw ambiguous('b64_json found outside data[]');
    const meta = checkResponseShape(json, this.#values.length);
    const images = this.#values.map((v, i) => {
      if (v.written === 0 && !v.invalid) throw ambiguous(`data[${i}].b64_json is missing or empty`);
      if (v.invalid) return checkImage(i, undefined);
      const bytes = v.out && v.pieces.length === 0 ? v.out.subarray(0, v.written) : Buffer.concat(v.out ? [...v.pieces, v.out.subarray(0, v.written)] : v.pieces);
      return checkImage(i, bytes, v.hash.digest('hex'));
    });
    return { meta, images };
  }
}

/**
 * Decode a body stream (undici's `res.body`); a bad body is an ambiguous UpstreamError.
 * At most `maxBytes` are read (MAX_RESPONSE_BYTES): a Content-Length above it is refused
 * before anything is allocated, and a body without one is cut as soon as it passes it
 * (leaving the loop early destroys the stream). The caller destroys an unread body.
 */
export async function decodeUpstreamStream(
  body: AsyncIterable<Buffer | Uint8Array>,
  contentLength?: number,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<DecodedResponse> {
  if (contentLength !== undefined && contentLength > maxBytes) throw answerTooLarge(maxBytes);
  const decoder = new StreamingDecoder(contentLength);
  let read = 0;
  for await (const chunk of body) {
    read += chunk.byteLength;
    if (read > maxBytes) throw answerTooLarge(maxBytes);
    decoder.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return decoder.end();
}
