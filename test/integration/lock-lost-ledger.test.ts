import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';

/**
 * A run that loses its BullMQ lock while its call is in flight, but is alive: the job
 * runs again on another worker meanwhile. Each of the two calls is counted once, as the
 * attempt it was, and neither as possibly billed.
 */
test('a run that lost its lock mid-call is not counted possibly billed by the re-run; both calls count once', { timeout: 60_000 }, async (t) => {
  const held = new Set<string>();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    release = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  t.after(() => release());
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { STALLED_INTERVAL_MS: '1000' } });
  const producer = h.producer();
  await producer.enqueueBulk([{ id: 'lost-1', prompt: 'a call outliving its lock' }], { batch: 'lost' });
  // Run A: counted started, then held before the request goes out; its lease keeps running.
  await h.worker({ WORKER_CONCURRENCY: '1' }, { testHooks: { afterCallStart: async (id) => (held.add(id), gate) } });
  await waitFor(() => held.has('lost-1'), { what: 'run A held mid-call' });
  // A loses its lock (its renewals fail from now on): BullMQ's stall check puts the job
  // back and a second worker runs it while A is still alive.
  assert.equal(await h.redis.del(`${h.prefix}:${h.queueName}:lost-1:lock`), 1);
  await h.worker({ WORKER_CONCURRENCY: '1' });
  const completed = await waitFor(async () => (await h.events()).find((e) => e.type === 'job.completed'), { what: 'run B completed the job', timeoutMs: 30_000 });
  const data = completed.data as { attempts: number; possibly_billed: number };
  assert.equal(data.possibly_billed, 0, "run B did not count A's live call as orphaned");
  assert.equal(data.attempts, 1);
  assert.equal(h.fake.calls.length, 1);

  // A's call goes out and is settled by A: counted once, as an attempt, not possibly billed.
  release();
  await waitFor(async () => h.fake.calls.length === 2 && (await producer.getJob('lost-1'))?.attempts === 2, { what: "run A's call settled" });
  const st = await producer.getJob('lost-1');
  assert.equal(st?.state, 'completed');
  assert.equal(st?.possibly_billed, 0);
  const rec = await h.redis.hgetall(`${h.prefix}:id:lost-1`);
  assert.deepEqual([rec.started, rec.settled, rec.attempts, rec.pb], ['2', '2', '2', '0']);
  const batch = await producer.getBatch('lost');
  assert.equal(batch?.possibly_billed, 0);
  assert.equal(batch?.output_mp, 2, 'both calls reported their megapixels');
  assert.equal((await h.events()).filter((e) => e.type === 'job.completed').length, 1, 'one final event');
});
