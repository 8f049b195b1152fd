/**
 * For the tests of one Redis script each (`lua/{name}.lua` ↔ `{name}.test.ts`): a client
 * of the run's redis-server and the keys of a fresh prefix, so files never share state.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { TestContext } from 'node:test';
import { redisKeys, type RedisKeys } from '../../src/shared/keys.js';
import { testRedisUrl } from '../helpers/harness.js';

export interface ScriptKit {
  redis: Redis;
  keys: RedisKeys;
}

export async function scriptKit(t: TestContext): Promise<ScriptKit> {
  const redis = new Redis(await testRedisUrl());
  t.after(() => redis.disconnect());
  return { redis, keys: redisKeys(`{lua-${randomUUID().slice(0, 8)}}`, 'generate') };
}

/** The job's ledger keys (begin-run, settle-call), with its tenant's (`default` unless named). */
export function ledgerKeys(keys: RedisKeys, jobId: string, batchId = '-', tenant = 'default') {
  return {
    idRecord: keys.idRecord(jobId),
    batch: keys.batch(batchId),
    stats: keys.stats,
    calls: keys.idCalls(jobId),
    limiter: keys.limiter,
    tenantStats: keys.tenantStats,
    tenantCalls: keys.tenantCalls(tenant),
    tenantMegapixels: keys.tenantMegapixels(tenant),
    tenantReleased: keys.tenantReleased(tenant),
  };
}

/** The keys finalize-job and cancel-job write. */
export function finalisationKeys(keys: RedisKeys, jobId: string, batchId = '-') {
  return {
    idRecord: keys.idRecord(jobId),
    events: keys.events,
    batch: keys.batch(batchId),
    batchOpen: keys.batchOpen(batchId),
    batchesPending: keys.batchesPending,
    webhookOutbox: keys.webhookOutbox,
    stats: keys.stats,
    tenantStats: keys.tenantStats,
  };
}

/** Every entry of a stream as { type, data }. */
export async function streamEntries(redis: Redis, key: string): Promise<{ id: string; type: string; data: string }[]> {
  const entries = await redis.xrange(key, '-', '+');
  return entries.map(([id, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    return { id, type: f.type ?? '', data: f.data ?? '' };
  });
}
