import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Fault } from '../../src/demo/fake-flux.js';
import { startHarness } from '../helpers/harness.js';

/** Fault 5: the upstream misbehaves in every way SPEC §1 names; each job ends right, and the ledger says what it cost. */
test('timeouts, resets, truncated and non-JSON bodies, bad base64 and non-image data: retried, counted as possibly billed, completed', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 30 }, env: { FLUX_TIMEOUT_MS: '1000', MAX_AMBIGUOUS_RETRIES: '2' } });
  const faults: Fault[] = [{ type: 'timeout' }, { type: 'reset' }, { type: 'truncated' }, { type: 'not-json' }, { type: 'bad-base64' }, { type: 'not-image' }, { type: 'empty-data' }];
  for (const f of faults) h.fake.inject({ prompt: `uf ${f.type}`, times: 1, fault: f });
  const producer = h.producer();
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '4' });
  await producer.enqueueBulk(faults.map((f) => ({ id: `uf-${f.type}`, prompt: `uf ${f.type}` })), { batch: 'uf' });
  const b = await producer.waitForBatch('uf', { timeoutMs: 60_000 });
  assert.equal(b.counts.completed, faults.length);
  assert.equal(b.possibly_billed, faults.length, 'each bad answer counted once');
  for (const f of faults) {
    const st = await producer.getJob(`uf-${f.type}`);
    assert.equal(st?.state, 'completed', f.type);
    assert.equal(st?.possibly_billed, 1, f.type);
    assert.equal(st?.result?.attempts, 2, f.type);
    assert.equal(h.fake.callsFor(`uf ${f.type}`).length, 2, f.type);
  }
  assert.equal((await h.listObjects('images/uf/')).filter((k) => k.endsWith('.png')).length, faults.length);
  w.kill('SIGTERM');
  assert.equal(await w.exited, 0);
});

test('a 5xx storm: every job retried with backoff until it completes, nothing counted as billed', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 }, env: { JOB_ATTEMPTS: '8', BACKOFF_BASE_MS: '100' } });
  h.fake.inject({ times: 40, fault: { type: 'status', status: 503, errorType: 'internal_error', message: 'storm' } });
  const producer = h.producer();
  const w = await h.spawnWorker({ WORKER_CONCURRENCY: '4' });
  await producer.enqueueBulk(Array.from({ length: 12 }, (_, i) => ({ id: `storm-${i}`, prompt: `storm ${i}` })), { batch: 'storm' });
  const b = await producer.waitForBatch('storm', { timeoutMs: 60_000 });
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 12, failed: 0, cancelled: 0, expired: 0 });
  assert.equal(h.fake.calls.filter((c) => c.status === 503).length, 40);
  assert.equal(b.possibly_billed, 0);
  const attempts = await Promise.all(Array.from({ length: 12 }, async (_, i) => (await producer.getJob(`storm-${i}`))?.result?.attempts ?? 0));
  assert.equal(attempts.reduce((x, y) => x + y, 0), 52, 'every 503 and every success spent one attempt');
  w.kill('SIGTERM');
  await w.exited;
});

test('a 30 s 429 storm: the fleet backs off for each Retry-After instead of burning attempts; every job completes with attempts 1', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 50 }, env: { JOB_ATTEMPTS: '2' } });
  const producer = h.producer();
  const workers = await Promise.all([h.spawnWorker({ WORKER_CONCURRENCY: '4' }), h.spawnWorker({ WORKER_CONCURRENCY: '4' })]);
  h.fake.rateLimitFor(30_000, '5');
  const stormStart = Date.now();
  await producer.enqueueBulk(Array.from({ length: 16 }, (_, i) => ({ id: `r429-${i}`, prompt: `r429 ${i}` })), { batch: 'r429' });
  const b = await producer.waitForBatch('r429', { timeoutMs: 90_000 });
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 16, failed: 0, cancelled: 0, expired: 0 });
  const limited = h.fake.calls.filter((c) => c.status === 429);
  // 30 s of 5 s windows: about seven rounds of probes, not 16 jobs × retries × workers.
  assert.ok(limited.length >= 5 && limited.length <= 7 * 8, `${limited.length} calls got a 429`);
  const gaps = limited.slice(1).map((c, i) => c.at - (limited[i]?.at ?? 0)).filter((g) => g > 1000);
  assert.ok(gaps.every((g) => g >= 4500), `the fleet waited each Retry-After between rounds: ${gaps.join(', ')}`);
  assert.ok(Date.now() - stormStart >= 30_000);
  for (let i = 0; i < 16; i++) assert.equal((await producer.getJob(`r429-${i}`))?.result?.attempts, 1, 'a 429 spends no attempt');
  for (const w of workers) {
    w.kill('SIGTERM');
    assert.equal(await w.exited, 0);
  }
});
