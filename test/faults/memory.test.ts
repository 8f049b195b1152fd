import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { startHarness } from '../helpers/harness.js';

async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

async function usedMemory(url: string): Promise<number> {
  const r = new Redis(url);
  try {
    return Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? 0);
  } finally {
    r.disconnect();
  }
}

/**
 * Fault 8: 500 jobs of 4-megapixel images (~12 MB of base64 each) at concurrency 16. The
 * worker's peak RSS stays under 150 MB + C × 3 × image (the bound this project states),
 * and Redis holds no payload: its memory per job is the same as for tiny images.
 */
test('500 × 4 MP images at concurrency 16: bounded worker RSS; Redis memory per job does not grow with image size', { timeout: 600_000 }, async (t) => {
  const redis = await startLocalRedis();
  t.after(() => redis.stop());
  const h = await startHarness(t, { redisUrl: redis.url, fake: { latencyMs: 100, entropy: 0.7 } });
  const producer = h.producer();
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '16' });

  // Tiny images first, to know what a job costs Redis by itself (after a warm-up that pays
  // for the queue's own keys).
  await producer.enqueueBulk(Array.from({ length: 20 }, (_, i) => ({ id: `warm-${i}`, prompt: `warm ${i}`, width: 64, height: 64 })), { batch: 'warm' });
  await producer.waitForBatch('warm', { timeoutMs: 60_000 });
  const before = await usedMemory(redis.url);
  await producer.enqueueBulk(Array.from({ length: 200 }, (_, i) => ({ id: `tiny-${i}`, prompt: `tiny ${i}`, width: 64, height: 64 })), { batch: 'tiny' });
  await producer.waitForBatch('tiny', { timeoutMs: 60_000 });
  const afterTiny = await usedMemory(redis.url);

  const started = Date.now();
  await producer.enqueueBulk(Array.from({ length: 500 }, (_, i) => ({ id: `big-${i}`, prompt: `big ${i}`, width: 2048, height: 2048 })), { batch: 'big' });
  // 500 × 9 MB would be 4.5 GB on disk: delete stored images as they land. (They are
  // weighed from a job's result, not by reading an object the sweep may catch mid-write.)
  const sweep = setInterval(() => {
    void (async () => {
      for (const key of await h.listObjects('images/big/')) {
        if (key.endsWith('.png')) await h.s3.send(new DeleteObjectCommand({ Bucket: h.bucket, Key: key }));
      }
    })().catch(() => undefined);
  }, 2000);
  t.after(() => clearInterval(sweep));
  const b = await producer.waitForBatch('big', { timeoutMs: 540_000, pollMs: 1000 });
  clearInterval(sweep);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(b.counts.completed, 500, JSON.stringify(b.counts));
  const afterBig = await usedMemory(redis.url);

  const image = (await producer.getJob('big-0'))?.result?.images[0]?.bytes ?? 0;
  const rss = await peakRssBytes(w.proc.pid as number);
  const bound = 150 * 2 ** 20 + 16 * 3 * image;
  const perTiny = (afterTiny - before) / 200;
  const perBig = (afterBig - afterTiny) / 500;
  console.log(`memory: image ${(image / 2 ** 20).toFixed(1)} MiB decoded; worker peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB (bound ${(bound / 2 ** 20).toFixed(0)} MiB); Redis per job: tiny ${perTiny.toFixed(0)} B, 4 MP ${perBig.toFixed(0)} B; 500 jobs in ${seconds.toFixed(0)} s`);
  assert.ok(image > 8 * 2 ** 20, 'a 4 MP image is ~9 MB decoded (~12 MB base64)');
  assert.ok(rss <= bound, `peak RSS ${rss} > ${bound}`);
  assert.ok(perBig < 8192, `a 4 MP job costs Redis ${perBig} bytes`);
  assert.ok(perBig <= perTiny * 1.25 + 256, `Redis per job: ${perBig} for 4 MP vs ${perTiny} for 64×64`);
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});

test('finished jobs are trimmed from BullMQ by KEEP_COMPLETED_JOBS and stay readable through their id records', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 }, env: { KEEP_COMPLETED_JOBS: '10' } });
  const producer = h.producer();
  await h.worker({ WORKER_CONCURRENCY: '4' });
  await producer.enqueueBulk(Array.from({ length: 40 }, (_, i) => ({ id: `trim-${i}`, prompt: `trim ${i}`, width: 64, height: 64 })), { batch: 'trim' });
  await producer.waitForBatch('trim', { timeoutMs: 30_000 });
  const kept = (await producer.queue.getJobCounts('completed')).completed ?? 0;
  assert.ok(kept <= 10, `${kept} completed jobs kept`);
  for (let i = 0; i < 40; i++) assert.equal((await producer.getJob(`trim-${i}`))?.state, 'completed');
  assert.equal((await producer.enqueue({ id: 'trim-0', prompt: 'trim 0', width: 64, height: 64 })).status, 'exists', 'and their ids stay taken');
});
