import { randomUUID } from 'node:crypto';
import { activeOrDelayed } from './bullmq-internals.js';
import type { EventData } from './events.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis.js';

/**
 * The batch record `{prefix}:batch:{id}` (a hash) and its member sets: totals, final
 * counts, the megapixel and cost ledger, budget and batch webhook. Counts move only
 * inside the job scripts of job-record.ts (a job leaves the open set once per
 * generation), so they stay exact under concurrent workers, retries and crashes.
 * `fin_gen` counts unfinished → finished transitions and `emitted_gen` how many of them
 * have had their batch.completed; the difference is owed (kept in a pending set, so a
 * worker that dies before writing the manifest leaves the work to another).
 */

export interface BatchOptions {
  /** Budget: stop upstream calls once output_mp + input_mp reach it. */
  maxMegapixels?: number;
  /** The batch webhook, which receives batch.completed. */
  webhook?: { url: string; secret: string };
}

export interface BatchRecord {
  batchId: string;
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
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
  'created', 'started', 'finished', 'max_mp', 'webhook_url', 'webhook_secret', 'fin_gen', 'emitted_gen',
] as const;

/** How long a member snapshot outlives a writer that died while reading it. */
const SNAPSHOT_TTL_MS = 600_000;

const num = (v: string | null | undefined) => (v ? Number(v) : 0);
const opt = (v: string | null | undefined) => (v ? Number(v) : undefined);

function toBatch(batchId: string, v: (string | null)[]): BatchRecord | undefined {
  if (v.every((x) => x === null)) return undefined;
  const [total, completed, failed, cancelled, out, inp, pb, cost, created, started, finished, maxMp, url, secret, finGen, emittedGen] = v;
  return {
    batchId,
    total: num(total),
    completed: num(completed),
    failed: num(failed),
    cancelled: num(cancelled),
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

// KEYS[1] batch hash, KEYS[2] members set, KEYS[3] open set.
// ARGV[1] now, ARGV[2] max MP or '', ARGV[3] webhook url or '', ARGV[4] secret, ARGV[5..] new job ids.
// New members raise the total and join the open set; the batch is unfinished again.
const ADD_JOBS = `
redis.call('HSETNX', KEYS[1], 'created', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'max_mp', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'webhook_url', ARGV[3], 'webhook_secret', ARGV[4]) end
local added = 0
for i = 5, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    added = added + 1
    redis.call('SADD', KEYS[3], ARGV[i])
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
  redis.call('HDEL', KEYS[1], 'finished')
end
return added
`;

// KEYS[1] batch hash, KEYS[2] events, KEYS[3] pending set, KEYS[4] webhook outbox.
// ARGV[1] batch id, ARGV[2] stream max len, ARGV[3] event data json, ARGV[4] now.
// Emit batch.completed for every transition not yet emitted, once. With empty data it
// only drops the batch from the pending set when nothing is owed (atomically, so a
// transition that happens meanwhile is never lost) and returns 'owed' otherwise.
const EMIT_COMPLETED = `
local fin = tonumber(redis.call('HGET', KEYS[1], 'fin_gen') or '0')
local emitted = tonumber(redis.call('HGET', KEYS[1], 'emitted_gen') or '0')
if emitted >= fin then
  redis.call('SREM', KEYS[3], ARGV[1])
  return ''
end
if ARGV[3] == '' then return 'owed' end
redis.call('HSET', KEYS[1], 'emitted_gen', fin)
local sid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'type', 'batch.completed', 'data', ARGV[3])
local url = redis.call('HGET', KEYS[1], 'webhook_url')
if url then
  redis.call('RPUSH', KEYS[4], cjson.encode({id = sid, url = url, secret = redis.call('HGET', KEYS[1], 'webhook_secret'), type = 'batch.completed', data = ARGV[3], batchId = ARGV[1], at = tonumber(ARGV[4])}))
end
redis.call('SREM', KEYS[3], ARGV[1])
return sid
`;

interface ScriptedRedis {
  fluxqBatchAdd(batch: string, members: string, open: string, ...args: (string | number)[]): Promise<number>;
  fluxqBatchEmit(batch: string, events: string, pending: string, outbox: string, ...args: (string | number)[]): Promise<string>;
}

function withScripts(redis: RedisClient): RedisClient & ScriptedRedis {
  const r = redis as RedisClient & ScriptedRedis & { fluxqBatchScripts?: true };
  if (!r.fluxqBatchScripts) {
    redis.defineCommand('fluxqBatchAdd', { numberOfKeys: 3, lua: ADD_JOBS });
    redis.defineCommand('fluxqBatchEmit', { numberOfKeys: 4, lua: EMIT_COMPLETED });
    r.fluxqBatchScripts = true;
  }
  return r;
}

export interface OpenCounts {
  waiting: number;
  active: number;
  delayed: number;
}

export class BatchStore {
  readonly #redis: RedisClient & ScriptedRedis;
  readonly #keys: RedisKeys;
  readonly #eventsMaxLen: number;

  constructor(redis: RedisClient, keys: RedisKeys, opts: { eventsMaxLen: number }) {
    this.#redis = withScripts(redis);
    this.#keys = keys;
    this.#eventsMaxLen = opts.eventsMaxLen;
  }

  /** Add new member jobs (and the batch's options); returns how many were new. */
  async addJobs(batchId: string, jobIds: readonly string[], opts: BatchOptions = {}): Promise<number> {
    return this.#redis.fluxqBatchAdd(
      this.#keys.batch(batchId),
      this.#keys.batchJobs(batchId),
      this.#keys.batchOpen(batchId),
      Date.now(),
      opts.maxMegapixels ?? '',
      opts.webhook?.url ?? '',
      opts.webhook?.secret ?? '',
      ...jobIds,
    );
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
    return (await this.#emit(batchId, '')) === 'owed';
  }

  /** Emit the owed batch.completed (and queue the batch webhook); '' when nothing was owed. */
  emitCompleted(batchId: string, data: EventData['batch.completed']): Promise<string> {
    return this.#emit(batchId, JSON.stringify(data));
  }

  async #emit(batchId: string, data: string): Promise<string> {
    return this.#redis.fluxqBatchEmit(
      this.#keys.batch(batchId),
      this.#keys.events,
      this.#keys.batchesPending,
      this.#keys.webhookOutbox,
      batchId,
      this.#eventsMaxLen,
      data,
      Date.now(),
    );
  }
}
