import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertFixedWindows, assertQuietAfter429 } from '../helpers/fleet-assertions.js';
import { startHarness, waitFor } from '../helpers/harness.js';

test('a 429 with Retry-After: 2 stops both worker processes for the window; the job completes without spending an attempt', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 300 } });
  h.fake.inject({ times: 1, fault: { type: 'status', status: 429, errorType: 'rate_limit', message: 'slow down', retryAfter: '2' } });
  const [a, b] = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '2' }), h.spawnWorker({ WORKER_CONCURRENCY: '2' })]);
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 8 }, (_, i) => ({ id: `rl-${i}`, prompt: `rl ${i}` })));
  const done = await Promise.all(Array.from({ length: 8 }, (_, i) => producer.waitFor(`rl-${i}`, { timeoutMs: 30_000 })));
  assert.ok(done.every((d) => d.state === 'completed'));

  assertQuietAfter429(h.fake.calls, done, 2000);
  // Both processes took part.
  const pids = new Set([a, b].filter((w) => w.lines.some((l) => l.includes('"job completed"'))).map((w) => w.proc.pid));
  assert.equal(pids.size, 2);
  a.kill('SIGTERM');
  b.kill('SIGTERM');
  assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0]);
});

test('in-flight calls never exceed workers × WORKER_CONCURRENCY', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 150 } });
  const producer = h.producer();
  await Promise.all([h.worker({ WORKER_CONCURRENCY: '3' }), h.worker({ WORKER_CONCURRENCY: '3' })]);
  await producer.enqueueBulk(Array.from({ length: 30 }, (_, i) => ({ id: `c-${i}`, prompt: `c ${i}` })));
  for (let i = 0; i < 30; i++) assert.equal((await producer.waitFor(`c-${i}`, { timeoutMs: 30_000 })).state, 'completed');
  assert.ok(h.fake.maxInFlight <= 6, `max in flight ${h.fake.maxInFlight} > 6`);
  assert.equal(h.fake.maxInFlight, 6, 'the fleet used its whole concurrency');
});

test('GLOBAL_CONCURRENCY caps in-flight calls across all workers', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 150 }, env: { GLOBAL_CONCURRENCY: '3' } });
  const producer = h.producer();
  await Promise.all([h.worker({ WORKER_CONCURRENCY: '4' }), h.worker({ WORKER_CONCURRENCY: '4' })]);
  await producer.enqueueBulk(Array.from({ length: 24 }, (_, i) => ({ id: `g-${i}`, prompt: `g ${i}` })));
  for (let i = 0; i < 24; i++) assert.equal((await producer.waitFor(`g-${i}`, { timeoutMs: 30_000 })).state, 'completed');
  assert.ok(h.fake.maxInFlight <= 3, `max in flight ${h.fake.maxInFlight} > GLOBAL_CONCURRENCY 3`);
  assert.equal(h.fake.maxInFlight, 3);
});

test('with RATE_LIMIT_MAX/RATE_LIMIT_DURATION_MS no fixed window holds more starts, across workers', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 }, env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_DURATION_MS: '1000' } });
  const producer = h.producer();
  await Promise.all([h.worker({ WORKER_CONCURRENCY: '4' }), h.worker({ WORKER_CONCURRENCY: '4' })]);
  await producer.enqueueBulk(Array.from({ length: 10 }, (_, i) => ({ id: `r-${i}`, prompt: `r ${i}` })));
  for (let i = 0; i < 10; i++) assert.equal((await producer.waitFor(`r-${i}`, { timeoutMs: 30_000 })).state, 'completed');
  // BullMQ moves a job to completed just after fluxq's record says so.
  await waitFor(async () => (await producer.queue.getJobCounts('completed')).completed === 10, { timeoutMs: 10_000, what: 'BullMQ to complete all 10' });
  const jobs = await producer.queue.getJobs(['completed']);
  assert.equal(jobs.length, 10);
  assert.ok(jobs.every((j) => j.attemptsStarted === 1));
  assertFixedWindows(jobs.map((j) => j.processedOn ?? 0), 3, 1000, 4);
  assert.equal(h.fake.calls.length, 10, 'one upstream call per start');
});
