import type { FastifyRequest } from 'fastify';
import { requestTenant } from './auth.js';

/**
 * SPEC §8 scoping for the routes: a tenant token acts only as its tenant (a body naming
 * another gets 403) and sees and cancels only its own jobs and batches (others' are 404,
 * as if they did not exist); the operator token acts for any tenant and sees all.
 */

/** A tenant token's request names another tenant: 403, naming both. */
export class OtherTenantError extends Error {
  override readonly name = 'OtherTenantError';
  readonly statusCode = 403;
  readonly retryable = false;
  constructor(own: string, named: string, path: string) {
    super(`${path}: this token is tenant "${own}"'s and cannot act for tenant "${named}" (leave tenant out, or name "${own}")`);
  }
}

/** Whether the request may see or cancel something of `tenant`. */
export function visibleTo(req: FastifyRequest, tenant: string): boolean {
  const own = requestTenant(req);
  return own === undefined || own === tenant;
}

/**
 * The tenant to enqueue as: the token's, after checking that no request names another
 * (`requests.3.tenant` in a batch, `tenant` for one job); undefined for the operator.
 */
export function enqueueTenant(req: FastifyRequest, requests: readonly unknown[], pathOf: (index: number) => string): string | undefined {
  const own = requestTenant(req);
  if (own === undefined) return undefined;
  requests.forEach((r, i) => {
    const named = r !== null && typeof r === 'object' ? (r as { tenant?: unknown }).tenant : undefined;
    if (typeof named === 'string' && named !== own) throw new OtherTenantError(own, named, pathOf(i));
  });
  return own;
}
