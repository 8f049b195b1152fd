import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallRecord } from '../../src/demo/fake-flux.js';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { auditFinalEvents, auditObjects } from '../helpers/outcome-checks.js';

/**
 * Fault: a worker SIGKILLed and Redis restarted (AOF, appendfsync always) in the middle of
 * a fair-share run of two tenants (SPEC §8, issue 13). The fair flows, the virtual clock
 * and the parked jobs live in Redis, so after the restart the dispatcher picks up where it
 * was: both tenants keep sharing the starts, every job completes once, and no job is
 * called upstream more than once except for a call the kill cut off (possibly billed).
 *
 * What breaks it: a Redis that loses its data (no persistence) loses the parked jobs
 * (counts fall short of 210); fair flows lost while BullMQ's parked jobs survive leave
 * those jobs delayed until the far-future parked time (waitForBatch times out); a
 * dispatcher that stops releasing after the reconnect (no safety-net timer) stalls the
 * run the same way; one that releases in FIFO order after the restart gives beta ~0 %
 * of the starts per window.
 */

const TOTAL_A = 150;
const TOTAL_B = 60;
const requests = (tag: string, n: number, tenant: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, prompt: `${tag} ${i}`, width: 256, height: 256, tenant }));
const tagOf = (c: CallRecord) => (c.prompt ?? '').split(' ')[0] ?? '';

test('a worker SIGKILLed and Redis restarted during a fair-share run: fairness resumes, no job lost or double-paid', { timeout: 90_000 }, async (t) => {
  const redis = await startLocalRedis({ appendonly: true });
  t.after(() => redis.stop());
  const h = await startHarness(t, { redisUrl: redis.url, fake: { latencyMs: 150, jitterMs: 50 }, env: { GLOBAL_CONCURRENCY: '6', WORKER_CONCURRENCY: '3' } });
  const producer = h.producer();
  const workers = await Promise.all([h.spawnWorker(), h.spawnWorker()]);
  const alpha = requests('A', TOTAL_A, 'alpha');
  const beta = requests('B', TOTAL_B, 'beta');
  await producer.enqueueBulk(alpha, { batch: 'fa' });
  await waitFor(() => h.fake.calls.length >= 12, { timeoutMs: 20_000, what: 'alpha running' });
  await producer.enqueueBulk(beta, { batch: 'fb' });
  await waitFor(() => h.fake.calls.filter((c) => tagOf(c) === 'B').length >= 6, { timeoutMs: 20_000, what: 'beta running' });

  // SIGKILL one worker with calls in flight, restart Redis, then start a replacement.
  const inFlightAtKill = h.fake.calls.filter((c) => c.endedAt === undefined).length;
  workers[0]!.kill('SIGKILL');
  await workers[0]!.exited;
  await redis.restart();
  const startsAtRestart = h.fake.calls.length;
  workers[0] = await h.spawnWorker();
  const bAtRestart = h.fake.calls.filter((c) => tagOf(c) === 'B').length;
  assert.ok(bAtRestart < TOTAL_B - 20, `beta still backlogged at the restart (${bAtRestart} of ${TOTAL_B} started)`);

  const [a, b] = await Promise.all([producer.waitForBatch('fa', { timeoutMs: 60_000, pollMs: 250 }), producer.waitForBatch('fb', { timeoutMs: 60_000, pollMs: 250 })]);
  const none = { waiting: 0, active: 0, delayed: 0, failed: 0, cancelled: 0, expired: 0 };
  assert.deepEqual(a.counts, { ...none, completed: TOTAL_A }, 'every alpha job completed');
  assert.deepEqual(b.counts, { ...none, completed: TOTAL_B }, 'every beta job completed');

  // Exactly once: one final event per job, one image per job in its batch's folder.
  const all = [...alpha, ...beta];
  const finalEvents = auditFinalEvents(await h.events(), all.map((r) => ({ id: r.id, final: 'completed' })));
  assert.deepEqual({ violations: finalEvents.violations, foreign: finalEvents.foreign }, { violations: [], foreign: 0 }, 'exactly one job.completed per job');
  for (const [batch, rs] of [['fa', alpha], ['fb', beta]] as const) {
    const owned = new Map(rs.map((r) => [`images/${batch}/${r.id}/0.png`, r.id]));
    const objects = auditObjects(await h.listObjects(`images/${batch}/`), owned, { keyPrefix: 'images', manifests: new Set([`images/${batch}/manifest.jsonl`]) });
    assert.deepEqual(objects, { orphans: [], multiFolder: [], missing: [] }, `one image per job of ${batch}`);
  }

  // Not double-paid: one upstream call per job, plus a call the kill cut off (counted possibly billed).
  const callsByPrompt = new Map<string, number>();
  for (const c of h.fake.calls) callsByPrompt.set(c.prompt ?? '', (callsByPrompt.get(c.prompt ?? '') ?? 0) + 1);
  let possiblyBilled = 0;
  const overCalled: string[] = [];
  for (const r of all) {
    const st = await producer.getJob(r.id);
    const billed = st?.possibly_billed ?? 0;
    possiblyBilled += billed;
    const calls = callsByPrompt.get(r.prompt) ?? 0;
    if (calls < 1 || calls > 1 + billed) overCalled.push(`${r.id}: ${calls} calls, possibly_billed ${billed}`);
  }
  assert.deepEqual(overCalled, [], 'at most one call per job beyond those counted possibly billed');
  assert.ok(possiblyBilled <= Math.min(3, inFlightAtKill), `${possiblyBilled} calls possibly billed; the killed worker had at most 3 in flight (${inFlightAtKill} in flight fleet-wide at the kill)`);
  assert.equal(h.fake.calls.length, all.length + possiblyBilled, 'the upstream was called once per job plus the cut-off calls');

  // Fairness resumes: over the starts after the restart while both tenants are backlogged,
  // beta's share of every 40 consecutive starts is 50 ± 15 %.
  const after = h.fake.calls.slice(startsAtRestart).map(tagOf);
  const both = after.slice(0, after.lastIndexOf('B') + 1);
  const shares: number[] = [];
  for (let i = 0; i + 40 <= both.length; i += 5) shares.push(both.slice(i, i + 40).filter((s) => s === 'B').length / 40);
  console.log(`kill+restart after ${startsAtRestart} starts (beta ${bAtRestart}); ${inFlightAtKill} in flight at the kill, ${possiblyBilled} possibly billed; ${both.length} starts after the restart with both backlogged, beta's share per 40: ${shares.map((s) => s.toFixed(2)).join(' ')}`);
  assert.ok(both.length >= 60, `both backlogged for ${both.length} starts after the restart`);
  for (const s of shares) assert.ok(s >= 0.35 && s <= 0.65, `beta's share ${s} of a window of 40 starts after the restart`);

  for (const w of workers) {
    w.kill('SIGTERM');
    assert.equal(await w.exited, 0);
  }
});
