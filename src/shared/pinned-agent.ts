import type { LookupFunction } from 'node:net';
import { Agent } from 'undici';
import { resolveAllowed, type AddressPolicy } from './address-policy.js';

/** Thrown (as a connect error's cause) when the policy refuses the address a host resolves to. */
export class RefusedAddress extends Error {
  override readonly name = 'RefusedAddress';
}

/**
 * An undici dispatcher whose every connection goes to an address the policy allows:
 * the DNS answer is checked inside the connect lookup itself, so what is checked is what
 * is dialled (no DNS rebinding between check and connect). IP-literal hosts skip DNS;
 * callers check those with `refuseWithoutDns` first.
 */
export function pinnedAgent(policy: AddressPolicy, opts: { timeoutMs: number; ca?: string | Buffer | undefined }): Agent {
  const lookup: LookupFunction = (hostname, options, callback) => {
    resolveAllowed(new URL(`https://${hostname.includes(':') ? `[${hostname}]` : hostname}/`), policy, ['https:'])
      .then((r) => {
        if ('refused' in r) callback(new RefusedAddress(r.refused), '', 4);
        else if ('unresolved' in r) callback(Object.assign(new Error(r.unresolved), { code: 'ENOTFOUND' }), '', 4);
        else if (options.all) (callback as unknown as (err: null, addresses: { address: string; family: number }[]) => void)(null, [{ address: r.address, family: r.family }]);
        else callback(null, r.address, r.family);
      })
      .catch((err: Error) => callback(err, '', 4));
  };
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
