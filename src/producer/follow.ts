import { readEventsAfter, streamPosition, trimmedAfter } from '../shared/events.js';
import type { JobRecord, JobRecords } from '../shared/job-record.js';
import type { RedisKeys } from '../shared/keys.js';
import { waitForRedis, type RedisClient } from '../shared/redis.js';

export interface FinishedJob {
  id: string;
  record: JobRecord;
}

export interface FollowDeps {
  /** The shared connection: state reads and the O(1) checks. The blocking reads get a duplicate. */
  redis: RedisClient;
  keys: RedisKeys;
  records: Pick<JobRecords, 'getMany'>;
}

export interface FollowOptions {
  /** Longest wait for a new event before the cancel check and `signal` are looked at again. */
  blockMs?: number;
  /** Records read per pipeline. */
  chunk?: number;
  /** Events read per XREAD. */
  count?: number;
  /** Called once per job when it reaches a final state. */
  onFinished?: (job: FinishedJob) => void;
  /** Called after every round with the number of jobs still open. */
  onProgress?: (open: number) => void;
  signal?: AbortSignal;
}

/**
 * Follow jobs until each is completed, failed or cancelled, at a Redis cost of
 * O(events), not O(jobs) per round:
 *  1. note the events stream's position, then read every job's record once (in
 *     pipelines: some may be final already);
 *  2. block on the stream from that position (own connection); a `job.*` event of an
 *     open job has its record read again — the record, not the event, says the job is
 *     final and what to print, exactly as a full poll would;
 *  3. a cancel writes no event, but it moves the fleet's `cancelled` counter and the
 *     batch's: one HGET a round; when a batch's count moved, its jobs that left the
 *     batch's open set are read again;
 *  4. a follower that fell so far behind that the capped stream trimmed entries it had
 *     not read reads every open record again once, then goes on from the stream's end.
 * Resolves with every job's final record.
 */
export async function followJobs(deps: FollowDeps, ids: readonly string[], opts: FollowOptions = {}): Promise<FinishedJob[]> {
  const { redis, keys, records } = deps;
  const chunk = opts.chunk ?? 2000;
  const open = new Map<string, string>(); // id → its batch ('' for none)
  const finished: FinishedJob[] = [];

  const perBatch = new Map<string, number>(); // batch → its open jobs, so a round costs O(batches)
  const setBatch = (id: string, batch: string | undefined) => {
    const before = open.get(id);
    if (before !== undefined) perBatch.set(before, (perBatch.get(before) ?? 1) - 1);
    if (before !== undefined && perBatch.get(before) === 0) perBatch.delete(before);
    if (batch === undefined) open.delete(id);
    else {
      open.set(id, batch);
      perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
    }
  };
  for (const id of ids) if (!open.has(id)) setBatch(id, '');

  const reread = async (which: readonly string[]) => {
    for (let i = 0; i < which.length; i += chunk) {
      const slice = which.slice(i, i + chunk);
      const recs = await records.getMany(slice);
      recs.forEach((record, n) => {
        const id = slice[n] as string;
        if (!open.has(id) || !record) return;
        if (!record.state) {
          if (open.get(id) !== (record.batchId ?? '')) setBatch(id, record.batchId ?? '');
          return;
        }
        setBatch(id, undefined);
        const job = { id, record };
        finished.push(job);
        opts.onFinished?.(job);
      });
    }
  };
  // A batch whose `cancelled` moved: its jobs that left the batch's open set (one
  // SMISMEMBER per chunk) are read again; jobs without a batch are read again outright.
  const cancelled = async () => {
    const moved = await cancels.moved([...perBatch.keys()]);
    if (moved.size === 0) return;
    const suspects = new Map<string, string[]>();
    for (const [id, b] of open) {
      if (!moved.has(b)) continue;
      const list = suspects.get(b) ?? [];
      list.push(id);
      suspects.set(b, list);
    }
    for (const [b, members] of suspects) {
      if (b === '') {
        await reread(members);
        continue;
      }
      for (let i = 0; i < members.length; i += chunk) {
        const slice = members.slice(i, i + chunk);
        const still = await redis.smismember(keys.batchOpen(b), ...slice);
        await reread(slice.filter((_, n) => still[n] !== 1));
      }
    }
  };

  const cancels = new CancelWatch(redis, keys);
  const conn = (redis as { duplicate(): RedisClient }).duplicate();
  conn.on('error', () => undefined);
  try {
    await waitForRedis(conn, 'the events stream');
    // Counters before the first read (a cancel after it moves them), position too (an
    // event after it is read from the stream).
    await cancels.start();
    let after = (await streamPosition(redis, keys.events)).lastId;
    await reread([...open.keys()]);
    await cancelled();
    for (;;) {
      opts.onProgress?.(open.size);
      if (open.size === 0) return finished;
      if (opts.signal?.aborted) throw new Error('stopped following jobs');
      const read = await readEventsAfter(conn, keys.events, after, { count: opts.count ?? 1000, blockMs: opts.blockMs ?? 1000 });
      if (read.lastId !== after) {
        const pos = await streamPosition(redis, keys.events);
        if (trimmedAfter(pos, after)) {
          // Fell behind the MAXLEN cap: what was trimmed is gone, so read every open job once.
          after = pos.lastId;
          await reread([...open.keys()]);
        } else {
          after = read.lastId;
          const hit = new Set<string>();
          for (const ev of read.events) {
            const jobId = (ev.data as { jobId?: unknown }).jobId;
            if (ev.type.startsWith('job.') && typeof jobId === 'string' && open.has(jobId)) hit.add(jobId);
          }
          await reread([...hit]);
        }
      }
      await cancelled();
    }
  } finally {
    conn.disconnect();
  }
}

/**
 * Cancelled jobs write no event. Every final state moves the fleet's counter of that
 * state (`{prefix}:stats`) and, for a batch member, the batch's: while the fleet's
 * `cancelled` stays put (one HGET), nothing was cancelled; when it moved, the open jobs
 * of each batch whose `cancelled` moved — and those without a batch — are read again.
 */
class CancelWatch {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  #fleet: string | null = null;
  readonly #batches = new Map<string, string | null>();

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async start(): Promise<void> {
    this.#fleet = await this.#redis.hget(this.#keys.stats, 'cancelled');
  }

  /**
   * The batches (of those given; '' = jobs without a batch) whose open jobs may have been
   * cancelled since the last call.
   */
  async moved(batches: readonly string[]): Promise<Set<string>> {
    const check = batches.filter((b) => b !== '');
    const unseen = check.some((b) => !this.#batches.has(b));
    // A batch seen for the first time gets its baseline now. Batch counters are read
    // before the fleet's, so a cancel after the fleet's read is one the next round sees.
    if (!unseen && (await this.#redis.hget(this.#keys.stats, 'cancelled')) === this.#fleet) return new Set();
    const p = this.#redis.pipeline();
    for (const b of check) p.hget(this.#keys.batch(b), 'cancelled');
    p.hget(this.#keys.stats, 'cancelled');
    const replies = (await p.exec()) ?? [];
    const fleet = (replies[check.length]?.[1] ?? null) as string | null;
    const fleetMoved = fleet !== this.#fleet;
    this.#fleet = fleet;
    const moved = new Set<string>(fleetMoved ? [''] : []);
    check.forEach((b, i) => {
      const v = (replies[i]?.[1] ?? null) as string | null;
      // A first sighting is a move only if the fleet moved: its jobs were read after the last check.
      if (this.#batches.has(b) ? this.#batches.get(b) !== v : fleetMoved) moved.add(b);
      this.#batches.set(b, v);
    });
    return moved;
  }
}
