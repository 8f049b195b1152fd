import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallRecord } from '../../src/demo/fake-flux.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';

/** TENANT_MAX_CONCURRENCY and TENANT_MAX_MEGAPIXELS_PER_DAY (SPEC §8) with real worker processes. */

const requests = (tag: string, n: number, tenant: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, prompt: `${tag} ${i}`, width: 256, height: 256, tenant }));
const tagOf = (c: CallRecord) => (c.prompt ?? '').split(' ')[0] ?? '';

/**
 * The most calls of `tag` the fake had in flight at once (from each call's arrival and end);
 * a call that never ended (its worker was killed) ends at `unfinishedEnd`.
 */
function maxInFlight(h: Harness, tag: string, unfinishedEnd = Number.MAX_SAFE_INTEGER): number {
  const edges: [number, number][] = [];
  for (const c of h.fake.calls.filter((x) => tagOf(x) === tag)) {
    edges.push([c.at, 1]);
    edges.push([c.endedAt ?? unfinishedEnd, -1]);
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (now += d));
  return max;
}

test('TENANT_MAX_CONCURRENCY=2 holds fleet-wide under 2 workers × 8 slots while another tenant uses the rest', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 150, jitterMs: 50 }, env: { WORKER_CONCURRENCY: '8', TENANT_MAX_CONCURRENCY: 'capped=2' } });
  const producer = h.producer();
  await Promise.all([h.spawnWorker(), h.spawnWorker()]);
  await producer.enqueueBulk(requests('C', 40, 'capped'), { batch: 'c' });
  await producer.enqueueBulk(requests('F', 120, 'free'), { batch: 'f' });
  const [c, f] = await Promise.all([producer.waitForBatch('c', { timeoutMs: 90_000 }), producer.waitForBatch('f', { timeoutMs: 90_000 })]);
  assert.equal(c.counts.completed, 40);
  assert.equal(f.counts.completed, 120);
  const capped = maxInFlight(h, 'C');
  const free = maxInFlight(h, 'F');
  console.log(`max in flight: capped ${capped}, free ${free}, all ${h.fake.maxInFlight}`);
  assert.ok(capped <= 2, `tenant capped had ${capped} calls in flight at once`);
  assert.equal(capped, 2, 'and it used its 2');
  assert.ok(free > 2, `the other tenant is not capped (${free} at once)`);
  assert.equal(h.fake.calls.length, 160, 'one call per job');
});

test('TENANT_MAX_MEGAPIXELS_PER_DAY fails the tenant\'s further jobs with the exact reason and no upstream call', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 50 }, env: { WORKER_CONCURRENCY: '1', TENANT_MAX_MEGAPIXELS_PER_DAY: 'thrifty=3' } });
  const producer = h.producer();
  await h.spawnWorker();
  // The fake reports 1 output megapixel per image: three calls reach 3.
  await producer.enqueueBulk(requests('T', 8, 'thrifty'), { batch: 't' });
  const b = await producer.waitForBatch('t', { timeoutMs: 40_000 });
  assert.equal(b.counts.completed, 3);
  assert.equal(b.counts.failed, 5);
  const calls = h.fake.calls.filter((c) => tagOf(c) === 'T');
  assert.equal(calls.length, 3, 'no call once the budget is reached');
  for (let i = 0; i < 8; i++) {
    const s = await producer.getJob(`T-${i}`);
    if (s?.state === 'failed') {
      assert.equal(s.error, 'budget: tenant thrifty reached 3 megapixels today');
      assert.ok(!calls.some((c) => c.prompt === `T ${i}`), `no call for T-${i}`);
    }
  }
  await producer.enqueueBulk(requests('O', 2, 'other'), { batch: 'o' });
  assert.equal((await producer.waitForBatch('o', { timeoutMs: 20_000 })).counts.completed, 2, 'another tenant is not affected');
});

test('a worker SIGKILLed mid-run: no tenant slot leaks, the cap still holds and every job completes', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, {
    fake: { latencyMs: 150, jitterMs: 50 },
    env: { GLOBAL_CONCURRENCY: '8', WORKER_CONCURRENCY: '8', TENANT_MAX_CONCURRENCY: 'alpha=3' },
  });
  const producer = h.producer();
  const [doomed] = await Promise.all([h.spawnWorker(), h.spawnWorker()]);
  await producer.enqueueBulk(requests('A', 80, 'alpha'), { batch: 'a' });
  await producer.enqueueBulk(requests('B', 80, 'beta'), { batch: 'b' });
  await waitFor(() => h.fake.calls.length >= 30, { timeoutMs: 30_000, what: '30 calls' });
  doomed?.kill('SIGKILL');
  await doomed?.exited;
  const killedAt = Date.now();
  const [a, b] = await Promise.all([producer.waitForBatch('a', { timeoutMs: 90_000 }), producer.waitForBatch('b', { timeoutMs: 90_000 })]);
  assert.equal(a.counts.completed, 80);
  assert.equal(b.counts.completed, 80);
  const alpha = maxInFlight(h, 'A', killedAt);
  console.log(`after a SIGKILL: alpha max in flight ${alpha}, ${h.fake.calls.length} calls for 160 jobs`);
  assert.ok(alpha <= 3, `alpha had ${alpha} calls in flight at once`);
  // Nothing left counted: no call in flight, no released job waiting to begin, nothing parked.
  const now = Date.now();
  assert.equal(await h.redis.zcount(`${h.prefix}:tenant:alpha:calls`, now, '+inf'), 0);
  assert.equal(await h.redis.zcard(`${h.prefix}:tenant:alpha:released`), 0);
  assert.equal(await h.redis.zcard(`${h.prefix}:fair:levels`), 0, 'every flow drained');
});
