import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../helpers/harness.js';

/**
 * BullMQ can fail a job without running the processor: the stall limit (and
 * maxStartedAttempts) ends it with a reason of BullMQ's own. Those are recorded through
 * the same path as the processor's failures, classified as `internal:` by type — a
 * reason of BullMQ's that happens to contain a colon is not taken for one of fluxq's.
 */
test('failures BullMQ decides on its own are recorded once, as internal, with the job.failed of every other failure', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  await producer.enqueueBulk([
    { id: 'stall-limit', prompt: 'stalled too often', metadata: { customer: 'c-1' } },
    { id: 'colon-reason', prompt: 'failed by BullMQ with a colon in its reason', batch: 'bf' },
  ]);
  // What BullMQ's stalled-job check writes when a job passed maxStalledCount: the next
  // worker to fetch it fails it with this reason, without running the processor.
  await h.redis.hset(`${h.prefix}:${h.queueName}:stall-limit`, 'defa', 'job stalled more than allowable limit');
  await h.redis.hset(`${h.prefix}:${h.queueName}:colon-reason`, 'defa', 'bullmq: a reason of its own');
  await h.worker();
  const expected: Record<string, string> = {
    'stall-limit': 'internal: job stalled more than allowable limit',
    'colon-reason': 'internal: bullmq: a reason of its own',
  };
  for (const [id, reason] of Object.entries(expected)) {
    const st = await producer.waitFor(id, { timeoutMs: 20_000 });
    assert.equal(st.state, 'failed', id);
    assert.equal(st.error, reason, id);
  }
  assert.equal(h.fake.calls.length, 0, 'the processor never ran');
  const failed = (await h.events()).filter((e) => e.type === 'job.failed').map((e) => e.data as Record<string, unknown>);
  assert.deepEqual(
    failed.sort((a, b) => String(a.jobId).localeCompare(String(b.jobId))),
    [
      { jobId: 'colon-reason', batchId: 'bf', error: expected['colon-reason'], attempts: 0, possibly_billed: 0, tenant: 'default' },
      { jobId: 'stall-limit', error: expected['stall-limit'], attempts: 0, possibly_billed: 0, tenant: 'default', metadata: { customer: 'c-1' } },
    ],
  );
  const batch = await producer.waitForBatch('bf', { timeoutMs: 20_000 });
  assert.equal(batch.counts.failed, 1, 'the batch counts it');
});
