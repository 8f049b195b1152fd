import { createHash } from 'node:crypto';
import { decodeBase64Strict } from '../shared/base64.js';
import { UpstreamError } from '../shared/errors.js';
import { sniffImageType, type ImageType } from '../shared/image-type.js';
import { upstreamResponseMetaSchema, type UpstreamResponseMeta } from '../shared/upstream.js';

export interface DecodedImage {
  bytes: Buffer;
  type: ImageType;
  sha256: string;
}

export interface DecodedResponse {
  meta: UpstreamResponseMeta;
  images: DecodedImage[];
}

export const ambiguous = (detail: string) => new UpstreamError({ kind: 'ambiguous', status: 200, detail });

/**
 * A 200 answer past MAX_RESPONSE_BYTES (SPEC §7): cut off unread, never buffered. The
 * upstream may have generated and billed, so it is ambiguous like any other bad 200.
 */
export const answerTooLarge = (maxBytes: number) => ambiguous(`answer larger than MAX_RESPONSE_BYTES (${maxBytes} bytes)`);

/**
 * The checks every 200 body gets, whichever decoder read it (SPEC §1: a 200 with bad JSON,
 * empty `data` or invalid base64 is ambiguous, since the upstream may have billed):
 * a JSON object whose `data` holds one `b64_json` per entry, well-formed billing fields.
 * Returns the billing fields; images are checked by `checkImage`.
 */
export function checkResponseShape(json: unknown, values: number): UpstreamResponseMeta {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw ambiguous('body is not a JSON object');
  const data = (json as { data?: unknown }).data;
  if (!Array.isArray(data) || data.length === 0) throw ambiguous('response has no images (empty data)');
  if (values !== data.length) throw ambiguous('data[] entries without b64_json');
  const meta = upstreamResponseMetaSchema.safeParse(json);
  if (!meta.success) throw ambiguous(`response fields are malformed (${meta.error.issues[0]?.path.join('.') ?? '?'})`);
  const m = meta.data;
  return {
    created: m.created ?? m.createed ?? Math.floor(Date.now() / 1000),
    input_mp: m.input_mp ?? 0,
    output_mp: m.output_mp ?? 0,
    total_pixels: m.total_pixels ?? 0,
  };
}

/**
 * A 200 body's text (the whole body, or the stream decoder's skeleton of it) parsed as
 * JSON, with its `data` field when it has one. An empty or unparsable body is ambiguous.
 */
export function parseResponseJson(text: string): { json: unknown; data: unknown } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw ambiguous(text.trim() === '' ? 'empty body' : 'body is not valid JSON (truncated or not JSON)');
  }
  return { json, data: (json as { data?: unknown } | null)?.data };
}

/** Decoded bytes of `data[index]` → an image, by its magic bytes. */
export function checkImage(index: number, bytes: Buffer | undefined, sha256?: string): DecodedImage {
  if (!bytes) throw ambiguous(`data[${index}].b64_json is not valid base64`);
  const type = sniffImageType(bytes);
  if (!type) throw ambiguous(`data[${index}].b64_json is not a PNG, JPEG or WebP image`);
  return { bytes, type, sha256: sha256 ?? createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Decode a whole 200 body held as text (tests, and anything that already has the text;
 * the worker streams the body through decode-stream.ts instead). JSON.parse does the
 * work, so escapes like `\/` are handled; base64 is decoded strictly.
 */
export function decodeUpstreamResponse(body: string): DecodedResponse {
  const { json, data } = parseResponseJson(body);
  const values = Array.isArray(data) ? data.map((d) => (d && typeof d === 'object' ? (d as { b64_json?: unknown }).b64_json : undefined)) : [];
  const meta = checkResponseShape(json, values.filter((v) => v !== undefined).length);
  const images = values.map((value, i) => {
    if (typeof value !== 'string' || value === '') throw ambiguous(`data[${i}].b64_json is missing or empty`);
    return checkImage(i, decodeBase64Strict(value));
  });
  return { meta, images };
}
