/**
 * Child process of manifest-memory.test.ts: writes one batch's manifest with the worker's
 * BatchCompleter and prints how much its peak RSS (VmHWM) rose while doing it, so the
 * writer's memory is measured apart from the test's and s3rver's.
 * Environment: the harness's worker env. argv: batchId.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { BatchStore } from '../../src/shared/batch-store.js';
import { loadConfig } from '../../src/shared/config.js';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { createLogger } from '../../src/shared/logger.js';
import { createRedis } from '../../src/shared/redis.js';
import { createS3Client } from '../../src/shared/s3.js';
import { BatchCompleter } from '../../src/worker/batch-completion.js';

const batchId = process.argv[2] ?? '';
const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
const config = loadConfig(process.env, 'worker');
const redis = createRedis(config, { role: 'worker' });
const s3 = createS3Client(config);
const keys = redisKeys(config.queue.prefix, config.queue.name);
const log = createLogger({ level: 'warn' });
const batches = new BatchStore(redis, keys, { eventsMaxLen: config.events.maxLen });
const records = new JobRecords(redis, keys, { ttlS: config.idempotencyTtlS, eventsMaxLen: config.events.maxLen });
let emitted = false;
const completer = new BatchCompleter({ batches, records, s3, bucket: config.s3.bucket ?? '', keyPrefix: config.s3.keyPrefix, log, onEmitted: () => (emitted = true) });
await redis.ping();
global.gc?.();
writeFileSync('/proc/self/clear_refs', '5'); // the peak restarts at the current RSS
const before = peak();
const max = { heapUsed: 0, external: 0, arrayBuffers: 0, rss: 0 };
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  for (const k of Object.keys(max) as (keyof typeof max)[]) max[k] = Math.max(max[k], m[k]);
}, 5);
await completer.complete(batchId);
clearInterval(sampler);
const after = peak();
if (process.env.MANIFEST_CHILD_DEBUG) process.stderr.write(`${JSON.stringify({ max, now: process.memoryUsage() })}\n`);
s3.destroy();
redis.disconnect();
process.stdout.write(`${JSON.stringify({ before, after, emitted })}\n`);
