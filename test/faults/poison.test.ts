import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startHarness } from '../helpers/harness.js';

/** Fault 7: job data another client wrote, that fluxq cannot use. */
test('poison jobs written by another client fail with a clear reason and neither crash nor block the worker', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const conn = new Redis(h.redisUrl, { maxRetriesPerRequest: null });
  t.after(() => conn.disconnect());
  const foreign = new Queue(h.queueName, { connection: conn, prefix: h.prefix });
  t.after(() => foreign.close());
  await foreign.add('generate', { prompt: 'raw envelope, not fluxq job data' }, { jobId: 'poison-shape' });
  await foreign.add('generate', { v: 1, params: { prompt: 'x', width: 100 } }, { jobId: 'poison-width' });
  await foreign.add('generate', 'just a string', { jobId: 'poison-string' });
  await foreign.add('generate', { v: 1, params: { prompt: 'fine' } }, { jobId: 'poison-json' });
  // Break the stored JSON of the last one, as a buggy client would.
  await conn.hset(`${h.prefix}:${h.queueName}:poison-json`, 'data', '{"v":1,"params":{"prompt":');
  const producer = h.producer();
  await producer.enqueue({ id: 'healthy', prompt: 'a healthy job after the poison' });
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '1' });
  assert.equal((await producer.waitFor('healthy', { timeoutMs: 20_000 })).state, 'completed', 'the worker kept going');
  const reasons: Record<string, RegExp> = {
    'poison-shape': /^permanent: job data is not a fluxq request \((v|params)/,
    'poison-width': /^permanent: job data is not a fluxq request \(params\.width: must be ≥ 64 and a multiple of 32, got 100\); enqueue it with fluxq$/,
    'poison-string': /^permanent: job data is not a fluxq request \(data: /,
    'poison-json': /^permanent: job data is not valid JSON \(.+\); it was not written by fluxq$/,
  };
  for (const [id, re] of Object.entries(reasons)) {
    const st = await producer.waitFor(id, { timeoutMs: 20_000 });
    assert.equal(st.state, 'failed', id);
    assert.match(st.error ?? '', re, id);
  }
  assert.equal(h.fake.calls.length, 1, 'no poison job reached the upstream');
  const failedEvents = (await h.events()).filter((e) => e.type === 'job.failed').map((e) => (e.data as { jobId: string }).jobId);
  assert.deepEqual(failedEvents.sort(), Object.keys(reasons).sort());
  assert.equal(w.proc.exitCode, null, 'the worker is still running');
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});
