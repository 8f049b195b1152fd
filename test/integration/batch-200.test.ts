import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';
import { auditFinalEvents, auditObjects, batchCompletedCounts, batchStatusViolations, batchTruth, manifestViolations, ownedImages, type FinalState } from '../helpers/outcome-checks.js';

test('a 200-job batch across two workers with injected 5xx and one worker SIGKILLed: exact counts, one batch.completed, a manifest of all 200', { timeout: 180_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 60, jitterMs: 60, random: { rate5xx: 0.15, seed: 7 } }, env: { JOB_ATTEMPTS: '6' } });
  // Ten prompts are refused for good: the batch has real failures.
  h.fake.inject({ prompt: /^refuse /, fault: { type: 'moderation' } });
  const producer = h.producer();
  const ids = Array.from({ length: 200 }, (_, i) => `big-${i}`);
  await producer.enqueueBulk(
    ids.map((id, i) => ({ id, prompt: i % 20 === 7 ? `refuse ${id}` : `prompt ${id}`, width: 256, height: 256 })),
    { batch: 'big' },
  );
  const a = await h.spawnWorker({ WORKER_CONCURRENCY: '6' });
  const b = await h.spawnWorker({ WORKER_CONCURRENCY: '6' });
  await waitFor(async () => (await producer.getBatch('big'))!.counts.completed >= 60, { timeoutMs: 60_000, what: '60 completed' });
  a.kill('SIGKILL');
  assert.equal(await a.exited, 'SIGKILL');

  const progress: number[] = [];
  const done = await producer.waitForBatch('big', { timeoutMs: 120_000, pollMs: 200, onProgress: (b) => progress.push(b.counts.completed + b.counts.failed) });
  assert.equal(done.state, 'completed');
  assert.ok(progress.length >= 2, 'onProgress saw the batch move');
  assert.deepEqual(progress, [...progress].sort((x, y) => x - y), 'finished jobs only ever grow');
  assert.equal(progress.at(-1), 200);
  // True final states, job by job.
  const jobs = await Promise.all(
    ids.map(async (id) => {
      const j = await producer.getJob(id);
      return { id, final: j?.state as FinalState | undefined, images: j?.result?.images, possiblyBilled: j?.possibly_billed };
    }),
  );
  const truth = batchTruth(jobs);
  assert.deepEqual(truth, { total: 200, completed: 190, failed: 10, cancelled: 0, open: 0, possibly_billed: done.possibly_billed });
  assert.deepEqual(done.counts, { waiting: 0, active: 0, delayed: 0, completed: 190, failed: 10, cancelled: 0, expired: 0 });
  // The ledger counts what the upstream reported for every call fluxq heard back from: 190
  // completed jobs, plus any job whose answer arrived but whose upload the kill cut short
  // (it was generated again). Calls the kill cut off before fluxq heard back are possibly billed.
  const answered200 = h.fake.calls.filter((c) => c.status === 200 && c.servedSha256.length > 0).length;
  assert.ok(done.output_mp >= 190 && done.output_mp <= answered200, `output_mp ${done.output_mp}, 200s ${answered200}`);
  assert.ok(done.output_mp + done.possibly_billed >= answered200, 'every answered call is in the ledger');

  const completedEvents = await waitFor(async () => {
    const evs = (await h.events()).filter((e) => e.type === 'batch.completed');
    return evs.length > 0 ? evs : undefined;
  });
  // The last job's worker completes the batch at once; every worker's sweeper (every 5 s)
  // retries owed completions. Give a duplicate one sweep to show up.
  await new Promise((r) => setTimeout(r, 5500));
  const again = (await h.events()).filter((e) => e.type === 'batch.completed');
  assert.deepEqual(batchStatusViolations('big', truth, done, batchCompletedCounts(again).get('big') ?? 0), [], 'counts agree, batch.completed exactly once');
  const data = completedEvents[0]?.data as Record<string, unknown>;
  assert.deepEqual(
    { total: data.total, completed: data.completed, failed: data.failed, cancelled: data.cancelled, output_mp: data.output_mp, possibly_billed: data.possibly_billed, manifest: data.manifest },
    { total: 200, completed: 190, failed: 10, cancelled: 0, output_mp: done.output_mp, possibly_billed: done.possibly_billed, manifest: 'images/big/manifest.jsonl' },
  );
  assert.equal(data.cost_usd, Math.round(done.output_mp * 0.03 * 1e6) / 1e6);
  const finalEvents = auditFinalEvents(await h.events(), jobs);
  assert.deepEqual({ violations: finalEvents.violations, foreign: finalEvents.foreign }, { violations: [], foreign: 0 }, 'one final event per job');

  const manifestText = (await h.getObject('images/big/manifest.jsonl')).bytes.toString('utf8');
  assert.deepEqual(manifestViolations('big', manifestText, jobs).violations, [], 'one manifest line per job, with its final state');
  const manifest = manifestText.trim().split('\n').map((l) => JSON.parse(l) as { id: string; state: string; prompt: string; images: { key: string; sha256: string }[]; error?: string });
  for (const m of manifest) {
    if (m.prompt.startsWith('refuse')) {
      assert.equal(m.state, 'failed');
      assert.deepEqual(m.images, []);
      assert.match(m.error ?? '', /^permanent: HTTP 400 sensitive_check_error/);
    } else {
      assert.equal(m.state, 'completed', m.id);
      assert.deepEqual(m.images.map((i) => i.key), [`images/big/${m.id}/0.png`]);
      assert.match(m.images[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
    }
  }
  const objects = auditObjects(await h.listObjects('images/big/'), ownedImages(jobs), { keyPrefix: 'images', manifests: new Set(['images/big/manifest.jsonl']) });
  assert.deepEqual(objects, { orphans: [], multiFolder: [], missing: [] }, 'no stray objects');
  assert.equal(ownedImages(jobs).size, 190);
  b.kill('SIGTERM');
  assert.equal(await b.exited, 0);
});
