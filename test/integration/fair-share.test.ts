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
