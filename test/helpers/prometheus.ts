/** Parse Prometheus text exposition into `name{labels}` → value (HELP/TYPE lines skipped). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m?.[1] && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The TYPE each metric is declared with. */
export function metricTypes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] as string, m[2] as string);
  return out;
}
