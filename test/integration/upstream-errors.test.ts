import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Fault } from '../../src/demo/fake-flux.js';
import { startHarness, waitFor } from '../helpers/harness.js';

test('400, 422 and moderation are tried once and fail with the upstream reason; nothing is stored', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  h.fake.inject({ prompt: 'p400', fault: { type: 'status', status: 400, errorType: 'param_error', message: 'width is not supported by this model' } });
  h.fake.inject({ prompt: 'p422', fault: { type: 'status', status: 422, errorType: 'param_error', message: 'unprocessable prompt' } });
  h.fake.inject({ prompt: 'pmod', fault: { type: 'moderation' } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueueBulk([
    { id: 'j400', prompt: 'p400' },
    { id: 'j422', prompt: 'p422' },
    { id: 'jmod', prompt: 'pmod' },
  ]);
  const expected: Record<string, string> = {
    j400: 'permanent: HTTP 400 param_error: width is not supported by this model',
    j422: 'permanent: HTTP 422 param_error: unprocessable prompt',
    jmod: 'permanent: HTTP 400 sensitive_check_error: prompt refused by moderation',
  };
  for (const [id, reason] of Object.entries(expected)) {
    const st = await producer.waitFor(id, { timeoutMs: 20_000 });
    assert.equal(st.state, 'failed');
    assert.equal(st.error, reason);
    assert.equal(st.attempts, 1);
    const job = await producer.queue.getJob(id);
    assert.equal(job?.failedReason, reason, 'BullMQ failedReason carries the same line');
    assert.equal(job?.attemptsMade, 1);
  }
  for (const p of ['p400', 'p422', 'pmod']) assert.equal(h.fake.callsFor(p).length, 1, `${p} tried once`);
  assert.deepEqual(await h.listObjects(), []);
  const failed = (await h.events()).filter((e) => e.type === 'job.failed');
  assert.equal(failed.length, 3);
  assert.deepEqual(failed.map((e) => (e.data as { error: string }).error).sort(), Object.values(expected).sort());
});

test('5xx answers are retried with backoff, then the job completes', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  h.fake.inject({ prompt: 'flaky', times: 2, fault: { type: 'status', status: 503, errorType: 'internal_error', message: 'overloaded' } });
  h.fake.inject({ prompt: 'flaky', times: 1, fault: { type: 'status', status: 500 } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'flaky-1', prompt: 'flaky' });
  const st = await producer.waitFor('flaky-1', { timeoutMs: 20_000 });
  assert.equal(st.state, 'completed');
  assert.equal(h.fake.callsFor('flaky').length, 4);
  assert.equal(st.result?.attempts, 4);
  assert.equal(st.result?.possibly_billed, 0);
  assert.equal((await h.listObjects()).length, 1);
});

test('transient errors stop after JOB_ATTEMPTS tries with the last reason', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 }, env: { JOB_ATTEMPTS: '3' } });
  h.fake.inject({ prompt: 'down', fault: { type: 'status', status: 502, errorType: 'internal_error', message: 'bad gateway' } });
  const producer = h.producer();
  await h.worker();
  await producer.enqueue({ id: 'down-1', prompt: 'down' });
  const st = await producer.waitFor('down-1', { timeoutMs: 20_000 });
  assert.equal(st.state, 'failed');
  assert.equal(st.error, 'transient: HTTP 502 internal_error: bad gateway');
  assert.equal(h.fake.callsFor('down').length, 3);
  assert.equal(st.attempts, 3);
});

const MALFORMED: Fault[] = [{ type: 'truncated' }, { type: 'not-json' }, { type: 'empty-data' }, { type: 'bad-base64' }, { type: 'not-image' }];

test('malformed 200 bodies are retried at most MAX_AMBIGUOUS_RETRIES times, counted as possibly billed, and fail with nothing in S3', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 }, env: { MAX_AMBIGUOUS_RETRIES: '2', JOB_ATTEMPTS: '10' } });
  for (const fault of MALFORMED) h.fake.inject({ prompt: `bad-${fault.type}`, fault });
  const producer = h.producer();
  await h.worker({ WORKER_CONCURRENCY: '5' });
  await producer.enqueueBulk(MALFORMED.map((f) => ({ id: `bad-${f.type}`, prompt: `bad-${f.type}` })));
  for (const fault of MALFORMED) {
    const st = await producer.waitFor(`bad-${fault.type}`, { timeoutMs: 30_000 });
    assert.equal(st.state, 'failed', fault.type);
    assert.equal(h.fake.callsFor(`bad-${fault.type}`).length, 3, `${fault.type}: 1 + MAX_AMBIGUOUS_RETRIES calls`);
    assert.equal(st.possibly_billed, 3);
    assert.equal(st.attempts, 3);
    assert.match(st.error ?? '', /^ambiguous: HTTP 200: .*possibly billed/);
  }
  assert.deepEqual(await h.listObjects(), [], 'nothing written to S3');
  const failed = (await h.events()).filter((e) => e.type === 'job.failed');
  assert.equal(failed.length, MALFORMED.length);
  assert.ok(failed.every((e) => (e.data as { possibly_billed: number }).possibly_billed === 3));
});

test('a 402 pauses the queue fleet-wide without failing a job; `fluxq resume` lets every job complete', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 30 } });
  h.fake.inject({ times: 1, fault: { type: 'status', status: 402, errorType: 'insufficient_balance', message: 'out of credits' } });
  const producer = h.producer();
  await h.worker({ WORKER_CONCURRENCY: '1' });
  await producer.enqueueBulk(Array.from({ length: 5 }, (_, i) => ({ id: `credit-${i}`, prompt: `credit ${i}` })));
  await waitFor(async () => (await producer.queue.isPaused()) && h.fake.calls.length >= 1, { what: 'the queue to pause' });
  // While paused nothing else is called and no job fails.
  const callsAtPause = h.fake.calls.length;
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(h.fake.calls.length, callsAtPause, 'no upstream call while paused');
  const st = await producer.getJob('credit-0');
  assert.ok(st && st.state !== 'failed');
  const events = await h.events();
  const paused = events.filter((e) => e.type === 'queue.paused');
  assert.equal(paused.length, 1);
  assert.equal((paused[0]?.data as { status: number }).status, 402);
  assert.match((paused[0]?.data as { reason: string }).reason, /account: HTTP 402 insufficient_balance: out of credits/);
  assert.equal(events.filter((e) => e.type === 'job.failed').length, 0);
  const statusCli = await h.cli(['status', 'credit-0']);
  assert.equal(statusCli.stdout.trim(), 'paused');

  const resumed = await h.cli(['resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /^resumed/);
  for (let i = 0; i < 5; i++) {
    const done = await producer.waitFor(`credit-${i}`, { timeoutMs: 20_000 });
    assert.equal(done.state, 'completed');
    assert.equal(done.result?.attempts, 1, 'the 402 spent no attempt');
  }
  const after = await h.events();
  assert.equal(after.filter((e) => e.type === 'queue.resumed').length, 1);
});
