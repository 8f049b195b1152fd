/**
 * Strict base64 decoding. Node's decoder silently skips characters outside the
 * alphabet, stops at a stray `=`, and accepts the URL-safe `-` `_`, so a corrupted
 * body would decode into a shorter, broken image. A regex over a 12 MB string takes
 * ~60 ms of event loop; this check is O(n) native work instead: every skipped or
 * terminating character makes the decoded length fall short of what the text length
 * promises, and two `indexOf` scans rule out the URL-safe alphabet.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const len = text.length;
  if (len === 0 || len % 4 !== 0) return undefined;
  let pad = 0;
  while (pad < 3 && text.charCodeAt(len - 1 - pad) === 61 /* = */) pad++;
  if (pad > 2) return undefined;
  if (text.indexOf('-') !== -1 || text.indexOf('_') !== -1) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.length === (len / 4) * 3 - pad ? bytes : undefined;
}
