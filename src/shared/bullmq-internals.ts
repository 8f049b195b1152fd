import { QueueKeys, Worker, type Job, type JobJson, type Processor, type WorkerOptions } from 'bullmq';
import type { RedisClient } from './redis.js';

/**
 * Every place fluxq relies on BullMQ beyond its public, documented API, in one file.
 * Checked against bullmq **6.7.0** (package.json pins it exactly); the test
 * `test/integration/bullmq-internals.test.ts` fails when one of these changes. Before
 * moving to another bullmq version, read each item below in its source and run that test.
 *
 * Key names come from BullMQ's own exported `QueueKeys`. What fluxq relies on is what
 * BullMQ keeps in them, read or written in fluxq's Lua where it must happen in the same
 * atomic step as fluxq's own records (no public API can do that):
 *  - `limiter` (a string, `queue.rateLimit(ms)` sets it above the limiter max with a
 *    PTTL of `ms`): START_CALL (job-record) reads its value and PTTL, so a call is never
 *    counted as started inside a fleet-wide 429 window (`queue.getRateLimitTtl()` reads
 *    the same, but not atomically with the call start).
 *  - `meta` hash field `concurrency` (what `queue.setGlobalConcurrency(n)` writes) and the
 *    `marker` zset (idle workers block on it): adaptive concurrency writes the limit and
 *    drops a marker in the same step as its controller state, so two workers' updates
 *    cannot land out of order.
 *  - `active` (a list of job ids) and `delayed` (a zset of job ids): batch status counts
 *    a batch's open jobs by state in one pipeline (`activeOrDelayed` below;
 *    `job.getState()` per job is a script call per id).
 *  - the job hash `{prefix}:{queue}:{id}` and `failed` (a zset of job ids): idempotent
 *    enqueue (producer/enqueue-idempotent.ts) checks many ids in one pipeline, together
 *    with their id records.
 *  - fair share (shared/fair-share.ts, lua/fair-dispatch.lua) parks new jobs in `delayed`
 *    at a far-future time (`PARKED_AT_MS`; a delayed score is `timestamp * 0x1000 + n`)
 *    and releases them as BullMQ's promote-9.lua does: ZREM from `delayed`, LPUSH on
 *    `wait` (or ZADD on `prioritized` scored `priority * 2^32 + INCR pc`), the marker
 *    `0` whenever jobs wait and the queue is not maxed (meta `concurrency` vs `active`):
 *    an idle worker that once found `wait` empty blocks on the marker (up to 10 s),
 *    a `waiting` event on `events`, and the job hash field `delay` set to 0. To put a
 *    released job of a worse priority back, it reads the job hash's `data` (JSON: `tenant`,
 *    `batch`) and moves it from `prioritized` back to `delayed`.
 *  - `Worker.createJob(json, id)` (protected): BullMQ parses the stored job data there
 *    (`Job.fromJSON`, `JSON.parse(json.data)`); a job whose data is not JSON would throw
 *    out of the fetch loop and sit in `active` until stalled. `PoisonTolerantWorker`
 *    catches that and hands the processor a job marked as poison instead.
 */
export const BULLMQ_VERSION_CHECKED = '6.7.0';

/** BullMQ's own keys of a queue that fluxq reads or writes (see above for what it relies on). */
export interface BullmqKeys {
  /** A job's hash. */
  job(jobId: string): string;
  failed: string;
  active: string;
  delayed: string;
  limiter: string;
  meta: string;
  marker: string;
  wait: string;
  prioritized: string;
  /** The priority counter (what orders prioritized jobs of one priority). */
  priorityCounter: string;
  /** BullMQ's own events stream (QueueEvents). */
  events: string;
  /** `{prefix}:{queue}:`: a job's hash is this followed by its id (BullMQ's `queue.toKey('')`). */
  jobBase: string;
}

export function bullmqKeys(prefix: string, queueName: string): BullmqKeys {
  const qk = new QueueKeys(prefix);
  const k = qk.getKeys(queueName);
  const known = (name: string): string => {
    const key = k[name];
    if (!key) throw new Error(`bullmq ${BULLMQ_VERSION_CHECKED} key '${name}' is gone from QueueKeys: see src/shared/bullmq-internals.ts`);
    return key;
  };
  return {
    job: (jobId) => qk.toKey(queueName, jobId),
    failed: known('failed'),
    active: known('active'),
    delayed: known('delayed'),
    limiter: known('limiter'),
    meta: known('meta'),
    marker: known('marker'),
    wait: known('wait'),
    prioritized: known('prioritized'),
    priorityCounter: known('pc'),
    events: known('events'),
    jobBase: qk.toKey(queueName, ''),
  };
}

/**
 * Fair share parks a new job in `delayed` at this far-future time (2036-07-18) until the
 * dispatcher releases it. A delayed score is `timestamp * 0x1000 + n`, exact below 2^53,
 * i.e. for timestamps before 2039-09: this one fits.
 */
export const PARKED_AT_MS = 2_100_000_000_000;
/** Delayed scores at or above this belong to parked jobs (a day of slack for clocks). */
export const PARKED_MIN_SCORE = (PARKED_AT_MS - 86_400_000) * 0x1000;

/** A job's `delay` (ms) that parks it: due at PARKED_AT_MS. */
export function parkedDelayMs(now = Date.now()): number {
  return PARKED_AT_MS - now;
}

/** Whether a job whose hash says `timestamp` and `delay` is parked (waiting for its fair-share turn). */
export function isParked(job: { timestamp: number; delay: number }): boolean {
  return job.delay > 0 && job.timestamp + job.delay >= PARKED_AT_MS - 86_400_000;
}

/**
 * Where each of `ids` is in BullMQ: `delayed`, `active`, or neither (waiting, or not
 * there), read in one pipeline from the `delayed` zset and the `active` list. A parked
 * job (fair share) is waiting.
 */
export async function activeOrDelayed(redis: RedisClient, keys: { bullActive: string; bullDelayed: string }, ids: string[]): Promise<('delayed' | 'active' | undefined)[]> {
  const p = redis.pipeline();
  for (const id of ids) {
    p.zscore(keys.bullDelayed, id);
    p.lpos(keys.bullActive, id);
  }
  const replies = (await p.exec()) ?? [];
  return ids.map((_, n) => {
    const score = replies[2 * n]?.[1] as string | null | undefined;
    if (score !== null && score !== undefined) return Number(score) >= PARKED_MIN_SCORE ? undefined : 'delayed';
    if (replies[2 * n + 1]?.[1] !== null) return 'active';
    return undefined;
  });
}

const poisonReasons = new WeakMap<Job, string>();

/** Why a job's stored data could not even be read (set by PoisonTolerantWorker), else undefined. */
export function poisonReason(job: Job): string | undefined {
  return poisonReasons.get(job);
}

/**
 * A BullMQ Worker that hands the processor a job whose stored data is not JSON (another
 * client wrote it) instead of throwing in its fetch loop: the job gets `{}` as data and
 * `poisonReason(job)` says why, so the processor fails it with that reason.
 */
export class PoisonTolerantWorker<D, R> extends Worker<D, R> {
  constructor(name: string, processor: Processor<D, R>, opts: WorkerOptions) {
    super(name, processor, opts);
  }

  protected override createJob(data: JobJson, jobId: string): Job<D, R> {
    try {
      return super.createJob(data, jobId);
    } catch (err) {
      const job = super.createJob({ ...data, data: '{}' }, jobId);
      poisonReasons.set(job, `job data is not valid JSON (${(err as Error).message}); it was not written by fluxq`);
      return job;
    }
  }
}
