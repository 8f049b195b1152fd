import type { RedisKeys } from '../../../shared/keys.js';
import type { RedisClient } from '../../../shared/redis.js';

/**
 * The OpenAI batch record `{prefix}:openai:batch:{id}` (a hash) beside the fluxq batch of
 * the same id: what the OpenAI batch object reports that fluxq's batch record does not
 * (status, file ids, timestamps in seconds, metadata, errors). Only the API process that
 * holds the batch's lease moves `status`; a cancel only sets `cancelling_at`, which the
 * holder acts on, so no two writers race on the status.
 */
export type StoredStatus = 'validating' | 'in_progress' | 'finalizing' | 'completed' | 'failed' | 'expired' | 'cancelled';
export const FINAL_STATUSES: ReadonlySet<StoredStatus> = new Set(['completed', 'failed', 'expired', 'cancelled']);

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface OpenAiBatchRecord {
  id: string;
  status: StoredStatus;
  inputFileId: string;
  completionWindow: string;
  createdAt: number;
  expiresAt: number;
  inProgressAt?: number;
  finalizingAt?: number;
  completedAt?: number;
  failedAt?: number;
  expiredAt?: number;
  cancellingAt?: number;
  cancelledAt?: number;
  /** How the batch ends once its jobs are final: cancelled or expired (else completed). */
  ending?: 'cancelled' | 'expired';
  outputFileId?: string;
  errorFileId?: string;
  metadata: Record<string, string> | null;
  errors: BatchError[] | null;
  /** sha256 of the input file: with a custom_id it names each line's job. */
  fileSha256?: string;
  total: number;
  /** Final counts (set when the output files are written). */
  completed: number;
  failed: number;
  /** Lines whose job had completed before this batch (a re-run file): counted, not run. */
  preCompleted: number;
  tenant?: string;
}

const NUMBER_FIELDS = ['createdAt', 'expiresAt', 'inProgressAt', 'finalizingAt', 'completedAt', 'failedAt', 'expiredAt', 'cancellingAt', 'cancelledAt', 'total', 'completed', 'failed', 'preCompleted'] as const;

function toHash(rec: Partial<OpenAiBatchRecord>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (v === undefined) continue;
    out[k] = k === 'metadata' || k === 'errors' ? JSON.stringify(v) : String(v);
  }
  return out;
}

function fromHash(id: string, h: Record<string, string>): OpenAiBatchRecord | undefined {
  if (!h.status) return undefined;
  const rec: Record<string, unknown> = { ...h, id };
  for (const k of NUMBER_FIELDS) rec[k] = h[k] !== undefined ? Number(h[k]) : undefined;
  for (const k of ['total', 'completed', 'failed', 'preCompleted'] as const) rec[k] ??= 0;
  rec.metadata = h.metadata ? (JSON.parse(h.metadata) as unknown) : null;
  rec.errors = h.errors ? (JSON.parse(h.errors) as unknown) : null;
  return rec as unknown as OpenAiBatchRecord;
}

export class OpenAiBatchRecords {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async create(rec: OpenAiBatchRecord): Promise<void> {
    await this.#redis
      .multi()
      .hset(this.#keys.openaiBatch(rec.id), toHash(rec))
      .zadd(this.#keys.openaiBatches, rec.createdAt * 1000 + (Date.now() % 1000), rec.id)
      .sadd(this.#keys.openaiBatchesOpen, rec.id)
      .exec();
  }

  async get(id: string): Promise<OpenAiBatchRecord | undefined> {
    return fromHash(id, await this.#redis.hgetall(this.#keys.openaiBatch(id)));
  }

  async update(id: string, fields: Partial<OpenAiBatchRecord>): Promise<void> {
    const m = this.#redis.multi().hset(this.#keys.openaiBatch(id), toHash(fields));
    if (fields.status && FINAL_STATUSES.has(fields.status)) m.srem(this.#keys.openaiBatchesOpen, id);
    await m.exec();
  }

  /** Ask for a cancel (once): the lease holder cancels the jobs and moves the status. */
  async requestCancel(id: string, at: number): Promise<void> {
    await this.#redis.hsetnx(this.#keys.openaiBatch(id), 'cancellingAt', String(at));
  }

  open(): Promise<string[]> {
    return this.#redis.smembers(this.#keys.openaiBatchesOpen);
  }

  /** Newest first; `after` is the last id of the previous page. */
  async page(limit: number, after: string | undefined): Promise<{ ids: string[]; hasMore: boolean }> {
    let start = 0;
    if (after !== undefined) {
      const rank = await this.#redis.zrevrank(this.#keys.openaiBatches, after);
      if (rank === null) return { ids: [], hasMore: false };
      start = rank + 1;
    }
    const ids = await this.#redis.zrevrange(this.#keys.openaiBatches, start, start + limit);
    return { ids: ids.slice(0, limit), hasMore: ids.length > limit };
  }

  addForeign(id: string, jobIds: readonly string[]): Promise<number> {
    return jobIds.length === 0 ? Promise.resolve(0) : this.#redis.sadd(this.#keys.openaiBatchForeign(id), ...jobIds);
  }

  foreign(id: string): Promise<string[]> {
    return this.#redis.smembers(this.#keys.openaiBatchForeign(id));
  }

  /** A short lease for moving the batch along; false when another process holds it. */
  async lease(id: string, ms: number, renew = false): Promise<boolean> {
    const key = this.#keys.openaiBatchLease(id);
    const ok = renew ? await this.#redis.set(key, String(process.pid), 'PX', ms, 'XX') : await this.#redis.set(key, String(process.pid), 'PX', ms, 'NX');
    return ok === 'OK';
  }

  async releaseLease(id: string): Promise<void> {
    await this.#redis.del(this.#keys.openaiBatchLease(id));
  }
}
