import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';
import { auditFinalEvents, auditObjects } from '../helpers/outcome-checks.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';

/**
 * Fault 1: a worker SIGKILLed mid-call, mid-decode and right after its upload landed.
 * The next worker completes every job; a job whose images were stored is never called again.
 */
test('SIGKILL mid-call, mid-decode and right after upload: every job completes, none is regenerated once stored', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 50 } });
  const proxy = await startS3Proxy(h.s3server.endpoint);
  t.after(() => proxy.close());
  h.fake.inject({ prompt: 'mid-call', times: 1, fault: { type: 'delay', ms: 5000 } });
  h.fake.inject({ prompt: 'mid-decode', times: 1, fault: { type: 'dribble', ms: 5000 } });
  const env = { WORKER_CONCURRENCY: '1', S3_ENDPOINT: proxy.endpoint };
  const producer = h.producer();
  const sha = async (key: string) => createHash('sha256').update((await h.getObject(key)).bytes).digest('hex');

  // Mid-call: the upstream has the request, no answer yet.
  let w = await h.spawnWorker(env);
  await producer.enqueue({ id: 'k-call', prompt: 'mid-call', width: 1024, height: 1024 });
  await waitFor(() => h.fake.callsFor('mid-call').length === 1, { what: 'the call to arrive' });
  w.kill('SIGKILL');
  await w.exited;

  // Mid-decode: the 200 is arriving, half of its body read.
  w = await h.spawnWorker(env);
  const first = await producer.waitFor('k-call', { timeoutMs: 30_000 });
  assert.equal(first.state, 'completed');
  await producer.enqueue({ id: 'k-decode', prompt: 'mid-decode', width: 1024, height: 1024 });
  await waitFor(() => h.fake.callsFor('mid-decode')[0]?.outcome === 'dribbling', { what: 'the body to start arriving' });
  await new Promise((r) => setTimeout(r, 1200));
  w.kill('SIGKILL');
  await w.exited;

  // Right after upload: S3 has the object; the worker dies before it hears back.
  w = await h.spawnWorker(env);
  assert.equal((await producer.waitFor('k-decode', { timeoutMs: 30_000 })).state, 'completed');
  let killedAfterUpload = false;
  proxy.onAnswered = (e) => {
    if (!killedAfterUpload && e.method === 'PUT' && e.status === 200 && e.path.includes('/k-upload/')) {
      killedAfterUpload = true;
      w.kill('SIGKILL');
    }
  };
  await producer.enqueue({ id: 'k-upload', prompt: 'after-upload', width: 1024, height: 1024 });
  await w.exited;
  assert.ok(killedAfterUpload);
  proxy.onAnswered = undefined;
  w = await h.spawnWorker(env);
  const third = await producer.waitFor('k-upload', { timeoutMs: 30_000 });
  assert.equal(third.state, 'completed');

  // Mid-call and mid-decode: the cut-off call is counted as possibly billed, and paid again.
  for (const [id, prompt] of [['k-call', 'mid-call'], ['k-decode', 'mid-decode']] as const) {
    const st = await producer.getJob(id);
    const calls = h.fake.callsFor(prompt);
    assert.equal(calls.length, 2, `${id}: the cut-off call and the one that completed`);
    assert.equal(st?.possibly_billed, 1, `${id}: the cut-off call is counted as possibly billed`);
    assert.equal(st?.result?.attempts, 2);
    assert.equal(await sha(`images/${id}/0.png`), calls[1]?.servedSha256[0], `${id}: the stored image is the second answer`);
  }
  // After upload: no second call, the image is the one served.
  const uploadCalls = h.fake.callsFor('after-upload');
  assert.equal(uploadCalls.length, 1, 'no second call once the images were stored');
  assert.equal(await sha('images/k-upload/0.png'), uploadCalls[0]?.servedSha256[0]);
  assert.equal(third.result?.attempts, 1);
  assert.equal(third.possibly_billed, 0);
  // Exactly one image per job, one job.completed per job.
  const ids = ['k-call', 'k-decode', 'k-upload'];
  const objects = auditObjects(await h.listObjects('images/'), new Map(ids.map((id) => [`images/${id}/0.png`, id])), { keyPrefix: 'images' });
  assert.deepEqual(objects, { orphans: [], multiFolder: [], missing: [] }, 'exactly one image per job');
  const events = auditFinalEvents(await h.events(), ids.map((id) => ({ id, final: 'completed' })));
  assert.deepEqual({ violations: events.violations, foreign: events.foreign }, { violations: [], foreign: 0 }, 'one job.completed per job');
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});
