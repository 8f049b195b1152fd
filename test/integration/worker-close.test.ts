import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRedis } from '../../src/shared/redis.js';
import { createS3Client } from '../../src/shared/s3.js';
import { FluxClient } from '../../src/worker/flux-client.js';
import { createWorker } from '../../src/worker/worker.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';

/** Active handles and timers by kind (Timeout, TCPSocketWrap, …). */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** What is active now beyond `before` (kind → how many more). */
function leftOver(before: Map<string, number>): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [kind, n] of resources()) if (n > (before.get(kind) ?? 0)) extra[kind] = n - (before.get(kind) ?? 0);
  return extra;
}

/** A worker with its own clients, built and closed by the test, as `fluxq worker` does. */
async function ownWorker(h: Harness, extra: Record<string, string>) {
  const config = h.config('worker', extra);
  const redis = createRedis(config, { role: 'worker' });
  redis.on('error', () => undefined);
  const s3 = createS3Client(config);
  const flux = FluxClient.fromConfig(config);
  const w = createWorker({ config, redis, s3, flux, logger: h.logger, sweepMs: 200 });
  await w.ready;
  return {
    w,
    async close() {
      await w.close();
      s3.destroy();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

test('after close, a worker that ran jobs leaves no timer or handle behind', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  await producer.queue.getJobCounts();
  const before = resources();
  const own = await ownWorker(h, { WORKER_CONCURRENCY: '2' });
  await producer.enqueueBulk([
    { id: 'close-1', prompt: 'one' },
    { id: 'close-2', prompt: 'two', batch: 'close-b' },
  ]);
  for (const id of ['close-1', 'close-2']) assert.equal((await producer.waitFor(id, { timeoutMs: 20_000 })).state, 'completed');
  await own.close();
  await waitFor(() => Object.keys(leftOver(before)).length === 0, { timeoutMs: 5000, what: 'no handle or timer left by the worker' }).catch(() => undefined);
  assert.deepEqual(leftOver(before), {}, 'handles and timers left after close');
});

test('after a shutdown that cut off a call at the deadline, no timer is left running', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20_000 } });
  const producer = h.producer();
  await producer.queue.getJobCounts();
  const before = resources();
  const own = await ownWorker(h, { WORKER_CONCURRENCY: '1', SHUTDOWN_TIMEOUT_MS: '300' });
  await producer.enqueue({ id: 'cut-off', prompt: 'a call still running at the deadline' });
  await waitFor(() => h.fake.inFlight === 1, { what: 'the call in flight' });
  await own.close();
  assert.equal(await producer.queue.getJobState('cut-off'), 'waiting', 'the cut-off job went back to the queue');
  await waitFor(() => Object.keys(leftOver(before)).length === 0, { timeoutMs: 5000, what: 'no handle or timer left by the worker' }).catch(() => undefined);
  assert.deepEqual(leftOver(before), {}, 'handles and timers left after close');
});
