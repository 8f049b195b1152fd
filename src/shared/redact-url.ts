/**
 * A URL as fluxq reports it (failure reasons, events, log lines): without its query
 * string, fragment and credentials (`user:pass@`), which may carry a presigned URL's
 * signature or a token. The rest is kept as the caller wrote it, so a reason still names
 * the URL they know (`https://host/path`). Text that does not parse as a URL is cut the
 * same way; what the URL parser would still read as credentials is dropped too.
 */
export function redactUrl(raw: string): string {
  const cut = raw.search(/[?#]/);
  let kept = cut === -1 ? raw : raw.slice(0, cut);
  const scheme = /^\s*[a-z][a-z0-9+.-]*:[/\\]*/i.exec(kept);
  if (scheme) {
    const start = scheme[0].length;
    const rest = kept.slice(start);
    const end = rest.search(/[/\\]/);
    const at = (end === -1 ? rest : rest.slice(0, end)).lastIndexOf('@');
    if (at !== -1) kept = kept.slice(0, start) + rest.slice(at + 1);
  }
  try {
    const u = new URL(kept);
    if (u.username || u.password) return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    // Not a URL: the text as cut above.
  }
  return kept;
}
