import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/**
 * GLOBAL_CONCURRENCY=auto's scripts (lua/adapt-concurrency.lua, restore-concurrency.lua);
 * the controller and its rules are src/worker/adaptive-concurrency.ts.
 */

export const ADAPT_CONCURRENCY = loadScript('adapt-concurrency', ['state', 'meta', 'marker']);
export const RESTORE_CONCURRENCY = loadScript('restore-concurrency', ['state', 'meta']);

export interface AdaptConcurrencyKeys {
  /** The controller's state (hash). */
  state: string;
  /** BullMQ's meta hash and wake-up marker. */
  meta: string;
  marker: string;
}

export interface AdaptConcurrencyArgs {
  outcome: 'ok' | '429';
  min: number;
  max: number;
  now: number;
  probeRounds: number;
  cooldownMs: number;
  retryAfterMs: number;
}

export interface AdaptConcurrencyReply {
  limit: number;
  /** Why the limit changed; '' when it did not. */
  reason: string;
}

export function adaptConcurrency(redis: RedisClient, keys: AdaptConcurrencyKeys, args: AdaptConcurrencyArgs): Promise<AdaptConcurrencyReply> {
  return runScript(redis, ADAPT_CONCURRENCY, keys, args);
}

/** The learned limit (or `min`), written to BullMQ's meta. */
export async function restoreConcurrency(redis: RedisClient, keys: { state: string; meta: string }, args: { min: number }): Promise<number> {
  return (await runScript<'state' | 'meta', { limit: number }>(redis, RESTORE_CONCURRENCY, keys, args)).limit;
}
