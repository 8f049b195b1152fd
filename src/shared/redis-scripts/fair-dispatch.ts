import type { RedisKeys } from '../keys.js';
import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/** Fair share's one script (lua/fair-dispatch.lua): park new jobs in their flows, release the next ones by virtual time. */

export const FAIR_DISPATCH = loadScript('fair-dispatch', [
  'levels',
  'clock',
  'meta',
  'wait',
  'prioritized',
  'active',
  'delayed',
  'priorityCounter',
  'bullEvents',
  'marker',
]);

export interface FairDispatchKeys {
  levels: string;
  clock: string;
  /** BullMQ's keys the release writes (see src/shared/bullmq-internals.ts). */
  meta: string;
  wait: string;
  prioritized: string;
  active: string;
  delayed: string;
  priorityCounter: string;
  bullEvents: string;
  marker: string;
}

/** A job parked in BullMQ's delayed set, to be listed in its flow. */
/** fair-dispatch.lua's keys, from the queue's key layout. */
export function fairDispatchKeys(k: RedisKeys): FairDispatchKeys {
  return {
    levels: k.fairLevels,
    clock: k.fairClock,
    meta: k.meta,
    wait: k.bullWait,
    prioritized: k.bullPrioritized,
    active: k.bullActive,
    delayed: k.bullDelayed,
    priorityCounter: k.bullPriorityCounter,
    bullEvents: k.bullEvents,
    marker: k.bullMarker,
  };
}

export interface ParkedJob {
  id: string;
  /** BullMQ priority (0: none, taken first; then 1, 2, …). */
  level: number;
  tenant: string;
  /** The batch id, or `-` for jobs without one. */
  batch: string;
}

export interface FairDispatchArgs {
  park?: readonly ParkedJob[] | undefined;
  /** Jobs to keep waiting in BullMQ when the queue has no global concurrency. */
  window: number;
  weights: Record<string, number>;
  caps: Record<string, number>;
  fairBase: string;
  tenantBase: string;
  jobBase: string;
  /** Where a job put back is parked (PARKED_AT_MS), and the least delayed score of a parked job. */
  parkedAt: number;
  parkedMinScore: number;
  /** A tenant's pass grows by stride / weight per release. */
  stride: number;
  releasedGraceMs: number;
}

export interface FairDispatchReply {
  parked: number;
  released: number;
  /** Jobs waiting in BullMQ (wait + prioritized) after the call. */
  waiting: number;
}

export function fairDispatch(redis: RedisClient, keys: FairDispatchKeys, args: FairDispatchArgs): Promise<FairDispatchReply> {
  return runScript(redis, FAIR_DISPATCH, keys, args);
}
