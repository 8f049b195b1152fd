import { z } from 'zod';
import { Secret } from './secret.js';

/**
 * The kinds of value an environment variable holds: each is a zod parser of the variable's text
 * and the rule an error message states (`must be an integer from 1 to 1024, got "abc"`). The
 * message shows the value the failing check saw: the text as set, or trimmed where the kind
 * trims it first.
 */
export interface ValueKind<T> {
  parse: z.ZodType<T, string>;
  rule: string;
}

/** A value for an error message, quoted and cut at 60 characters. */
export const shown = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);

const INTEGER = /^\s*-?\d+\s*$/;
const DECIMAL = /^\s*\d+(\.\d+)?\s*$/;

/** A safe integer in [min, max], spaces around it allowed. */
export function int(min: number, max?: number): ValueKind<number> {
  const range = max === undefined ? z.int().min(min) : z.int().min(min).max(max);
  return {
    parse: z.string().regex(INTEGER).transform(Number).pipe(range),
    rule: max === undefined ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`,
  };
}

/** A finite decimal number (no sign, no exponent) ≥ min, or > min. */
export function decimal(min: number, exclusiveMin = false): ValueKind<number> {
  return {
    parse: z.string().regex(DECIMAL).transform(Number).pipe(exclusiveMin ? z.number().gt(min) : z.number().min(min)),
    rule: exclusiveMin ? `a number > ${min}` : `a number ≥ ${min}`,
  };
}

/** `1`/`true`/`0`/`false`, exactly (no other spelling, no spaces). */
export function bool(): ValueKind<boolean> {
  return {
    parse: z.stringbool({ truthy: ['1', 'true'], falsy: ['0', 'false'], case: 'sensitive' }),
    rule: '1, true, 0 or false',
  };
}

/** Trimmed text, matching `pattern` when there is one. */
export function text(pattern?: RegExp, rule = 'text'): ValueKind<string> {
  return { parse: pattern ? z.string().trim().regex(pattern) : z.string().trim(), rule };
}

/** Trimmed text kept in a `Secret`, so it never serialises. */
export function secret(pattern?: RegExp, rule = 'text'): ValueKind<Secret> {
  const kind = text(pattern, rule);
  return { parse: kind.parse.transform((s) => new Secret(s)), rule };
}

/** An http(s) URL; with `dropTrailingSlash` without a trailing `/`, so paths can be appended. */
export function httpUrl(dropTrailingSlash = false): ValueKind<string> {
  const rule = 'an http:// or https:// URL';
  const kind = text(/^https?:\/\/[^\s/$.?#][^\s]*$/i, rule);
  return dropTrailingSlash ? { parse: kind.parse.transform((u) => u.replace(/\/+$/, '')), rule } : kind;
}

/** One of a fixed list of words. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T): ValueKind<T[number]> {
  return { parse: z.string().trim().pipe(z.enum(values)), rule: values.join(', ') };
}

/** A positive integer or `auto`. */
export function intOrAuto(): ValueKind<number | 'auto'> {
  return {
    parse: z
      .string()
      .regex(/^\s*(auto|\d+)\s*$/)
      .transform((v) => (v.trim() === 'auto' ? ('auto' as const) : Number(v)))
      .pipe(z.union([z.literal('auto'), z.int().min(1)])),
    rule: 'an integer ≥ 1 or "auto"',
  };
}

const REDIS_URL = /^rediss?:\/\/[^\s,]+$/i;
const splitList = (v: string): string[] => v.split(',').map((item) => item.trim());

/** One redis:// URL, or a comma list of them (the seed nodes of a cluster); the message shows the whole value. */
export function redisUrls(): ValueKind<string[]> {
  const urls = (v: string) => splitList(v).filter(Boolean);
  return {
    parse: z
      .string()
      .refine((v) => urls(v).length > 0 && urls(v).every((u) => REDIS_URL.test(u)))
      .transform(urls),
    rule: 'a redis:// or rediss:// URL (a comma list with REDIS_CLUSTER=1)',
  };
}

export const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
export const BUCKET_RULE = 'a bucket name (3–63 lower-case letters, digits, . -)';

/** A comma list of S3 bucket names; the message shows the first bad one. */
export function bucketNames(): ValueKind<string[]> {
  return {
    parse: z.string().transform(splitList).pipe(z.array(z.string().regex(BUCKET))),
    rule: `a comma list of bucket names, each ${BUCKET_RULE}`,
  };
}

/** A comma list of host names or IP literals, lower-cased. */
export function hostNames(): ValueKind<string[]> {
  const rule = 'a comma list of host names or IP literals';
  const kind = text(/^[A-Za-z0-9.*:[\]-]+(\s*,\s*[A-Za-z0-9.*:[\]-]+)*$/, rule);
  return { parse: kind.parse.transform((v) => splitList(v.toLowerCase()).filter(Boolean)), rule };
}

/** One tenant token of `API_TOKENS` (SPEC §8). */
export interface TenantToken {
  tenant: string;
  token: Secret;
}

/**
 * `API_TOKENS`: a comma list `name=token` of tenant tokens (names 1–64 of A–Z a–z 0–9 . _ -,
 * tokens like API_TOKEN: 16–512 printable characters without spaces or commas), each name
 * and each token once. A refused value is shown with every token replaced by `[redacted]`.
 */
export function tenantTokens(): ValueKind<readonly TenantToken[]> {
  const rule = 'a comma list of name=token (names 1–64 of A–Z a–z 0–9 . _ -, each once; tokens 16–512 printable characters without spaces or commas, each once)';
  return {
    parse: z.string().transform((value, ctx) => {
      const parts = splitList(value).filter(Boolean);
      const redacted = parts.map((p) => `${p.split('=')[0] ?? ''}=[redacted]`).join(',');
      const out: TenantToken[] = [];
      const names = new Set<string>();
      const tokens = new Set<string>();
      for (const part of parts) {
        const at = part.indexOf('=');
        const tenant = at > 0 ? part.slice(0, at) : '';
        const token = at > 0 ? part.slice(at + 1) : '';
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(tenant) || !/^[\x21-\x2b\x2d-\x7e]{16,512}$/.test(token) || names.has(tenant) || tokens.has(token)) {
          ctx.addIssue({ code: 'custom', message: rule, input: redacted });
          return z.NEVER;
        }
        names.add(tenant);
        tokens.add(token);
        out.push({ tenant, token: new Secret(token) });
      }
      return out;
    }),
    rule,
  };
}

const TENANT_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A comma list `name=N` by tenant (SPEC §8), N an integer in [min, max] or, with
 * `decimals`, a number > 0; a name twice, a bad name or a bad number is refused.
 */
export function tenantNumbers(min: number, max: number, decimals = false): ValueKind<ReadonlyMap<string, number>> {
  const rule = `a comma list name=N (tenant names of 1–64 letters, digits, . _ -; N ${decimals ? 'a number > 0' : `an integer from ${min} to ${max}`}, each name once)`;
  const entry = decimals ? /^([A-Za-z0-9._-]{1,64})=(\d+(?:\.\d+)?)$/ : /^([A-Za-z0-9._-]{1,64})=(\d+)$/;
  const toMap = (v: string): Map<string, number> | undefined => {
    const map = new Map<string, number>();
    for (const item of splitList(v).filter(Boolean)) {
      const m = entry.exec(item);
      if (!m || !TENANT_NAME.test(m[1] as string) || map.has(m[1] as string)) return undefined;
      const n = Number(m[2]);
      if (decimals ? !(n > 0) : !(Number.isSafeInteger(n) && n >= min && n <= max)) return undefined;
      map.set(m[1] as string, n);
    }
    return map;
  };
  return {
    parse: z
      .string()
      .refine((v) => toMap(v) !== undefined)
      .transform((v) => toMap(v) as ReadonlyMap<string, number>),
    rule,
  };
}
