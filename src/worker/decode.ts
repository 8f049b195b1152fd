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

const ambiguous = (detail: string) => new UpstreamError({ kind: 'ambiguous', status: 200, detail });

const B64_FIELD = '"b64_json"';

/**
 * Cut every `"b64_json": "…"` value out of the body without JSON-parsing it: a 4 MP
 * image is ~12 MB of base64, and JSON.parse would copy it once more and hold the
 * event loop for ~30 ms. Base64 needs no JSON escapes; a value that has any (`\/`) is
 * left to JSON.parse. Returns the body with those values emptied, and the values.
 */
export function extractBase64Values(body: string): { rest: string; values: string[] } | undefined {
  const values: string[] = [];
  let rest = '';
  let from = 0;
  for (;;) {
    const at = body.indexOf(B64_FIELD, from);
    if (at === -1) break;
    let i = at + B64_FIELD.length;
    while (i < body.length && (body[i] === ' ' || body[i] === ':' || body[i] === '\n' || body[i] === '\r' || body[i] === '\t')) i++;
    if (body[i] !== '"') return undefined;
    const end = body.indexOf('"', i + 1);
    if (end === -1) return undefined;
    const value = body.slice(i + 1, end);
    if (value.indexOf('\\') !== -1) return undefined;
    values.push(value);
    rest += `${body.slice(from, i)}""`;
    from = end + 1;
  }
  rest += body.slice(from);
  return { rest, values };
}

function cutMatches(json: unknown, count: number): boolean {
  const data = (json as { data?: unknown } | null)?.data;
  return Array.isArray(data) && data.length === count && data.every((d) => (d as { b64_json?: unknown } | null)?.b64_json === '');
}

/**
 * Decode a 200 body strictly (SPEC §1: a 200 with bad JSON, empty `data` or invalid
 * base64 is ambiguous, since the upstream may have billed). Each image is checked by
 * its magic bytes; its sha256 is computed once here.
 */
export function decodeUpstreamResponse(body: string): DecodedResponse {
  let cut = extractBase64Values(body);
  let json: unknown;
  try {
    json = JSON.parse(cut ? cut.rest : body);
    // The cut must have emptied exactly the data[].b64_json values; if the text had
    // "b64_json" anywhere else, parse the whole body the ordinary way instead.
    if (cut && !cutMatches(json, cut.values.length)) {
      cut = undefined;
      json = JSON.parse(body);
    }
  } catch {
    throw ambiguous(body.trim() === '' ? 'empty body' : 'body is not valid JSON (truncated or not JSON)');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw ambiguous('body is not a JSON object');
  const obj = json as Record<string, unknown>;
  const data = obj.data;
  if (!Array.isArray(data) || data.length === 0) throw ambiguous('response has no images (empty data)');
  const values = cut
    ? cut.values
    : data.map((d) => (d && typeof d === 'object' ? (d as { b64_json?: unknown }).b64_json : undefined));
  if (values.length !== data.length) throw ambiguous('data[] entries without b64_json');

  const meta = upstreamResponseMetaSchema.safeParse(obj);
  if (!meta.success) throw ambiguous(`response fields are malformed (${meta.error.issues[0]?.path.join('.') ?? '?'})`);
  const m = meta.data;

  const images: DecodedImage[] = values.map((value, i) => {
    if (typeof value !== 'string' || value === '') throw ambiguous(`data[${i}].b64_json is missing or empty`);
    const bytes = decodeBase64Strict(value);
    if (!bytes) throw ambiguous(`data[${i}].b64_json is not valid base64`);
    const type = sniffImageType(bytes);
    if (!type) throw ambiguous(`data[${i}].b64_json is not a PNG, JPEG or WebP image`);
    return { bytes, type, sha256: createHash('sha256').update(bytes).digest('hex') };
  });

  return {
    meta: {
      created: m.created ?? m.createed ?? Math.floor(Date.now() / 1000),
      input_mp: m.input_mp ?? 0,
      output_mp: m.output_mp ?? 0,
      total_pixels: m.total_pixels ?? 0,
    },
    images,
  };
}
