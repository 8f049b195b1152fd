/**
 * A JSON request body sent without ever being one string. `JSON.stringify(body)` of a
 * request with eight inputs is a third copy of every input (bytes, base64, then the JSON
 * text, and undici makes it a Buffer on top). Here the body is produced piece by piece
 * while the socket takes it: long string values (the base64 inputs) are escaped a slice
 * at a time, so only one slice is ever in flight beyond what the caller already holds.
 * The bytes are exactly `JSON.stringify(body)`'s, and their count is known up front, so
 * the request still carries a Content-Length.
 */

/** Characters of a string value escaped and encoded per piece. */
export const SLICE_CHARS = 65_536;

export interface JsonBody {
  /** Byte length of the whole body (for Content-Length). */
  length: number;
  /** The body's bytes, produced on demand; each call starts over. */
  pieces(): Generator<Buffer>;
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** Where the slice starting at `at` ends: never between the halves of a surrogate pair (JSON.stringify escapes a lone one). */
function sliceEnd(value: string, at: number): number {
  const end = Math.min(at + SLICE_CHARS, value.length);
  return end < value.length && isHighSurrogate(value.charCodeAt(end - 1)) ? end + 1 : end;
}

/** One slice as it appears inside the JSON string, without the quotes. */
function escapedSlice(value: string, at: number, end: number): Buffer {
  const json = JSON.stringify(value.slice(at, end));
  return Buffer.from(json.slice(1, -1), 'utf8');
}

/** Its byte length there: the same escaping, counted without making a Buffer. */
function escapedLength(value: string, at: number, end: number): number {
  return Buffer.byteLength(JSON.stringify(value.slice(at, end)), 'utf8') - 2;
}

type Part = Buffer | string;

/**
 * The body of a flat JSON object (string, number, boolean or null values, as the upstream
 * body is). Keys, small values and punctuation are encoded once; a string value longer
 * than a slice is kept by reference and escaped slice by slice, once to count its bytes
 * and again while it is sent.
 */
export function jsonBody(body: object): JsonBody {
  const parts: Part[] = [];
  let text = '{';
  let first = true;
  for (const [key, value] of Object.entries(body) as [string, unknown][]) {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') continue;
    text += `${first ? '' : ','}${JSON.stringify(key)}:`;
    first = false;
    if (typeof value === 'string' && value.length > SLICE_CHARS) {
      parts.push(Buffer.from(`${text}"`, 'utf8'), value);
      text = '"';
    } else text += JSON.stringify(value);
  }
  parts.push(Buffer.from(`${text}}`, 'utf8'));

  let length = 0;
  for (const part of parts) {
    if (typeof part !== 'string') length += part.length;
    else for (let at = 0, end = 0; at < part.length; at = end) length += escapedLength(part, at, (end = sliceEnd(part, at)));
  }
  return {
    length,
    *pieces() {
      for (const part of parts) {
        if (typeof part !== 'string') yield part;
        else for (let at = 0, end = 0; at < part.length; at = end) yield escapedSlice(part, at, (end = sliceEnd(part, at)));
      }
    },
  };
}
