import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';
import { auditFinalEvents, auditObjects, storedImageProblems } from '../helpers/outcome-checks.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';

test('a worker SIGKILLed mid-flight: a second worker completes every job, each with exactly its images, none regenerated after its upload succeeded', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 100 } });
  // crash-0 answers at once; the calls of the others are still in flight when the worker dies.
  h.fake.inject({ prompt: /of crash-[1-9]$/, times: 3, fault: { type: 'delay', ms: 3000 } });
  const proxy = await startS3Proxy(h.s3server.endpoint);
  t.after(() => proxy.close());
  const producer = h.producer();
  const ids = Array.from({ length: 10 }, (_, i) => `crash-${i}`);
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: `prompt of ${id}`, batch: 'crash' })));

  const first = await h.spawnWorker({ WORKER_CONCURRENCY: '4', S3_ENDPOINT: proxy.endpoint });
  let uploadedBeforeKill: string | undefined;
  proxy.onAnswered = (e) => {
    // The first image PUT that S3 accepted: kill the worker before it hears back.
    if (!uploadedBeforeKill && e.method === 'PUT' && e.status === 200 && /\/images\/crash\//.test(e.path)) {
      uploadedBeforeKill = e.path.split('/')[4];
      first.kill('SIGKILL');
    }
  };
  assert.equal(await first.exited, 'SIGKILL');
  assert.ok(uploadedBeforeKill, 'the worker died right after an upload landed');
  const midCall = h.fake.calls.filter((c) => c.outcome === 'client went away' || c.status === undefined).length;
  assert.ok(midCall >= 1, 'other calls were in flight when the worker died');

  const second = await h.spawnWorker({ WORKER_CONCURRENCY: '4', S3_ENDPOINT: proxy.endpoint });
  for (const id of ids) assert.equal((await producer.waitFor(id, { timeoutMs: 60_000 })).state, 'completed', id);

  const owned = new Map(ids.map((id) => [`images/crash/${id}/0.png`, id]));
  const objects = auditObjects(await h.listObjects('images/crash/'), owned, { keyPrefix: 'images', manifests: new Set(['images/crash/manifest.jsonl']) });
  assert.deepEqual(objects, { orphans: [], multiFolder: [], missing: [] }, 'every job has exactly its one image');
  for (const id of ids) {
    const { bytes, metadata } = await h.getObject(`images/crash/${id}/0.png`);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const served = h.fake.callsFor(`prompt of ${id}`).flatMap((c) => c.servedSha256);
    const images = (await producer.getJob(id))?.result?.images;
    assert.deepEqual(storedImageProblems({ id, images }, { sha256, metadata }, served), [], `${id}: the stored bytes are what the fake served`);
  }
  assert.equal(h.fake.callsFor(`prompt of ${uploadedBeforeKill}`).length, 1, 'the job whose upload succeeded was not generated again');
  const status = await producer.getJob(uploadedBeforeKill);
  assert.equal(status?.result?.attempts, 1);
  const events = auditFinalEvents(await h.events(), ids.map((id) => ({ id, final: 'completed' })));
  assert.deepEqual({ violations: events.violations, foreign: events.foreign }, { violations: [], foreign: 0 }, 'one job.completed per job');
  // Calls cut off by the kill are counted as possibly billed on the job that re-ran.
  const billed = await Promise.all(ids.map(async (id) => (await producer.getJob(id))?.possibly_billed ?? 0));
  assert.equal(billed.reduce((a, b) => a + b, 0), midCall, 'every call cut off mid-flight is counted once');
  second.kill('SIGTERM');
  await waitFor(async () => (await second.exited) === 0, { what: 'the second worker to exit 0' });
});
