/**
 * SPEC §8 Deadlines: the latest moment a job's first upstream call may start. The
 * envelope and the HTTP batch take an RFC 3339 time; the CLI's `--deadline` also takes a
 * duration from now (`90m`, `2h`, `45s`, `1d`).
 */

/** RFC 3339 date-time: `2026-12-05T23:00:00Z`, fractional seconds and a numeric offset allowed. */
const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const DURATION_RE = /^(\d{1,7})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const DEADLINE_RULE = 'must be an RFC 3339 time such as 2026-12-05T23:00:00Z';

/** Milliseconds since the epoch of an RFC 3339 time, or undefined when it is not one. */
export function parseRfc3339(value: string): number | undefined {
  const m = RFC3339_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || s! > 60) return undefined;
  const ms = Date.parse(value.replace(' ', 'T'));
  if (!Number.isFinite(ms)) return undefined;
  // Date.parse rolls 2026-02-31 over to March: refuse a day the month does not have.
  const probe = new Date(Date.UTC(y!, mo! - 1, d!));
  if (probe.getUTCMonth() !== mo! - 1) return undefined;
  return ms;
}

/** Why `value` is no deadline at `now` (not RFC 3339, or already past), else undefined. */
export function deadlineProblem(value: string, now = Date.now()): string | undefined {
  const ms = parseRfc3339(value);
  if (ms === undefined) return DEADLINE_RULE;
  if (ms <= now) return `${new Date(ms).toISOString()} has already passed`;
  return undefined;
}

/**
 * The CLI's `--deadline`: an RFC 3339 time, or a duration from `now` (`90m`, `2h`, `45s`,
 * `1d`). Returns the deadline as an RFC 3339 UTC time, or throws an Error naming the rule.
 */
export function parseDeadlineOption(value: string, now = Date.now()): string {
  const d = DURATION_RE.exec(value.trim());
  if (d) {
    const amount = Number(d[1]);
    if (amount === 0) throw new Error('--deadline: a duration must be more than 0');
    return new Date(now + amount * UNIT_MS[d[2] as keyof typeof UNIT_MS]).toISOString();
  }
  const ms = parseRfc3339(value.trim());
  if (ms === undefined) throw new Error(`--deadline: must be an RFC 3339 time (2026-12-05T23:00:00Z) or a duration like 90m, 2h, got "${value}"`);
  if (ms <= now) throw new Error(`--deadline: ${new Date(ms).toISOString()} has already passed`);
  return new Date(ms).toISOString();
}

/** The reason an expired job records (SPEC §8). */
export function expiredReason(deadlineMs: number): string {
  return `expired: deadline ${new Date(deadlineMs).toISOString()} passed before the job started`;
}
