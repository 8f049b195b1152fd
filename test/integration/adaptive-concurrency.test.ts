import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { redisKeys } from '../../src/shared/keys.js';
import { silentLogger } from '../../src/shared/logger.js';
import { AdaptiveConcurrency } from '../../src/worker/adaptive-concurrency.js';
import { startHarness, testRedisUrl } from '../helpers/harness.js';

test('the controller: slow start, a multiplicative cut on a 429, additive climb back, rare probes, and it survives a restart', async (t) => {
  const redis = new Redis(await testRedisUrl());
  t.after(() => redis.disconnect());
  const keys = redisKeys(`ac-${Date.now()}`, 'generate');
  const ac = new AdaptiveConcurrency(redis, keys, { min: 1, max: 64, probeRounds: 3, cooldownMs: 0 }, silentLogger());
  assert.equal(await ac.start(), 1);
  const round = async () => {
    for (let i = 0; i < ac.current; i++) await ac.observe('ok');
  };
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    await round();
    seen.push(ac.current);
  }
  assert.deepEqual(seen, [2, 4, 8, 16, 32], 'slow start doubles per round');
  assert.equal(await redis.hget(keys.meta, 'concurrency'), '32', 'BullMQ global concurrency follows');
  await ac.observe('429');
  assert.equal(ac.current, 24, '× 0.75 on the first 429');
  await round();
  assert.equal(ac.current, 25, 'then +1 per round while below the limit that broke');
  await ac.observe('429');
  assert.equal(ac.current, 24, 'a 429 right after a +1 step goes back to the value that held (× 24/25)');
  await round();
  await round();
  assert.equal(ac.current, 24, 'holds there…');
  await round();
  assert.equal(ac.current, 25, '…and probes one above every probeRounds rounds');
  await round();
  assert.equal(ac.current, 25, 'a probe that holds a round raises the known limit');
  await ac.observe('429');
  assert.equal(ac.current, 22, 'a 429 at a limit that had held means the cap dropped: × 0.9');
  await round();
  await round();
  assert.equal(ac.current, 24, 'climbs back to just below the limit that broke');
  const restarted = new AdaptiveConcurrency(redis, keys, { min: 1, max: 64 }, silentLogger());
  assert.equal(await restarted.start(), 24, 'a restarted worker continues from the learned limit');
  const capped = new AdaptiveConcurrency(redis, redisKeys(`ac2-${Date.now()}`, 'generate'), { min: 2, max: 5 }, silentLogger());
  await capped.start();
  for (let i = 0; i < 20; i++) await capped.observe('ok');
  assert.equal(capped.current, 5, 'AUTO_CONCURRENCY_MAX bounds it');
  await capped.observe('429');
  await capped.observe('429');
  assert.ok(capped.current >= 2, 'AUTO_CONCURRENCY_MIN bounds it');
});

test('GLOBAL_CONCURRENCY=auto: two workers of 8 against an account allowing 6 settle at ~6 with few 429s', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, {
    fake: { latencyMs: 150, concurrencyLimit: 6, concurrencyRetryAfter: '1' },
    env: { GLOBAL_CONCURRENCY: 'auto', AUTO_CONCURRENCY_MIN: '1', AUTO_CONCURRENCY_MAX: '64', AUTO_PROBE_ROUNDS: '20' },
  });
  const producer = h.producer();
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '8' }), h.spawnWorker({ WORKER_CONCURRENCY: '8' })]);
  await producer.enqueueBulk(Array.from({ length: 400 }, (_, i) => ({ id: `auto-${i}`, prompt: `auto ${i}`, width: 256, height: 256 })), { batch: 'auto' });
  const b = await producer.waitForBatch('auto', { timeoutMs: 90_000 });
  assert.equal(b.counts.completed, 400);
  const limited = h.fake.calls.filter((c) => c.status === 429).length;
  const share = limited / h.fake.calls.length;
  const learned = Number(await h.redis.hget(`${h.prefix}:concurrency`, 'limit'));
  console.log(`auto: ${h.fake.calls.length} calls, ${limited} 429s (${(share * 100).toFixed(2)} %), learned limit ${learned}, max in flight ${h.fake.maxInFlight}`);
  assert.ok(learned >= 5 && learned <= 7, `settled at ${learned}`);
  assert.ok(share < 0.02, `429s were ${(share * 100).toFixed(2)} % of calls`);
  for (let i = 0; i < 400; i += 50) assert.equal((await producer.getJob(`auto-${i}`))?.result?.attempts, 1);
  for (const w of workers) {
    w.kill('SIGTERM');
    assert.equal(await w.exited, 0);
  }
});
