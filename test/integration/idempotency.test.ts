import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ValidationError } from '../../src/shared/errors.js';
import { startHarness, waitFor } from '../helpers/harness.js';

test('the same id twice is one job, also after the job completed and was trimmed from Redis', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  assert.deepEqual(await producer.enqueue({ id: 'same', prompt: 'once' }), { id: 'same', status: 'created' });
  assert.deepEqual(await producer.enqueue({ id: 'same', prompt: 'once' }), { id: 'same', status: 'exists' });
  await h.worker();
  assert.equal((await producer.waitFor('same')).state, 'completed');
  // The id record is final before BullMQ moves the job out of active (and unlocks it).
  await waitFor(async () => (await producer.queue.getJobState('same')) === 'completed', { what: 'BullMQ to finish the job' });
  const job = await producer.queue.getJob('same');
  await job?.remove(); // what removeOnComplete does, later
  assert.equal(await producer.queue.getJob('same'), undefined);
  assert.deepEqual(await producer.enqueue({ id: 'same', prompt: 'once' }), { id: 'same', status: 'exists' });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(h.fake.callsFor('once').length, 1, 'one upstream call in all');
  const st = await producer.getJob('same');
  assert.equal(st?.state, 'completed');
  assert.equal(st?.result?.images[0]?.key, 'images/same/0.png');
});

test('enqueuing the id of a failed job retries that same job with fresh attempts', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  h.fake.inject({ prompt: 'sometimes', times: 1, fault: { type: 'status', status: 422, errorType: 'param_error', message: 'nope' } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'again', prompt: 'sometimes' });
  const failed = await producer.waitFor('again');
  assert.equal(failed.state, 'failed');
  assert.deepEqual(await producer.enqueue({ id: 'again', prompt: 'sometimes' }), { id: 'again', status: 'retried' });
  const done = await producer.waitFor('again');
  assert.equal(done.state, 'completed');
  assert.equal(done.result?.attempts, 1, 'attempts start again');
  const events = (await h.events()).filter((e) => (e.data as { jobId?: string }).jobId === 'again').map((e) => e.type);
  assert.deepEqual(events, ['job.failed', 'job.completed'], 'one final event per final state');
});

test('bulk enqueue is all-or-nothing on validation and names each bad item', async (t) => {
  const h = await startHarness(t);
  const producer = h.producer();
  await assert.rejects(
    producer.enqueueBulk([{ prompt: 'ok' }, { prompt: '' }, { prompt: 'x', id: '123' }, { prompt: 'y', id: 'dup' }, { prompt: 'z', id: 'dup' }]),
    (err: ValidationError) => {
      assert.deepEqual(err.details, [
        { path: '1.prompt', message: 'must not be empty' },
        { path: '2.id', message: 'must not be all digits (BullMQ keeps integer ids for itself); ids are 1–128 characters of A–Z a–z 0–9 . _ ~ -, not all digits, not "." or "..", and not a name BullMQ keeps under the queue\'s key' },
        { path: '4.id', message: '"dup" is used twice (first at item 3)' },
      ]);
      return true;
    },
  );
  assert.deepEqual(await h.redis.keys(`${h.prefix}:*`), []);
  const one = await producer.enqueue({ prompt: 'no id given' });
  assert.match(one.id, /^[0-9a-f-]{36}$/, 'the library assigns a unique id');
});
