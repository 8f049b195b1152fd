import type { Queue } from 'bullmq';
import { EVENT, emitEvent } from './events.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * Fleet-wide pause and resume (SPEC §4 `fluxq pause`/`resume`, and the account-wide
 * errors of §1). BullMQ's pause flag stops every worker from fetching; the reason key
 * makes `queue.paused` go out once per pause even when many in-flight calls get the
 * same 402 at once.
 */
export interface QueueControlDeps {
  queue: Queue;
  redis: RedisClient;
  keys: RedisKeys;
  eventsMaxLen: number;
}

/** Pause the queue; returns true when this call paused it (and emitted the event). */
export async function pauseQueue(deps: QueueControlDeps, reason: string, status?: number): Promise<boolean> {
  const first = await deps.redis.set(deps.keys.pauseReason, JSON.stringify({ reason, status, at: Date.now() }), 'NX');
  await deps.queue.pause();
  if (first !== 'OK') return false;
  await emitEvent(deps.redis, deps.keys.events, deps.eventsMaxLen, EVENT.queuePaused, status === undefined ? { reason } : { reason, status });
  return true;
}

/** Resume the queue; returns true when it was paused. */
export async function resumeQueue(deps: QueueControlDeps, by: string): Promise<boolean> {
  const wasPaused = await deps.queue.isPaused();
  await deps.queue.resume();
  const cleared = await deps.redis.del(deps.keys.pauseReason);
  if (!wasPaused && cleared === 0) return false;
  await emitEvent(deps.redis, deps.keys.events, deps.eventsMaxLen, EVENT.queueResumed, { by });
  return true;
}

/** Why the queue is paused, when fluxq paused it. */
export async function pauseReason(deps: QueueControlDeps): Promise<{ reason: string; status?: number; at: number } | undefined> {
  const raw = await deps.redis.get(deps.keys.pauseReason);
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as { reason: string; status?: number; at: number };
  } catch {
    return undefined;
  }
}
