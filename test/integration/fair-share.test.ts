import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallRecord } from '../../src/demo/fake-flux.js';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';

/**
 * Fair share (SPEC §8) with real worker processes: the start order is the order in which
 * the fake upstream received calls; each prompt names its tenant (and batch) first.
 */

const FAKE = { latencyMs: 100, jitterMs: 100 };
const requests = (tag: string, n: number, extra: Record<string, unknown> = {}) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, prompt: `${tag} ${i}`, width: 256, height: 256, ...extra }));
const tagOf = (c: CallRecord) => (c.prompt ?? '').split(' ')[0] ?? '';

/** The share of `tag` in every window of `size` consecutive starts within `starts` (a window never longer than them). */
function shares(starts: string[], tag: string, size: number): number[] {
  const w = Math.min(size, starts.length);
  const out: number[] = [];
  for (let i = 0; i + w <= starts.length; i += 10) out.push(starts.slice(i, i + w).filter((s) => s === tag).length / w);
  return out;
}

/** Starts (tags in arrival order) while every tag in `tags` still had jobs to start: up to the first tag's last start. */
function whileAllBacklogged(h: Harness, tags: string[]): string[] {
  const starts = h.fake.calls.map(tagOf);
  const first = Math.max(...tags.map((t) => starts.indexOf(t)));
  const end = Math.min(...tags.map((t) => starts.lastIndexOf(t)));
  return starts.slice(first, end + 1);
}

async function finishedAt(h: Harness, ids: string[]): Promise<number[]> {
  const p = h.redis.pipeline();
  for (const id of ids) p.hget(`${h.prefix}:id:${id}`, 'finished');
  return ((await p.exec()) ?? []).map(([, v]) => Number(v ?? 0));
}

test('two tenants of weight 1 share the starts: 40 jobs of B enqueued behind 400 of A finish while A completes about 60 more', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: FAKE, env: { GLOBAL_CONCURRENCY: '8', WORKER_CONCURRENCY: '8' } });
  const producer = h.producer();
  await Promise.all([h.spawnWorker(), h.spawnWorker()]);
  await producer.enqueueBulk(requests('A', 400, { tenant: 'alpha' }), { batch: 'a-run' });
  // A parked job (delayed in BullMQ until its turn) reads as waiting everywhere.
  const parked = await producer.getBatch('a-run');
  assert.equal(parked?.counts.delayed, 0);
  assert.ok((parked?.counts.waiting ?? 0) > 200, `waiting ${parked?.counts.waiting}`);
  assert.equal((await producer.getJob('A-399'))?.state, 'waiting');
  assert.deepEqual((await h.cli(['status', 'A-399'])).stdout.trim().split('\n'), ['waiting', 'tenant: alpha'], 'a parked job reads as waiting');
  await waitFor(() => h.fake.calls.length >= 16, { timeoutMs: 20_000, what: 'A running' });
  const bEnqueued = Date.now();
  await producer.enqueueBulk(requests('B', 40, { tenant: 'beta' }), { batch: 'b-run' });
  const b = await producer.waitForBatch('b-run', { timeoutMs: 60_000, pollMs: 100 });
  assert.equal(b.counts.completed, 40);
  const bDone = Math.max(...(await finishedAt(h, requests('B', 40).map((r) => r.id))));
  const aFinished = await finishedAt(h, requests('A', 400).map((r) => r.id));
  const aMeanwhile = aFinished.filter((f) => f > bEnqueued && f <= bDone).length;
  const both = whileAllBacklogged(h, ['A', 'B']);
  const bShares = shares(both, 'B', 100);
  console.log(`A completed ${aMeanwhile} while B's 40 ran; ${both.length} starts with both backlogged, B's share per window ${bShares.map((s) => s.toFixed(2)).join(' ')}`);
  assert.ok(aMeanwhile <= 64, `A completed ${aMeanwhile} jobs while B's 40 ran (fair: about 40 + one round)`);
  assert.ok(both.length >= 60, `both backlogged for ${both.length} starts`);
  for (const s of bShares) assert.ok(s >= 0.4 && s <= 0.6, `B's share ${s} of a window of starts`);
  // The rest of A still runs to the end.
  await producer.cancelBatch('a-run');
});

test('weights 3 and 1 share the starts 75/25; two batches of one tenant share its starts equally', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: FAKE, env: { GLOBAL_CONCURRENCY: '8', WORKER_CONCURRENCY: '8', TENANT_WEIGHTS: 'alpha=3,beta=1' } });
  const producer = h.producer();
  await Promise.all([h.spawnWorker(), h.spawnWorker()]);
  // beta runs out first only after ~400 starts; alpha's two batches X and Y share its 3/4.
  await producer.enqueueBulk(requests('X', 240, { tenant: 'alpha' }), { batch: 'x' });
  await producer.enqueueBulk(requests('Y', 120, { tenant: 'alpha' }), { batch: 'y' });
  await producer.enqueueBulk(requests('B', 110, { tenant: 'beta' }), { batch: 'b' });
  await producer.waitForBatch('b', { timeoutMs: 90_000, pollMs: 200 });
  const both = whileAllBacklogged(h, ['X', 'Y', 'B']).map((tag) => (tag === 'B' ? 'B' : 'alpha'));
  const bShares = shares(both, 'B', 100);
  console.log(`weights 3:1: ${both.length} starts with both backlogged, beta's share per 100 starts ${bShares.map((s) => s.toFixed(2)).join(' ')}`);
  assert.ok(both.length >= 200, `both backlogged for ${both.length} starts`);
  for (const s of bShares) assert.ok(s >= 0.15 && s <= 0.35, `beta's share ${s} of 100 starts (weight 1 of 4)`);
  const alphaStarts = whileAllBacklogged(h, ['X', 'Y']).filter((tag) => tag !== 'B');
  const yShares = shares(alphaStarts, 'Y', 100);
  console.log(`two batches of alpha: ${alphaStarts.length} of its starts with both backlogged, Y's share ${yShares.map((s) => s.toFixed(2)).join(' ')}`);
  assert.ok(alphaStarts.length >= 200);
  for (const s of yShares) assert.ok(s >= 0.4 && s <= 0.6, `batch Y's share ${s} of 100 of alpha's starts`);
  await Promise.all(['x', 'y'].map((id) => producer.cancelBatch(id)));
});

test('a 20-job batch enqueued behind a big batch of the same tenant starts within one round and finishes in about 40 starts', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: FAKE, env: { GLOBAL_CONCURRENCY: '8', WORKER_CONCURRENCY: '8' } });
  const producer = h.producer();
  await h.spawnWorker();
  await producer.enqueueBulk(requests('BIG', 500), { batch: 'big' });
  await waitFor(() => h.fake.calls.length >= 24, { timeoutMs: 20_000, what: 'the big batch running' });
  const startsBefore = h.fake.calls.length;
  await producer.enqueueBulk(requests('SMALL', 20), { batch: 'small' });
  await producer.waitForBatch('small', { timeoutMs: 60_000, pollMs: 100 });
  const after = h.fake.calls.slice(startsBefore).map(tagOf);
  const first = after.indexOf('SMALL');
  const last = after.lastIndexOf('SMALL');
  console.log(`small batch: first start after ${first} starts, last after ${last}`);
  assert.ok(first >= 0 && first <= 16, `first start of the small batch after ${first} starts (one round is 8, plus the 8 already released)`);
  assert.ok(last <= 20 * 2 + 16, `last start of the small batch after ${last} starts`);
  await producer.cancelBatch('big');
});
