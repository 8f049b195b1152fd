import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { loadConfig } from '../shared/config.js';
import { CliError, EXIT } from '../shared/exit-codes.js';
import { createLogger } from '../shared/logger.js';
import { createRedis } from '../shared/redis.js';
import type { JobResult } from '../shared/result.js';
import { createS3Client } from '../shared/s3.js';
import { createProducer } from '../producer/producer.js';
import { FluxClient } from '../worker/flux-client.js';
import { createWorker } from '../worker/worker.js';
import { startFakeFlux } from './fake-flux.js';
import { startLocalRedis, redisServerAvailable, type LocalRedis } from './local-redis.js';
import { startLocalS3 } from './local-s3.js';

export const DEMO_PROMPTS = [
  'a red fox in fresh snow at dawn, telephoto',
  'isometric cutaway of a tiny bakery, warm light',
  'a lighthouse on basalt cliffs during a storm',
  'macro photo of dew on a spider web',
  'a 1970s sci-fi paperback cover with a desert planet',
  'watercolor map of an imaginary archipelago',
];

async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 1500 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    return true;
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export interface DemoIO {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * `fluxq demo`: the whole pipeline on one machine with no cloud account. A local fake
 * flux-2-pro, a local S3-compatible store, the Redis at REDIS_URL (or a private
 * redis-server when nothing answers there), a handful of prompts, one worker, and a
 * list of where every image landed.
 */
export async function runDemo(io: DemoIO): Promise<number> {
  const say = (line: string) => io.stdout.write(`${line}\n`);
  const workDir = resolve(io.env.FLUXQ_DEMO_DIR ?? '.fluxq-demo');
  const bucket = 'fluxq-demo';
  let localRedis: LocalRedis | undefined;
  let redisUrl = io.env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';
  if (!(await redisAnswers(redisUrl))) {
    if (!redisServerAvailable()) throw new CliError(`no Redis answers at ${redisUrl} and redis-server is not on PATH; start Redis or set REDIS_URL`, EXIT.usage);
    localRedis = await startLocalRedis();
    redisUrl = localRedis.url;
    say(`Redis: nothing answered at the configured REDIS_URL; started a private redis-server at ${redisUrl}`);
  } else say(`Redis: ${redisUrl}`);

  const fake = await startFakeFlux({ latencyMs: 400, jitterMs: 300 });
  const s3server = await startLocalS3({ buckets: [bucket], directory: join(workDir, 's3') });
  say(`flux-2-pro: a local fake at ${fake.url}/flux-2-pro`);
  say(`S3: a local S3-compatible store (s3rver) at ${s3server.endpoint}, bucket ${bucket}, files under ${join(workDir, 's3')}`);

  const env = {
    ...io.env,
    REDIS_URL: redisUrl,
    REDIS_CLUSTER: '',
    QUEUE_PREFIX: io.env.QUEUE_PREFIX || 'fluxq-demo',
    FLUX_API_BASE_URL: fake.url,
    FLUX_API_KEY: fake.apiKey,
    WORKER_CONCURRENCY: '4',
    LOG_LEVEL: io.env.LOG_LEVEL || 'warn',
    ...s3server.env(bucket),
  };
  const config = loadConfig(env, 'worker');
  const logger = createLogger({ level: config.logLevel });
  const redis = createRedis(config, { role: 'worker' });
  const s3 = createS3Client(config);
  const flux = FluxClient.fromConfig(config);
  const worker = createWorker({ config, redis, s3, flux, logger });
  const producer = createProducer({ config, logger });
  try {
    await worker.ready;
    const batch = `demo-${Date.now().toString(36)}`;
    const result = await producer.enqueueBulk(
      DEMO_PROMPTS.map((prompt, i) => ({ id: `${batch}-${i + 1}`, prompt, seed: 1000 + i, width: 1024, height: 768, metadata: { demo: true } })),
      { batch },
    );
    say(`enqueued batch ${batch}: ${result.outcomes.length} prompts; one worker, concurrency 4`);
    const statuses = [];
    for (const o of result.outcomes) statuses.push(await producer.waitFor(o.id, { timeoutMs: 120_000 }));
    const outDir = join(workDir, 'out');
    say('');
    say('where the images landed:');
    let failed = 0;
    for (const st of statuses) {
      if (st.state !== 'completed' || !st.result) {
        failed++;
        say(`  ${st.id}: ${st.state} ${st.error ?? ''}`);
        continue;
      }
      for (const img of (st.result as JobResult).images) {
        const obj = await s3.send(new GetObjectCommand({ Bucket: img.bucket, Key: img.key }));
        const file = join(outDir, img.key);
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, Buffer.from((await obj.Body?.transformToByteArray()) ?? new Uint8Array()));
        say(`  s3://${img.bucket}/${img.key}  ${img.contentType}  ${(img.bytes / 1e6).toFixed(2)} MB  sha256 ${img.sha256.slice(0, 12)}…`);
        say(`      copy: ${file}`);
      }
    }
    say('');
    say(`${statuses.length - failed} of ${statuses.length} jobs completed; events on the Redis stream ${config.queue.prefix}:events`);
    say('the same worker runs against the real API with only env variables: FLUX_API_KEY, S3_BUCKET (+ S3_* for your store), REDIS_URL — then `fluxq worker`');
    return failed === 0 ? EXIT.ok : EXIT.runtime;
  } finally {
    await producer.close();
    await worker.close();
    s3.destroy();
    redis.disconnect();
    await s3server.close();
    await fake.close();
    await localRedis?.stop();
  }
}
