import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueueKeys } from 'bullmq';
import { ValidationError } from '../../src/shared/errors.js';
import { startApi } from '../helpers/api.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/** SPEC §7's list, and every name the pinned BullMQ keeps under the queue's key, and `.`/`..`. */
const SPEC_RESERVED = ['meta', 'events', 'id', 'wait', 'active', 'paused', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children', 'limiter', 'marker', 'stalled', 'stalled-check', 'pc', 'de', 'repeat'];
const BULLMQ_NAMES = Object.keys(new QueueKeys().getKeys('q')).filter((k) => k !== '');
const REFUSED = [...new Set([...SPEC_RESERVED, ...BULLMQ_NAMES, 'metrics', 'priority', '.', '..'])];

/** Every key under the harness's prefix with its type (and a hash's fields): what a refusal must not change. */
async function snapshot(h: Harness): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of (await h.redis.keys(`${h.prefix}:*`)).sort()) {
    const type = await h.redis.type(key);
    out[key] = type === 'hash' ? `hash ${JSON.stringify(await h.redis.hgetall(key))}` : type;
  }
  return out;
}

test('ids that name BullMQ keys of the queue (marker, meta, …) and . / .. are refused naming id by the library, CLI and API; ordinary jobs still run', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const producer = h.producer();
  const api = await startApi(h);
  t.after(() => api.close());
  // The queue exists (its meta is written) before the refusals, so the snapshot compares like with like.
  await producer.enqueue({ id: 'before', prompt: 'before the refusals' });
  const before = await snapshot(h);

  // Library: each one a ValidationError naming `id`, with what is allowed.
  for (const id of REFUSED) {
    const err = await producer.enqueue({ id, prompt: 'collide' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ValidationError, `library accepted id ${JSON.stringify(id)}`);
    assert.deepEqual(err.details.map((d) => d.path), ['id'], id);
    assert.match(err.details[0]?.message ?? '', /1–128 characters of A–Z a–z 0–9 \. _ ~ -/, id);
  }
  assert.equal(await producer.getJob('marker'), undefined, 'no job can be called marker');
  assert.equal(await producer.cancelJob('meta'), 'unknown');
  await assert.rejects(producer.waitFor('marker'), (e: unknown) => e instanceof ValidationError && e.details[0]?.path === 'id', 'waiting for an impossible id fails at once');
  await assert.rejects(producer.enqueue({ prompt: 'p' }, { batch: '..' }), (e: unknown) => e instanceof ValidationError && e.details[0]?.path === 'batch');

  // CLI: every line named, exit 2, nothing enqueued; a `.`/`..` batch refused naming --batch / batch.
  const jsonl = REFUSED.map((id) => JSON.stringify({ id, prompt: 'collide' })).join('\n');
  const cli = await h.cli(['enqueue', '-', '--batch', 'cli-refused'], { input: jsonl });
  assert.equal(cli.code, 2, cli.stderr);
  REFUSED.forEach((id, i) => assert.match(cli.stderr, new RegExp(`line ${i + 1}: id: must not be "${id.replace(/\./g, '\\.')}"`), id));
  const dots = await h.cli(['enqueue', '-', '--batch', '..'], { input: JSON.stringify({ prompt: 'p' }) });
  assert.equal(dots.code, 2, dots.stderr);
  assert.match(dots.stderr, /--batch must not be "\.\."/);
  const dotsInLine = await h.cli(['enqueue', '-'], { input: JSON.stringify({ prompt: 'p', batch: '.' }) });
  assert.equal(dotsInLine.code, 2, dotsInLine.stderr);
  assert.match(dotsInLine.stderr, /line 1: batch: must not be "\."/);

  // HTTP API: 400 naming id (requests.N.id in a batch); path ids never reach Redis.
  for (const id of REFUSED) {
    const res = await api.call('/v1/jobs', { method: 'POST', json: { id, prompt: 'collide' } });
    assert.equal(res.status, 400, id);
    assert.deepEqual(((await res.json()) as { details: { path: string }[] }).details.map((d) => d.path), ['id'], id);
  }
  const batch = await api.call('/v1/batches', { method: 'POST', json: { requests: REFUSED.map((id) => ({ id, prompt: 'collide' })) } });
  assert.equal(batch.status, 400);
  assert.deepEqual(((await batch.json()) as { details: { path: string }[] }).details.map((d) => d.path), REFUSED.map((_, i) => `requests.${i}.id`));
  const dotBatch = await api.call('/v1/batches', { method: 'POST', json: { batch: '..', requests: [{ prompt: 'p' }] } });
  assert.equal(dotBatch.status, 400);
  assert.deepEqual(((await dotBatch.json()) as { details: { path: string }[] }).details.map((d) => d.path), ['batch']);
  for (const id of ['marker', 'meta', 'wait', 'stalled-check']) {
    for (const method of ['GET', 'DELETE']) {
      const res = await api.call(`/v1/jobs/${id}`, { method });
      assert.equal(res.status, 400, `${method} /v1/jobs/${id}`);
      const body = (await res.json()) as { error: string; details: { path: string }[] };
      assert.deepEqual(body.details.map((d) => d.path), ['id']);
      assert.match(body.error, new RegExp(`^id "${id}" must not be "${id}": BullMQ keeps a key of that name`));
    }
  }
  const jobsKeyAsBatch = await api.call('/v1/batches/x:jobs');
  assert.equal(jobsKeyAsBatch.status, 400, 'a batch id that would name another key');

  assert.deepEqual(await snapshot(h), before, 'nothing was written to (or removed from) Redis for a refused id');
  assert.equal(await h.redis.type(`${h.prefix}:${h.queueName}:marker`), before[`${h.prefix}:${h.queueName}:marker`] ?? 'none');

  // The fleet still works: the job enqueued before and a new one complete on a worker.
  await h.worker();
  await producer.enqueue({ id: 'after', prompt: 'after the refusals' });
  for (const id of ['before', 'after']) assert.equal((await producer.waitFor(id, { timeoutMs: 30_000 })).state, 'completed', id);
  assert.equal(h.fake.calls.length, 2);
  // Case matters to Redis: `Marker` is no key of BullMQ's, so it is an ordinary id.
  await producer.enqueue({ id: 'Marker', prompt: 'capital M' });
  assert.equal((await producer.waitFor('Marker', { timeoutMs: 30_000 })).state, 'completed');
});
