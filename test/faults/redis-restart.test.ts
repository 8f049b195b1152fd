import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { QueueUnavailableError } from '../../src/shared/errors.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { auditFinalEvents, auditObjects } from '../helpers/outcome-checks.js';

/**
 * Fault 2: Redis restarted (AOF, appendfsync always) while jobs are waiting, active and
 * delayed. Workers and producers reconnect on their own; nothing is lost or done twice;
 * the events stream keeps every entry.
 */
test('Redis restarted with jobs waiting, active and delayed: everything completes once, and the events survive', { timeout: 150_000 }, async (t) => {
  const redis = await startLocalRedis({ appendonly: true });
  t.after(() => redis.stop());
  const h = await startHarness(t, { redisUrl: redis.url, fake: { latencyMs: 1200 }, env: { BACKOFF_BASE_MS: '4000' } });
  for (let i = 0; i < 3; i++) h.fake.inject({ prompt: `rr delayed ${i}`, times: 1, fault: { type: 'status', status: 503, errorType: 'internal_error', message: 'busy' } });
  const producer = h.producer();
  const first = [
    ...Array.from({ length: 3 }, (_, i) => ({ id: `rr-d${i}`, prompt: `rr delayed ${i}` })),
    ...Array.from({ length: 21 }, (_, i) => ({ id: `rr-${i}`, prompt: `rr ${i}` })),
  ];
  await producer.enqueueBulk(first, { batch: 'rr' });
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '3' }), h.spawnWorker({ WORKER_CONCURRENCY: '3' })]);
  await waitFor(
    async () => {
      const c = await producer.queue.getJobCounts('waiting', 'active', 'delayed', 'completed');
      return (c.delayed ?? 0) > 0 && (c.active ?? 0) > 0 && (c.waiting ?? 0) > 0 && (c.completed ?? 0) > 0 ? c : undefined;
    },
    { timeoutMs: 30_000, what: 'jobs waiting, active, delayed and completed at once' },
  );
  const eventsBefore = (await h.events()).length;
  assert.ok(eventsBefore > 0);

  await redis.restart();

  // The same producer reconnects on its own.
  await waitFor(async () => producer.enqueueBulk(Array.from({ length: 4 }, (_, i) => ({ id: `rr-after-${i}`, prompt: `rr after ${i}` })), { batch: 'rr' }).then(() => true, () => false), { timeoutMs: 15_000, intervalMs: 250, what: 'an enqueue after the restart' });
  const all = [...first.map((r) => r.id), ...Array.from({ length: 4 }, (_, i) => `rr-after-${i}`)];
  const batch = await producer.waitForBatch('rr', { timeoutMs: 90_000 });
  assert.deepEqual(batch.counts, { waiting: 0, active: 0, delayed: 0, completed: all.length, failed: 0, cancelled: 0, expired: 0 });

  const events = await h.events();
  assert.ok(events.length >= eventsBefore, 'the stream kept every entry');
  const finalEvents = auditFinalEvents(events, all.map((id) => ({ id, final: 'completed' })));
  assert.deepEqual({ violations: finalEvents.violations, foreign: finalEvents.foreign }, { violations: [], foreign: 0 }, 'exactly one job.completed per job');
  assert.equal((await producer.queue.getJobCounts('completed')).completed, all.length);
  const owned = new Map(all.map((id) => [`images/rr/${id}/0.png`, id]));
  const objects = auditObjects(await h.listObjects('images/rr/'), owned, { keyPrefix: 'images', manifests: new Set(['images/rr/manifest.jsonl']) });
  assert.deepEqual(objects, { orphans: [], multiFolder: [], missing: [] }, 'one image per job');
  for (const w of workers) {
    w.kill('SIGTERM');
    assert.equal(await w.exited, 0);
  }
});

/**
 * Fault 3: Redis unreachable when a producer enqueues: the library and the CLI fail fast
 * with a clear error (nothing buffered offline); a retried enqueue with the same id after
 * recovery yields exactly one job.
 */
test('Redis down at enqueue: the library and the CLI fail fast; after recovery the same id is one job', { timeout: 60_000 }, async (t) => {
  const redis = await startLocalRedis({ appendonly: true });
  t.after(() => redis.stop());
  const h = await startHarness(t, { redisUrl: redis.url });
  const producer = h.producer();
  await producer.enqueue({ id: 'warm', prompt: 'connected once' });
  await redis.stop();

  const started = Date.now();
  await assert.rejects(producer.enqueue({ id: 'retry-me', prompt: 'p' }), (err: Error) => {
    assert.ok(err instanceof QueueUnavailableError, err.message);
    assert.match(err.message, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${redis.port} is unreachable`));
    return true;
  });
  assert.ok(Date.now() - started < 3000, `failed in ${Date.now() - started} ms`);
  const cli = await h.cli(['enqueue', '-'], { input: JSON.stringify({ id: 'retry-me', prompt: 'p' }) });
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /^fluxq: Redis at redis:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\); nothing was enqueued/);
  assert.equal(cli.stderr.trim().split('\n').length, 1, 'one line, no stack');

  await redis.restart();
  await waitFor(() => producer.enqueue({ id: 'retry-me', prompt: 'p' }).then((o) => o.status === 'created', () => false), { timeoutMs: 15_000, intervalMs: 200, what: 'the enqueue to go through' });
  const again = await h.cli(['enqueue', '-'], { input: JSON.stringify({ id: 'retry-me', prompt: 'p' }) });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 new, 1 already enqueued or done/);
  const waiting = await producer.queue.getJobs(['waiting']);
  assert.deepEqual(waiting.map((j) => j.id).sort(), ['retry-me', 'warm']);
});
