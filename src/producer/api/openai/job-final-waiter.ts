import { streamPosition } from '../../../shared/events.js';
import type { RedisClient } from '../../../shared/redis.js';
import { FINAL_STATES, type JobState, type JobStatus } from '../../job-status.js';
import type { EventHub, StreamEntry } from '../event-hub.js';

const FINAL_EVENTS = new Set(['job.completed', 'job.failed', 'job.expired']);

export interface JobFinalWaiterDeps {
  /** The API process's one reader of the events stream. */
  hub: Pick<EventHub, 'subscribe'>;
  /** For the stream's end when subscribing (so nothing between subscribe and the first read is missed). */
  redis: RedisClient;
  streamKey: string;
  getJob: (id: string) => Promise<JobStatus | undefined>;
}

/**
 * Waits for jobs to become final without a Redis read per waiter per tick: one
 * subscription to the process's event hub is shared by every waiter. A waiter registers
 * first, then reads its job once (so a completion in between is not missed), and reads it
 * again only when a final event names it. However many requests wait, Redis sees the
 * hub's one blocking reader. Should the hub drop the subscription, the next wait
 * subscribes again and the current waiters read their job once more.
 */
export class JobFinalWaiter {
  readonly #d: JobFinalWaiterDeps;
  readonly #waiting = new Map<string, Set<() => void>>();
  #subscription: Promise<() => void> | undefined;

  constructor(deps: JobFinalWaiterDeps) {
    this.#d = deps;
  }

  #onEntry = (entry: StreamEntry): void => {
    const jobId = entry.data.jobId;
    if (typeof jobId !== 'string') return;
    for (const wake of this.#waiting.get(jobId) ?? []) wake();
  };

  #onDropped = (): void => {
    this.#subscription = undefined;
    // Entries may be missed until the next subscription: every waiter reads its job again.
    for (const set of this.#waiting.values()) for (const wake of set) wake();
  };

  async #subscribe(): Promise<() => void> {
    // From the stream's current end: entries added while the hub's reader starts are replayed.
    const after = (await streamPosition(this.#d.redis, this.#d.streamKey)).lastId;
    return this.#d.hub.subscribe(this.#onEntry, { after, filter: (e) => FINAL_EVENTS.has(e.type), onDropped: this.#onDropped });
  }

  /** The job's status once final, or its last status when `timeoutMs` passed first (undefined: unknown). */
  async wait(id: string, timeoutMs: number): Promise<JobStatus | undefined> {
    const deadline = Date.now() + timeoutMs;
    this.#subscription ??= this.#subscribe().catch((err: unknown) => {
      this.#subscription = undefined;
      throw err;
    });
    await this.#subscription;
    let wake: () => void = () => undefined;
    const set = this.#waiting.get(id) ?? new Set();
    this.#waiting.set(id, set);
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: each round follows an event naming this job (or a dropped subscription).
      for (let round = 0; round < 1000; round++) {
        const woken = new Promise<'woken'>((resolve) => (wake = () => resolve('woken')));
        set.add(wake);
        const st = await this.#d.getJob(id);
        if (!st || FINAL_STATES.has(st.state as JobState) || (st.state as string) === 'expired') return st;
        const left = deadline - Date.now();
        if (left <= 0) return st;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
        const why = await Promise.race([woken, timedOut]);
        clearTimeout(timer);
        set.delete(wake);
        if (why === 'timeout') return this.#d.getJob(id);
        if (!this.#subscription) {
          this.#subscription = this.#subscribe();
          await this.#subscription;
        }
      }
      return this.#d.getJob(id);
    } finally {
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0) this.#waiting.delete(id);
    }
  }

  async close(): Promise<void> {
    const sub = this.#subscription;
    this.#subscription = undefined;
    if (sub) (await sub.catch(() => () => undefined))();
  }
}
