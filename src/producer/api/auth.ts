import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TenantToken } from '../../shared/config-values.js';
import type { Secret } from '../../shared/secret.js';

/**
 * `Authorization: Bearer API_TOKEN` on every route but `/healthz`, compared in constant
 * time. The two pages (dashboard, gallery) also take a session cookie: visiting one of
 * them once with `?token=API_TOKEN` sets it (HttpOnly, SameSite=Strict) and redirects to
 * the same address without the token, so it leaves the address bar and the history.
 * The cookie holds an HMAC of the token, never the token itself. The event streams
 * (`/v1/events`, `/v1/batches/:id/events`) take the cookie too, for the gallery's
 * EventSource, but answer 401 JSON like every JSON route.
 */
export const SESSION_COOKIE = 'fluxq_session';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Equal-length digests, so neither the length nor the content leaks through timing. */
export function tokensMatch(given: string | undefined, token: Secret): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(digest(given), digest(token.reveal()));
}

export function sessionValue(token: Secret): string {
  return createHmac('sha256', token.reveal()).update('fluxq dashboard session v1').digest('base64url');
}

export function bearerOf(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m?.[1]?.trim();
}

export function isPagePath(path: string): boolean {
  return path === '/admin/queues' || path.startsWith('/admin/queues/') || path.startsWith('/batches/');
}

/** The event streams (SPEC §9): JSON routes that also take the pages' cookie, so a gallery's EventSource can read them. */
export function isEventStreamPath(path: string): boolean {
  return path === '/v1/events' || /^\/v1\/batches\/[^/]+\/events$/.test(path);
}

export function loginPage(path: string, wrong: boolean): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fluxq — sign in</title>
<style>body{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;background:#f5f5f4}form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}input{font:inherit;padding:.4rem;width:22rem}</style></head>
<body><form method="get" action="${path.replace(/[^A-Za-z0-9/._~-]/g, '')}"><h1>fluxq</h1>
<p>${wrong ? 'That token is not right. ' : ''}Enter the API token (API_TOKEN).</p>
<input type="password" name="token" autocomplete="current-password" autofocus> <button type="submit">Sign in</button></form></body></html>`;
}

/**
 * SPEC §8: whose a request is. A request made with a tenant token (`API_TOKENS`) is that
 * tenant's; one made with `API_TOKEN` (or the page cookie, or with no token on an
 * insecure API) is the operator's, which may act for any tenant: `undefined` here.
 */
const tenantOfRequest = new WeakMap<FastifyRequest, string>();

export function requestTenant(req: FastifyRequest): string | undefined {
  return tenantOfRequest.get(req);
}

/** The tenant a bearer value is the token of (every token compared, in constant time each). */
function tenantTokenOf(given: string | undefined, tokens: readonly TenantToken[]): string | undefined {
  let found: string | undefined;
  for (const t of tokens) if (tokensMatch(given, t.token) && found === undefined) found = t.tenant;
  return found;
}

export interface AuthOptions {
  token: Secret | undefined;
  /** API_TOKENS. */
  tenantTokens?: readonly TenantToken[];
  /** Set the cookie `Secure` (behind HTTPS). */
  secureCookie: boolean;
}

/** The onRequest hook: lets the request through, or answers 401 / a login form / a redirect. */
export function authHook(opts: AuthOptions) {
  const session = opts.token ? sessionValue(opts.token) : undefined;
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const path = (req.url.split('?')[0] ?? '/').replace(/\/+$/, '') || '/';
    if (path === '/healthz') return;
    const bearer = bearerOf(req);
    const tenant = tenantTokenOf(bearer, opts.tenantTokens ?? []);
    if (tenant !== undefined) {
      // bull-board and /metrics show every tenant's jobs: the operator's only.
      if (path === '/metrics' || path === '/admin/queues' || path.startsWith('/admin/queues/')) {
        await reply.code(403).send({ error: `a tenant token (tenant "${tenant}") cannot read ${path}: it shows every tenant; use API_TOKEN` });
        return;
      }
      tenantOfRequest.set(req, tenant);
      return;
    }
    if (!opts.token) return;
    if (tokensMatch(bearer, opts.token)) return;
    const cookie = req.cookies?.[SESSION_COOKIE];
    const cookieOk = cookie !== undefined && session !== undefined && timingSafeEqual(digest(cookie), digest(session));
    if (cookieOk && (isPagePath(path) || isEventStreamPath(path))) return;
    if (path.startsWith('/openai/')) {
      // The OpenAI surface answers in OpenAI's error shape (SPEC §10), which its clients read.
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: { message: 'missing or wrong API key: use an API token as the key (Authorization: Bearer <token>)', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
      return;
    }
    if (!isPagePath(path)) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing or wrong API token: send Authorization: Bearer <API_TOKEN>' });
      return;
    }
    const query = req.query as Record<string, string | undefined>;
    if (query.token !== undefined) {
      if (tokensMatch(query.token, opts.token)) {
        const url = new URL(req.url, 'http://x');
        url.searchParams.delete('token');
        reply.setCookie(SESSION_COOKIE, session as string, { path: '/', httpOnly: true, sameSite: 'strict', secure: opts.secureCookie, maxAge: 12 * 3600 });
        await reply.redirect(`${url.pathname}${url.search}`, 303);
        return;
      }
      await reply.code(401).type('text/html; charset=utf-8').send(loginPage(path, true));
      return;
    }
    if (path.startsWith('/admin/queues/api')) {
      await reply.code(401).send({ error: 'missing or wrong API token' });
      return;
    }
    await reply.code(401).type('text/html; charset=utf-8').send(loginPage(path, false));
  };
}
