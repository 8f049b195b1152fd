import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startHarness, waitFor } from '../helpers/harness.js';

async function jsonl(lines: unknown[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-batch-'));
  const file = join(dir, 'batch.jsonl');
  await writeFile(file, lines.map((l) => JSON.stringify(l)).join('\n'));
  return file;
}

test('--max-megapixels stops upstream calls at the budget; the rest fail with the budget reason and no call', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  const file = await jsonl(Array.from({ length: 10 }, (_, i) => ({ prompt: `budget ${i}`, width: 1024, height: 1024 })));
  const enq = await h.cli(['enqueue', file, '--batch', 'capped', '--max-megapixels', '3']);
  assert.equal(enq.code, 0, enq.stderr);
  await h.worker({ WORKER_CONCURRENCY: '1' });
  const producer = h.producer();
  const b = await producer.waitForBatch('capped', { timeoutMs: 30_000 });
  assert.equal(h.fake.calls.length, 3, 'the fake saw exactly the calls within the budget');
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 3, failed: 7, cancelled: 0 });
  assert.equal(b.output_mp, 3);
  assert.equal(b.max_megapixels, 3);
  const failed = await producer.getJob('capped-10');
  assert.equal(failed?.error, 'budget: batch capped reached 3 megapixels');
  assert.equal(failed?.attempts, 0);
  const status = await h.cli(['status', 'capped']);
  assert.equal(status.stdout.trim(), 'completed total=10 waiting=0 active=0 delayed=0 completed=3 failed=7 cancelled=0 expired=0 tenant=default output_mp=3 input_mp=0 possibly_billed=0 cost_usd=0.09');
});

test('MAX_MEGAPIXELS_PER_BATCH caps every batch without its own budget; overshoot is at most the calls in flight', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 200 }, env: { MAX_MEGAPIXELS_PER_BATCH: '2' } });
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 12 }, (_, i) => ({ prompt: `cap ${i}` })), { batch: 'env-capped' });
  await h.worker({ WORKER_CONCURRENCY: '3' });
  const b = await producer.waitForBatch('env-capped', { timeoutMs: 30_000 });
  assert.ok(h.fake.calls.length >= 2 && h.fake.calls.length <= 2 + 3, `calls ${h.fake.calls.length}`);
  assert.equal(b.counts.completed, h.fake.calls.length);
  assert.equal(b.counts.failed, 12 - h.fake.calls.length);
});

test('fluxq cancel removes the waiting jobs, counts them cancelled, and the batch completes', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 50 } });
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 8 }, (_, i) => ({ id: `cx-${i}`, prompt: `cancel ${i}` })), { batch: 'cx' });
  // The first two runs are held right after their call start until the CLI (a fresh tsx
  // process, slow to start on a busy machine) has cancelled: no timing race in the test.
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    release = () => (clearTimeout(timer), resolve());
  });
  t.after(() => release());
  let held = 0;
  await h.worker({ WORKER_CONCURRENCY: '2' }, { testHooks: { afterCallStart: () => (held++, gate) } });
  await waitFor(() => held === 2, { what: 'two calls started' });
  const run = await h.cli(['cancel', 'cx']);
  release();
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'cancelled 6 job(s) of batch cx; 2 active job(s) will finish');
  const b = await producer.waitForBatch('cx', { timeoutMs: 30_000 });
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 2, failed: 0, cancelled: 6 });
  assert.equal(h.fake.calls.length, 2, 'no cancelled job reached the upstream');
  const cancelledIds = (await Promise.all(Array.from({ length: 8 }, async (_, i) => ((await producer.getJob(`cx-${i}`))?.state === 'cancelled' ? 1 : 0)))).reduce<number>((x, y) => x + y, 0);
  assert.equal(cancelledIds, 6);
  const ev = await waitFor(async () => (await h.events()).find((e) => e.type === 'batch.completed'), { what: 'batch.completed' });
  assert.equal((ev.data as { cancelled: number }).cancelled, 6);
  assert.equal((await h.cli(['cancel', 'no-such-batch'])).code, 1);
  assert.equal((await h.cli(['status', 'cx-7'])).stdout.trim(), 'cancelled');
});

test('--priority: the higher-priority batch runs first', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const low = await jsonl(Array.from({ length: 5 }, (_, i) => ({ prompt: `low ${i}` })));
  const high = await jsonl(Array.from({ length: 5 }, (_, i) => ({ prompt: `high ${i}` })));
  assert.equal((await h.cli(['enqueue', low, '--batch', 'low', '--priority', '10'])).code, 0);
  assert.equal((await h.cli(['enqueue', high, '--batch', 'high', '--priority', '1'])).code, 0);
  await h.worker({ WORKER_CONCURRENCY: '1' });
  const producer = h.producer();
  await producer.waitForBatch('low', { timeoutMs: 30_000 });
  const order = h.fake.calls.map((c) => c.prompt?.split(' ')[0]);
  assert.deepEqual(order, ['high', 'high', 'high', 'high', 'high', 'low', 'low', 'low', 'low', 'low']);
});

test('re-running a half-failed file with --batch finishes it: only failed lines are retried, and batch.completed is emitted again', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  for (const n of [2, 5]) h.fake.inject({ prompt: `resume ${n}`, times: 1, fault: { type: 'status', status: 422, errorType: 'param_error', message: 'not today' } });
  const file = await jsonl(Array.from({ length: 6 }, (_, i) => ({ prompt: `resume ${i}` })));
  await h.worker();
  const first = await h.cli(['enqueue', file, '--batch', 'resumable', '--wait']);
  assert.equal(first.code, 1, 'two jobs failed');
  const producer = h.producer();
  assert.deepEqual((await producer.getBatch('resumable'))?.counts, { waiting: 0, active: 0, delayed: 0, completed: 4, failed: 2, cancelled: 0 });
  const second = await h.cli(['enqueue', file, '--batch', 'resumable', '--wait']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /6 jobs \(0 new, 4 already enqueued or done, 2 retried\)/);
  assert.equal(h.fake.calls.length, 8, 'only the two failed lines were called again');
  const b = await producer.getBatch('resumable');
  assert.deepEqual(b?.counts, { waiting: 0, active: 0, delayed: 0, completed: 6, failed: 0, cancelled: 0 });
  const evs = await waitFor(async () => {
    const e = (await h.events()).filter((x) => x.type === 'batch.completed');
    return e.length === 2 ? e : undefined;
  }, { what: 'two batch.completed' });
  assert.deepEqual(evs.map((e) => [(e.data as { completed: number }).completed, (e.data as { failed: number }).failed]), [[4, 2], [6, 0]]);
});

test('the batch webhook receives batch.completed; the ledger prices output and input megapixels', { timeout: 60_000 }, async (t) => {
  const { startWebhookReceiver } = await import('../helpers/webhook-receiver.js');
  const { synthPng } = await import('../../src/demo/synth-image.js');
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { WEBHOOK_ALLOWED_HOSTS: 'localhost' } });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const p = synthPng({ width: 1024, height: 2048, entropy: 0.2, seed: 5 });
  const input = Buffer.concat([p.prefix, p.tail('x')]).toString('base64');
  const file = await jsonl([{ prompt: 'text only', width: 2048, height: 1024 }, { prompt: 'edit', width: 1024, height: 1024, input_image: input }]);
  const enq = await h.cli(['enqueue', file, '--batch', 'priced', '--webhook-url', rx.url('/batch'), '--webhook-secret', 'batch-secret']);
  assert.equal(enq.code, 0, enq.stderr);
  await h.worker();
  const b = await h.producer().waitForBatch('priced', { timeoutMs: 30_000 });
  // text only: 2 MP out = 0.03 + 0.015; edit: 1 MP out + 2 MP in = 0.03 + 2 × 0.015
  assert.equal(b.output_mp, 3);
  assert.equal(b.input_mp, 2);
  assert.equal(b.cost_usd, 0.105);
  await waitFor(() => rx.deliveries.length === 1, { what: 'the batch webhook' });
  const body = JSON.parse(rx.deliveries[0]?.body ?? '{}') as { type: string; data: Record<string, unknown> };
  assert.equal(body.type, 'batch.completed');
  assert.deepEqual(body.data, { batchId: 'priced', total: 2, completed: 2, failed: 0, cancelled: 0, output_mp: 3, input_mp: 2, possibly_billed: 0, cost_usd: 0.105, manifest: 'images/priced/manifest.jsonl' });
  const refused = await h.cli(['enqueue', file, '--batch', 'x', '--webhook-url', 'http://10.0.0.1/h', '--webhook-secret', 's'], { env: { WEBHOOK_ALLOWED_HOSTS: '' } });
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--webhook-url refused: host 10\.0\.0\.1 is a private or loopback address/);
});
