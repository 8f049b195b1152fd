import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';

/** Fault 6: SIGTERM with 16 jobs in flight. */
test('SIGTERM with 16 calls in flight: all 16 completed or back in the queue within SHUTDOWN_TIMEOUT_MS, none stalled, exit 0', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 1500, jitterMs: 3000 } });
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 24 }, (_, i) => ({ id: `sl-${i}`, prompt: `sl ${i}`, width: 512, height: 512 })), { batch: 'sl' });
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '16', SHUTDOWN_TIMEOUT_MS: '2500' });
  await waitFor(() => h.fake.inFlight === 16, { timeoutMs: 15_000, what: '16 calls in flight' });
  const sent = Date.now();
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
  const took = Date.now() - sent;
  assert.ok(took < 2500 + 4000, `exited ${took} ms after SIGTERM`);
  const inFlightAtStop = h.fake.calls.filter((c) => c.at < sent);
  assert.equal(inFlightAtStop.length, 16, 'no job was taken after SIGTERM');
  const counts = await producer.queue.getJobCounts('active', 'completed', 'waiting', 'delayed', 'failed');
  assert.equal(counts.active, 0, 'none left stalled in active');
  assert.equal(counts.failed, 0);
  assert.equal((counts.completed ?? 0) + (counts.waiting ?? 0) + (counts.delayed ?? 0), 24);
  const done = counts.completed ?? 0;
  assert.ok(done >= 1 && done < 16, `some finished within the deadline, the rest went back: ${done} completed`);
  // The next worker takes them up again at once (no stall timeout to wait out).
  h.fake.configure({ latencyMs: 20, jitterMs: 0 });
  const next = await h.spawnWorker({ WORKER_CONCURRENCY: '8' });
  const resumedAt = Date.now();
  const b = await producer.waitForBatch('sl', { timeoutMs: 30_000 });
  assert.equal(b.counts.completed, 24);
  assert.ok(Date.now() - resumedAt < 4000, 'no lock had to expire first');
  // Calls cut off at the deadline are possibly billed (a job cut after its answer arrived
  // is not: its bytes went to the spool and were uploaded, not paid again); none was lost.
  const cut = inFlightAtStop.filter((c) => c.outcome === 'client went away' || c.status === undefined).length;
  assert.ok(b.possibly_billed >= cut && b.possibly_billed <= 16 - done, `possibly billed ${b.possibly_billed}, cut ${cut}, unfinished ${16 - done}`);
  const calls = h.fake.calls.filter((c) => c.status === 200 && c.outcome === 'ok').length;
  assert.ok(calls <= 24 + (16 - done), 'no job answered in full was generated again');
  next.kill('SIGTERM');
  assert.equal(await next.exited, 0);
});

test('SIGTERM with 16 calls in flight and time to finish: all 16 complete, exit 0', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 1500 } });
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 16 }, (_, i) => ({ id: `sf-${i}`, prompt: `sf ${i}`, width: 512, height: 512 })), { batch: 'sf' });
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '16', SHUTDOWN_TIMEOUT_MS: '20000' });
  await waitFor(() => h.fake.inFlight === 16, { timeoutMs: 15_000, what: '16 calls in flight' });
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
  const b = await producer.getBatch('sf');
  assert.equal(b?.counts.completed, 16);
  assert.equal(b?.possibly_billed, 0);
});
