import { randomUUID } from 'node:crypto';
import { activeOrDelayed } from './bullmq-internals.js';
import type { BatchTally, EventData } from './events.js';
import { DEFAULT_TENANT } from './ids.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis.js';
import { addBatchJobs, emitBatchCompleted } from './redis-scripts/batch-record.js';

/**
 * The batch record `{prefix}:batch:{id}` (a hash) and its member sets: totals, final
 * counts, the megapixel and cost ledger, budget and batch webhook. Counts move only
 * inside the job scripts (redis-scripts/lua/: finalize-job, cancel-job, reopen-job; a
 * job leaves the open set once per generation), so they stay exact under concurrent workers, retries and crashes.
 * `fin_gen` counts unfinished → finished transitions and `emitted_gen` how many of them
 * have had their batch.completed; the difference is owed (kept in a pending set, so a
 * worker that dies before writing the manifest leaves the work to another).
 */

export interface BatchOptions {
  /** Budget: stop upstream calls once output_mp + input_mp reach it. */
  maxMegapixels?: number;
  /** The batch webhook, which receives batch.completed. */
  webhook?: { url: string; secret: string };
  /** Whose batch it is (SPEC §8): set by the batch's first enqueue, kept after. */
  tenant?: string;
}

export interface BatchRecord extends BatchTally {
  batchId: string;
  /** Whose batch it is (`default` when none was named). */
  tenant: string;
  outputMp: number;
  inputMp: number;
  possiblyBilled: number;
  costUsd: number;
  created: number | undefined;
  started: number | undefined;
  finished: number | undefined;
  maxMegapixels: number | undefined;
  webhook: { url: string; secret: string } | undefined;
  finGen: number;
  emittedGen: number;
}

const FIELDS = [
  'total', 'completed', 'failed', 'cancelled', 'output_mp', 'input_mp', 'possibly_billed', 'cost_micro_usd',
  'created', 'started', 'finished', 'max_mp', 'webhook_url', 'webhook_secret', 'fin_gen', 'emitted_gen', 'expired', 'tenant',
] as const;

/** How long a member snapshot outlives a writer that died while reading it. */
const SNAPSHOT_TTL_MS = 600_000;

const num = (v: string | null | undefined) => (v ? Number(v) : 0);
const opt = (v: string | null | undefined) => (v ? Number(v) : undefined);

function toBatch(batchId: string, v: (string | null)[]): BatchRecord | undefined {
  if (v.every((x) => x === null)) return undefined;
  const [total, completed, failed, cancelled, out, inp, pb, cost, created, started, finished, maxMp, url, secret, finGen, emittedGen, expired, tenant] = v;
  return {
    batchId,
    total: num(total),
    completed: num(completed),
    failed: num(failed),
    cancelled: num(cancelled),
    expired: num(expired),
    tenant: tenant || DEFAULT_TENANT,
    outputMp: num(out),
    inputMp: num(inp),
    possiblyBilled: num(pb),
    costUsd: num(cost) / 1e6,
    created: opt(created),
    started: opt(started),
    finished: opt(finished),
    maxMegapixels: opt(maxMp),
    webhook: url && secret ? { url, secret } : undefined,
    finGen: num(finGen),
    emittedGen: num(emittedGen),
  };
}

export interface OpenCounts {
  waiting: number;
  active: number;
  delayed: number;
}

export class BatchStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #eventsMaxLen: number;

  constructor(redis: RedisClient, keys: RedisKeys, opts: { eventsMaxLen: number }) {
    this.#redis = redis;
    this.#keys = keys;
    this.#eventsMaxLen = opts.eventsMaxLen;
  }

  /** Add new member jobs (and the batch's options); returns how many were new. */
  async addJobs(batchId: string, jobIds: readonly string[], opts: BatchOptions = {}): Promise<number> {
    const keys = { batch: this.#keys.batch(batchId), batchJobs: this.#keys.batchJobs(batchId), batchOpen: this.#keys.batchOpen(batchId) };
    return addBatchJobs(this.#redis, keys, {
      jobIds,
      now: Date.now(),
      maxMp: opts.maxMegapixels,
      webhook: opts.webhook?.url ? opts.webhook : undefined,
      tenant: opts.tenant,
    });
  }

  async get(batchId: string): Promise<BatchRecord | undefined> {
    return toBatch(batchId, await this.#redis.hmget(this.#keys.batch(batchId), ...FIELDS));
  }

  /** Every member id (SSCAN, so a huge batch never blocks Redis). */
  async members(batchId: string, key = this.#keys.batchJobs(batchId)): Promise<string[]> {
    const ids: string[] = [];
    let cursor = '0';
    do {
      const [next, chunk] = await this.#redis.sscan(key, cursor, 'COUNT', 1000);
      cursor = next;
      ids.push(...chunk);
    } while (cursor !== '0');
    return ids;
  }

  /**
   * Every member id once, in id order, a page at a time, without holding them all: the
   * set is copied into a zset (equal scores, so it is ordered by id) that is read with
   * ZRANGEBYLEX and dropped at the end. SSCAN alone may return an id twice.
   */
  async *memberPages(batchId: string, pageSize = 1000): AsyncGenerator<string[]> {
    const snapshot = this.#keys.batchJobsSnapshot(batchId, randomUUID());
    try {
      await this.#redis.multi().zunionstore(snapshot, 1, this.#keys.batchJobs(batchId)).pexpire(snapshot, SNAPSHOT_TTL_MS).exec();
      let from = '-';
      for (;;) {
        const ids = await this.#redis.zrangebylex(snapshot, from, '+', 'LIMIT', 0, pageSize);
        if (ids.length > 0) yield ids;
        if (ids.length < pageSize) return;
        from = `(${ids[ids.length - 1] as string}`;
      }
    } finally {
      await this.#redis.del(snapshot).catch(() => undefined);
    }
  }

  openMembers(batchId: string): Promise<string[]> {
    return this.members(batchId, this.#keys.batchOpen(batchId));
  }

  /** Where the batch's open jobs are: delayed (a retry's backoff), active, or waiting. */
  async openCounts(batchId: string): Promise<OpenCounts> {
    const open = await this.openMembers(batchId);
    const counts = { waiting: 0, active: 0, delayed: 0 };
    for (let i = 0; i < open.length; i += 1000) {
      for (const place of await activeOrDelayed(this.#redis, this.#keys, open.slice(i, i + 1000))) counts[place ?? 'waiting']++;
    }
    return counts;
  }

  async pending(): Promise<string[]> {
    return this.#redis.smembers(this.#keys.batchesPending);
  }

  /** A short lease for writing a batch's manifest; false when another worker holds it. */
  async lease(batchId: string, ms: number): Promise<boolean> {
    return (await this.#redis.set(this.#keys.batchLease(batchId), String(process.pid), 'PX', ms, 'NX')) === 'OK';
  }

  async releaseLease(batchId: string): Promise<void> {
    await this.#redis.del(this.#keys.batchLease(batchId));
  }

  /** Whether the batch owes a batch.completed; drops it from the pending set when not. */
  async owesCompletion(batchId: string): Promise<boolean> {
    return (await this.#emit(batchId, undefined)).owed === true;
  }

  /** Emit the owed batch.completed (and queue the batch webhook); '' when nothing was owed. */
  async emitCompleted(batchId: string, data: EventData['batch.completed']): Promise<string> {
    return (await this.#emit(batchId, JSON.stringify(data))).eventId ?? '';
  }

  #emit(batchId: string, data: string | undefined) {
    const keys = { batch: this.#keys.batch(batchId), events: this.#keys.events, batchesPending: this.#keys.batchesPending, webhookOutbox: this.#keys.webhookOutbox };
    return emitBatchCompleted(this.#redis, keys, { batchId, eventsMaxLen: this.#eventsMaxLen, data, now: Date.now() });
  }
}
