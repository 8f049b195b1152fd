import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';

test('SIGTERM: the worker stops taking jobs, finishes in-flight ones and exits 0', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 1200 } });
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 6 }, (_, i) => ({ id: `sd-${i}`, prompt: `sd ${i}` })));
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '2' });
  await waitFor(() => h.fake.inFlight === 2, { what: 'two calls in flight' });
  const sentAt = Date.now();
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
  assert.ok(Date.now() - sentAt < 10_000);
  assert.equal(h.fake.calls.length, 2, 'no new job was taken after SIGTERM');
  // fluxq's view of each job (a job still parked by fair share reads as waiting; BullMQ calls it delayed).
  const states = await Promise.all(Array.from({ length: 6 }, async (_, i) => (await producer.getJob(`sd-${i}`))?.state));
  assert.deepEqual(states.sort(), ['completed', 'completed', 'waiting', 'waiting', 'waiting', 'waiting']);
  assert.equal((await producer.queue.getJobCounts('active')).active, 0);
});

test('at SHUTDOWN_TIMEOUT_MS unfinished calls are cut off and go back to the queue; the next worker finishes them, counted as possibly billed', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 8000 } });
  const producer = h.producer();
  await producer.enqueueBulk([{ id: 'slow-1', prompt: 'slow 1' }, { id: 'slow-2', prompt: 'slow 2' }]);
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '2', SHUTDOWN_TIMEOUT_MS: '1000' });
  await waitFor(() => h.fake.inFlight === 2, { what: 'two calls in flight' });
  const sentAt = Date.now();
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
  const took = Date.now() - sentAt;
  assert.ok(took >= 900 && took < 6000, `exit after the deadline, took ${took} ms`);
  const counts = await producer.queue.getJobCounts('waiting', 'active', 'failed');
  assert.deepEqual(counts, { waiting: 2, active: 0, failed: 0 }, 'both back in the queue, none stalled in active');
  h.fake.configure({ latencyMs: 10 });
  await h.worker();
  for (const id of ['slow-1', 'slow-2']) {
    const st = await producer.waitFor(id, { timeoutMs: 20_000 });
    assert.equal(st.state, 'completed');
    assert.equal(st.possibly_billed, 1, 'the cut-off call may have been billed');
    assert.equal(st.result?.attempts, 2);
  }
});
