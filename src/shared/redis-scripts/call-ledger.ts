import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/**
 * The call ledger of a job (lua/begin-run.lua, start-call.lua, renew-call.lua,
 * settle-call.lua, release-call.lua): upstream calls started and settled, attempts spent, calls possibly
 * billed, and each call's lease, counted in Redis under an operation id so a call
 * counts once whichever run settles it and however often ioredis re-sends a script.
 */

export const BEGIN_RUN = loadScript('begin-run', ['idRecord', 'batch', 'stats', 'calls', 'limiter', 'tenantCalls', 'tenantMegapixels', 'tenantReleased']);
export const START_CALL = loadScript('start-call', ['idRecord', 'limiter', 'batch', 'calls', 'tenantCalls', 'tenantMegapixels']);
export const RENEW_CALL = loadScript('renew-call', ['calls', 'tenantCalls']);
export const SETTLE_CALL = loadScript('settle-call', ['idRecord', 'batch', 'stats', 'calls', 'tenantStats', 'tenantCalls', 'tenantMegapixels']);
export const RELEASE_CALL = loadScript('release-call', ['idRecord', 'calls', 'tenantCalls']);

export interface LedgerKeys {
  idRecord: string;
  /** The batch hash (`batch:-` when the job has none). */
  batch: string;
  stats: string;
  calls: string;
  /** The job's tenant's calls in flight (zset) and megapixels by UTC day (hash). */
  tenantCalls: string;
  tenantMegapixels: string;
}

export interface BeginRunKeys extends LedgerKeys {
  /** BullMQ's limiter key (read only when the run starts its call). */
  limiter: string;
  /** The tenant's jobs released by the fair-share dispatcher and not yet begun (this job leaves it). */
  tenantReleased: string;
}

/** The job's tenant's limits, checked where the call is counted (TENANT_MAX_CONCURRENCY, TENANT_MAX_MEGAPIXELS_PER_DAY). */
export interface TenantLimits {
  tenant: string;
  tenantCap?: number | undefined;
  tenantMaxMp?: number | undefined;
}

export interface BeginRunArgs {
  /** The job (it leaves its tenant's released set). */
  jobId?: string | undefined;
  ttlS: number;
  batchId?: string | undefined;
  /** The caller's clock (ms), recorded as the batch's `started`. */
  now: number;
  /** Start the call in the same round trip when the job never started one (its first run). */
  start?: ({ opId: string; leaseMs: number; limiterMax: number; defaultMaxMp?: number | undefined } & Partial<TenantLimits>) | undefined;
}

export interface BeginRunReply {
  /** Every field of the id record, by name (read before the start). */
  record: Record<string, string>;
  orphanedCalls: number;
  /** start-call's verdict on `start`; absent when no start was tried (a call was started before). */
  start?: StartCallReply;
}

export function beginRun(redis: RedisClient, keys: BeginRunKeys, args: BeginRunArgs): Promise<BeginRunReply> {
  return runScript(redis, BEGIN_RUN, keys, args);
}

export interface StartCallKeys {
  idRecord: string;
  /** BullMQ's limiter key. */
  limiter: string;
  batch: string;
  calls: string;
  tenantCalls: string;
  tenantMegapixels: string;
}

export interface StartCallArgs extends Partial<TenantLimits> {
  /** The call's operation id: a re-sent script finds it and counts nothing again. */
  opId: string;
  leaseMs: number;
  ttlS: number;
  /** The limiter max in force, to tell a 429 back-off window from an ordinary one. */
  limiterMax: number;
  batchId?: string | undefined;
  /** The budget of a batch without its own `max_mp`. */
  defaultMaxMp?: number | undefined;
}

export type StartCallReply =
  | { verdict: 'ok' }
  | { verdict: 'final'; state: string }
  | { verdict: 'rate_limited'; ttlMs: number }
  | { verdict: 'budget'; maxMp: number }
  | { verdict: 'expired'; deadline: number }
  | { verdict: 'tenant_budget'; tenant: string; maxMp: number }
  | { verdict: 'tenant_limited'; tenant: string };

export function startCall(redis: RedisClient, keys: StartCallKeys, args: StartCallArgs): Promise<StartCallReply> {
  return runScript(redis, START_CALL, keys, args);
}

export interface RenewCallArgs {
  opId: string;
  leaseMs: number;
}

export async function renewCall(redis: RedisClient, keys: { calls: string; tenantCalls: string }, args: RenewCallArgs): Promise<boolean> {
  return (await runScript<'calls' | 'tenantCalls', { renewed: boolean }>(redis, RENEW_CALL, keys, args)).renewed;
}

export interface SettleCallKeys extends LedgerKeys {
  /** The per-tenant counters (today's megapixels and cost). */
  tenantStats: string;
}

export interface SettleCallArgs {
  opId: string;
  /** The call spends one of the job's attempts. */
  spendsAttempt: boolean;
  /** The upstream may have generated and billed (no definite answer). */
  ambiguous: boolean;
  ttlS: number;
  batchId?: string | undefined;
  outputMp: number;
  inputMp: number;
  costMicroUsd: number;
  /** The job's tenant (absent: `default`) and the caller's UTC day (`YYYY-MM-DD`) its megapixels count under. */
  tenant?: string | undefined;
  day?: string | undefined;
}

export interface SettleCallReply {
  attempts: number;
  possiblyBilled: number;
}

export function settleCall(redis: RedisClient, keys: SettleCallKeys, args: SettleCallArgs): Promise<SettleCallReply> {
  return runScript(redis, SETTLE_CALL, keys, args);
}

export interface ReleaseCallReply {
  /** The call was in flight under this op id and is now uncounted. */
  released: boolean;
}

/** Undo the start of call `opId`, never sent (see lua/release-call.lua). */
export function releaseCall(redis: RedisClient, keys: { idRecord: string; calls: string; tenantCalls: string }, args: { opId: string }): Promise<ReleaseCallReply> {
  return runScript(redis, RELEASE_CALL, keys, args);
}
