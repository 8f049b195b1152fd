import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { FluxqEvent } from '../../src/shared/events.js';
import { startApi } from '../helpers/api.js';
import { startHarness, waitFor } from '../helpers/harness.js';

/**
 * SPEC §7 field condition: a job cancelled while a worker is picking it up is either
 * cancelled with no upstream call or reported active, never both cancelled and paid.
 * The worker is held right before its call start, or right after it, through the
 * worker's test hooks, and the job is cancelled there.
 */

/** Runs held at a hook until released (each hold is bounded, so nothing hangs). */
function holdPoint() {
  const held = new Set<string>();
  const gates = new Map<string, () => void>();
  let releasedAll = false;
  return {
    held,
    hook: async (jobId: string) => {
      if (releasedAll) return;
      held.add(jobId);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 30_000);
        gates.set(jobId, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    releaseAll: () => {
      releasedAll = true;
      for (const open of gates.values()) open();
    },
  };
}

/** A hold point, a harness with a quick fake, an API over it and a producer. */
async function raceRig(t: TestContext) {
  const hold = holdPoint();
  t.after(() => hold.releaseAll());
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const api = await startApi(h);
  t.after(() => api.close());
  return { hold, h, api, producer: h.producer() };
}

const jobEvents = (events: FluxqEvent[], ids: string[]) =>
  events.filter((e) => (e.type === 'job.completed' || e.type === 'job.failed') && ids.includes((e.data as { jobId: string }).jobId));

test('a job cancelled after a worker picked it up but before its call: cancelled, no upstream call, one final outcome, not completed', { timeout: 60_000 }, async (t) => {
  const { hold, h, api, producer } = await raceRig(t);
  const ids = ['race-1', 'race-2'];
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: `held ${id}` })), { batch: 'race' });
  await h.worker({ WORKER_CONCURRENCY: '2' }, { testHooks: { beforeCallStart: hold.hook } });
  await waitFor(() => hold.held.size === 2, { what: 'both runs held before their call start' });
  assert.equal(await producer.queue.getJobState('race-1'), 'active', 'the worker holds the job');

  // One through the HTTP API, the other through the batch cancel: the same atomic step.
  const res = await api.call('/v1/jobs/race-1', { method: 'DELETE' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { id: 'race-1', state: 'cancelled' });
  assert.deepEqual(await producer.cancelBatch('race'), { cancelled: 1, active: 0, open: 1 });
  hold.releaseAll();

  // The runs end without a call; BullMQ does not complete the jobs.
  await waitFor(async () => (await Promise.all(ids.map((id) => producer.queue.getJobState(id)))).every((s) => s === 'failed' || s === 'unknown'), {
    what: 'both runs ended',
  });
  const batchDone = await waitFor(
    async () => {
      const found = (await h.events()).filter((e) => e.type === 'batch.completed');
      return found.length > 0 ? found : undefined;
    },
    { what: 'batch.completed' },
  );
  assert.equal(h.fake.calls.length, 0, 'no upstream call for a cancelled job');
  for (const id of ids) {
    assert.equal((await producer.getJob(id))?.state, 'cancelled', id);
    assert.notEqual(await producer.queue.getJobState(id), 'completed', id);
  }
  const events = await h.events();
  assert.deepEqual(jobEvents(events, ids), [], 'no job.completed or job.failed after the cancel');
  assert.equal(batchDone.length, 1);
  assert.equal(events.filter((e) => e.type === 'batch.completed').length, 1, 'the batch finished once');
  assert.equal((batchDone[0]?.data as { cancelled: number }).cancelled, 2);
  assert.equal(await h.redis.hget(`${h.prefix}:stats`, 'cancelled'), '2', 'each job cancelled once');
  assert.equal(await h.redis.hget(`${h.prefix}:stats`, 'failed'), null, 'and never counted failed');
});

test('a job whose call has started cannot be cancelled (409 / active) and completes normally', { timeout: 60_000 }, async (t) => {
  const { hold, h, api, producer } = await raceRig(t);
  await producer.enqueueBulk([{ id: 'started-1', prompt: 'already calling' }], { batch: 'race-started' });
  await h.worker({}, { testHooks: { afterCallStart: hold.hook } });
  await waitFor(() => hold.held.size === 1, { what: 'the run held after its call start' });

  const res = await api.call('/v1/jobs/started-1', { method: 'DELETE' });
  assert.equal(res.status, 409);
  assert.equal(((await res.json()) as { state: string }).state, 'active');
  assert.deepEqual(await producer.cancelBatch('race-started'), { cancelled: 0, active: 1, open: 1 });
  hold.releaseAll();

  const done = await producer.waitFor('started-1', { timeoutMs: 30_000 });
  assert.equal(done.state, 'completed');
  assert.equal(done.attempts, 1);
  assert.equal(done.possibly_billed, 0);
  assert.equal(h.fake.calls.length, 1);
  await waitFor(async () => (await producer.queue.getJobState('started-1')) === 'completed', { what: 'BullMQ completed the job' });
  assert.equal(jobEvents(await h.events(), ['started-1']).filter((e) => e.type === 'job.completed').length, 1);
  assert.deepEqual(jobEvents(await h.events(), ['started-1']).map((e) => e.type), ['job.completed']);
});

test('a generation that becomes final while a run is held before its call start: the run makes no call and adds no final event', { timeout: 60_000 }, async (t) => {
  // The race as it happened in the field: the cancel's check passed while the job was
  // waiting, a worker picked it up and began its run, then the cancel's write landed.
  const hold = holdPoint();
  t.after(() => hold.releaseAll());
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  await producer.enqueue({ id: 'late-cancel', prompt: 'cancelled mid pick-up' });
  await h.worker({}, { testHooks: { beforeCallStart: hold.hook } });
  await waitFor(() => hold.held.size === 1, { what: 'the run held before its call start' });
  assert.equal((await producer.records.finalize('late-cancel', { state: 'cancelled' })).recorded, true);
  hold.releaseAll();
  await waitFor(async () => ['failed', 'completed', 'unknown'].includes(await producer.queue.getJobState('late-cancel')), { what: 'the run ended' });
  assert.equal(h.fake.calls.length, 0, 'cancelled and never paid');
  assert.equal(await producer.queue.getJobState('late-cancel'), 'failed', 'BullMQ does not complete it');
  assert.equal((await producer.getJob('late-cancel'))?.state, 'cancelled');
  assert.deepEqual(jobEvents(await h.events(), ['late-cancel']), []);
});
