import type { LookupFunction } from 'node:net';
import { Agent } from 'undici';
import { resolveAllowed, type AddressPolicy } from './address-policy.js';

/** Thrown (as a connect error's cause) when the policy refuses the address a host resolves to. */
export class RefusedAddress extends Error {
  override readonly name = 'RefusedAddress';
}

/**
 * A `net.connect` lookup that answers only with addresses the policy allows: the DNS answer
 * is checked inside the lookup itself, so what is checked is what is dialled (no DNS
 * rebinding between check and connect). It answers both call forms: `{ all: true }` (how
 * Node's connect asks when it may try several addresses, the default since Node 20) gets
 * every checked address as `[{ address, family }]`; otherwise `(err, address, family)`.
 * An asked-for `family` (4 or 6) keeps only that family's addresses.
 */
export function pinnedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    const fail = (err: Error) => (options.all ? callback(err, []) : callback(err, '', 4));
    resolveAllowed(new URL(`https://${hostname.includes(':') ? `[${hostname}]` : hostname}/`), policy, ['https:'])
      .then((r) => {
        if ('refused' in r) return fail(new RefusedAddress(r.refused));
        if ('unresolved' in r) return fail(Object.assign(new Error(r.unresolved), { code: 'ENOTFOUND' }));
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
        const addrs = family === 4 || family === 6 ? r.all.filter((a) => a.family === family) : r.all;
        const first = addrs[0];
        if (!first) return fail(Object.assign(new Error(`host ${hostname} has no IPv${family} address`), { code: 'ENOTFOUND' }));
        if (options.all) callback(null, addrs);
        else callback(null, first.address, first.family);
      })
      .catch(fail);
  };
}

/**
 * An undici dispatcher whose every connection goes to an address the policy allows
 * (`pinnedLookup`). IP-literal hosts skip DNS; callers check those with
 * `refuseWithoutDns` first.
 */
export function pinnedAgent(policy: AddressPolicy, opts: { timeoutMs: number; ca?: string | Buffer | undefined }): Agent {
  const lookup = pinnedLookup(policy);
  // Callers bound each request with their own deadline (AbortSignal of timeoutMs), which
  // must fire first so the error names their setting; these only bound a broken socket.
  const backstopMs = opts.timeoutMs + 5000;
  return new Agent({
    connect: { lookup, timeout: backstopMs, ...(opts.ca ? { ca: opts.ca } : {}) },
    headersTimeout: backstopMs,
    bodyTimeout: backstopMs,
    keepAliveTimeout: 5000,
  });
}

export function isRefusedAddress(err: unknown): RefusedAddress | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    if (e instanceof RefusedAddress) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
