import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Server-side request forgery guard for URLs fluxq fetches or posts to on a user's
 * behalf (webhooks, input image URLs). Private means: loopback, private, link-local,
 * unique-local, CGNAT, cloud metadata, unspecified, multicast, documentation and
 * reserved ranges, IPv4-mapped and NAT64 forms included.
 */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64], ['2001::', 23],
] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) IPv6 address. */
function embeddedIpv4(ip: string): string | undefined {
  const lower = ip.toLowerCase();
  const m = /^(?:::ffff:|64:ff9b::)(?:0:)?([0-9.]+|[0-9a-f]{1,4}:[0-9a-f]{1,4})$/.exec(lower);
  if (!m?.[1]) return undefined;
  if (m[1].includes('.')) return m[1];
  const [hi, lo] = m[1].split(':').map((h) => parseInt(h, 16)) as [number, number];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export function isPublicAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return !PRIVATE.check(ip, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(ip);
    if (v4) return !PRIVATE.check(v4, 'ipv4');
    return !PRIVATE.check(ip, 'ipv6');
  }
  return false;
}

/** `WEBHOOK_ALLOWED_HOSTS` match: names or IP literals, `*.example.com` wildcards, case-insensitive. */
export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return allowed.some((pattern) => {
    const p = pattern.toLowerCase().replace(/^\[|\]$/g, '');
    if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
    return h === p;
  });
}

export interface AddressPolicy {
  /** An allow-list replaces the public-address rule when set. */
  allowedHosts?: readonly string[] | undefined;
  /** Allow private and loopback addresses (INPUT_URL_ALLOW_PRIVATE=1). */
  allowPrivate?: boolean;
  /** How host names are resolved (tests inject one). */
  resolver?: HostResolver;
}

/** The URL's host, without IPv6 brackets or a trailing dot (`localhost.` is `localhost`). */
const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '').replace(/\.+$/, '').toLowerCase();

/** Resolves a host name to every address (node:dns `lookup` with `all: true` by default). */
export type HostResolver = (host: string) => Promise<{ address: string; family: number }[]>;
const systemResolver: HostResolver = (host) => lookup(host, { all: true });

/**
 * What can be decided without DNS: the scheme, the allow-list, and private IP literals
 * or `localhost`. Returns why the URL is refused, or undefined.
 */
export function refuseWithoutDns(url: URL, policy: AddressPolicy, schemes: readonly string[]): string | undefined {
  if (!schemes.includes(url.protocol)) return `scheme ${url.protocol.replace(':', '')} is not allowed (${schemes.map((s) => s.replace(':', '')).join(' or ')} only)`;
  const host = hostOf(url);
  if (policy.allowedHosts && policy.allowedHosts.length > 0) {
    return hostAllowed(host, policy.allowedHosts) ? undefined : `host ${host} is not in the allowed hosts`;
  }
  if (policy.allowPrivate) return undefined;
  if (isIP(host)) return isPublicAddress(host) ? undefined : `host ${host} is a private or loopback address`;
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal') || host === 'metadata.google.internal') {
    return `host ${host} is a private or loopback address`;
  }
  return undefined;
}

/**
 * Resolve the URL's host and check every address it resolves to. Returns the addresses
 * to connect to (the first, and `all` of them in DNS order — pinned, so a second lookup
 * cannot rebind them), why the policy refuses it, or — a different thing, which a retry
 * may cure — that the host does not resolve.
 */
export type ResolvedAddress = { address: string; family: 4 | 6 };
export type ResolveOutcome = (ResolvedAddress & { all: ResolvedAddress[] }) | { refused: string } | { unresolved: string };

export async function resolveAllowed(url: URL, policy: AddressPolicy, schemes: readonly string[]): Promise<ResolveOutcome> {
  const early = refuseWithoutDns(url, policy, schemes);
  if (early) return { refused: early };
  const host = hostOf(url);
  const literal = isIP(host);
  if (literal) return { address: host, family: literal as 4 | 6, all: [{ address: host, family: literal as 4 | 6 }] };
  let addrs: { address: string; family: number }[];
  try {
    addrs = await (policy.resolver ?? systemResolver)(host);
  } catch (err) {
    return { unresolved: `host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (addrs.length === 0) return { unresolved: `host ${host} does not resolve` };
  const checkPublic = !(policy.allowedHosts && policy.allowedHosts.length > 0) && !policy.allowPrivate;
  if (checkPublic) {
    const bad = addrs.find((a) => !isPublicAddress(a.address));
    if (bad) return { refused: `host ${host} resolves to ${bad.address}, a private or loopback address` };
  }
  const all = addrs.map((a): ResolvedAddress => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  return { ...(all[0] as ResolvedAddress), all };
}
