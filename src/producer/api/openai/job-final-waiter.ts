import { FINAL_STATES, type JobState, type JobStatus } from '../../job-status.js';

/** One entry of the events stream as the API process's single reader hands it out. */
export interface StreamEntry {
  id: string;
  type: string;
  data: string | Record<string, unknown>;
}

/** What the waiter needs of the events reader: subscribe, get every later entry, unsubscribe. */
export interface EventFeed {
  subscribe(onEntry: (entry: StreamEntry) => void, opts?: { filter?: (entry: StreamEntry) => boolean }): (() => void) | Promise<() => void>;
}

const FINAL_EVENTS = new Set(['job.completed', 'job.failed', 'job.expired']);

/**
 * Waits for jobs to become final without a Redis read per waiter per tick: one
 * subscription to the process's events reader is shared by every waiter; a waiter
 * subscribes first, then reads its job once (so a completion in between is not missed),
 * and reads it once more when its final event arrives. However many requests wait, Redis
 * sees the one blocking reader.
 */
export class JobFinalWaiter {
  readonly #feed: EventFeed;
  readonly #getJob: (id: string) => Promise<JobStatus | undefined>;
  readonly #waiting = new Map<string, Set<() => void>>();
  #unsubscribe: Promise<() => void> | undefined;

  constructor(feed: EventFeed, getJob: (id: string) => Promise<JobStatus | undefined>) {
    this.#feed = feed;
    this.#getJob = getJob;
  }

  #onEntry = (entry: StreamEntry): void => {
    if (!FINAL_EVENTS.has(entry.type) || this.#waiting.size === 0) return;
    let jobId: unknown;
    try {
      jobId = (typeof entry.data === 'string' ? (JSON.parse(entry.data) as Record<string, unknown>) : entry.data).jobId;
    } catch {
      return;
    }
    if (typeof jobId !== 'string') return;
    for (const wake of this.#waiting.get(jobId) ?? []) wake();
  };

  async #subscribed(): Promise<void> {
    this.#unsubscribe ??= Promise.resolve(this.#feed.subscribe(this.#onEntry, { filter: (e) => FINAL_EVENTS.has(e.type) }));
    await this.#unsubscribe;
  }

  /** The job's status once final, or its last status when `timeoutMs` passed first (undefined: unknown). */
  async wait(id: string, timeoutMs: number): Promise<JobStatus | undefined> {
    await this.#subscribed();
    let wake: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const set = this.#waiting.get(id) ?? new Set();
    set.add(wake);
    this.#waiting.set(id, set);
    let timer: NodeJS.Timeout | undefined;
    try {
      const first = await this.#getJob(id);
      if (!first || FINAL_STATES.has(first.state as JobState)) return first;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const why = await Promise.race([woken, timedOut]);
      const now = await this.#getJob(id);
      return why === 'timeout' || !now ? (now ?? first) : now;
    } finally {
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0) this.#waiting.delete(id);
    }
  }

  async close(): Promise<void> {
    if (this.#unsubscribe) (await this.#unsubscribe)();
  }
}
