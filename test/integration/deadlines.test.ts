import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ValidationError } from '../../src/shared/errors.js';
import { pauseQueue, resumeQueue } from '../../src/shared/queue-control.js';
import { waitForRedis } from '../../src/shared/redis.js';
import { startApi } from '../helpers/api.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { testResolver } from '../helpers/test-resolver.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

/** SPEC §8 Deadlines, with real processes: a redis-server, s3rver, the fake upstream, workers. */

const REASON = /^expired: deadline \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z passed before the job started$/;

async function jsonl(lines: unknown[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-deadline-'));
  const file = join(dir, 'batch.jsonl');
  await writeFile(file, lines.map((l) => JSON.stringify(l)).join('\n'));
  return file;
}

test('a batch behind a paused queue expires through the sweeper: no call, one job.expired each, counts.expired, batch.completed once; its ids enqueued again run', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  const producer = h.producer();
  await waitForRedis(producer.redis, 'test redis');
  await pauseQueue(producer.control, 'test: nobody picks the batch');
  const deadline = new Date(Date.now() + 2500).toISOString();
  await producer.enqueueBulk(
    [1, 2, 3].map((n) => ({ id: `dl-${n}`, prompt: `late ${n}`, metadata: { n } })),
    { batch: 'dl', deadline },
  );
  await h.worker({}, { deadlineSweepMs: 200 });
  const done = await producer.waitForBatch('dl', { timeoutMs: 30_000 });
  assert.equal(h.fake.calls.length, 0, 'no upstream call');
  assert.deepEqual(done.counts, { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, expired: 3 });
  assert.equal(done.state, 'completed');

  const job = await producer.getJob('dl-2');
  assert.equal(job?.state, 'expired');
  assert.match(job?.error ?? '', REASON);
  assert.equal(job?.error, `expired: deadline ${deadline} passed before the job started`);

  await waitFor(async () => (await h.events()).some((e) => e.type === 'batch.completed'), { timeoutMs: 20_000, what: 'batch.completed' });
  // A little longer: a second sweep must add nothing.
  await new Promise((r) => setTimeout(r, 1000));
  const events = await h.events();
  const expired = events.filter((e) => e.type === 'job.expired');
  assert.deepEqual(expired.map((e) => (e.data as { jobId: string }).jobId).sort(), ['dl-1', 'dl-2', 'dl-3'], 'one job.expired per job');
  const one = expired.find((e) => (e.data as { jobId: string }).jobId === 'dl-1')?.data;
  assert.deepEqual(Object.keys(one ?? {}).sort(), ['attempts', 'batchId', 'error', 'jobId', 'metadata', 'possibly_billed', 'tenant'], 'the fields of job.failed (and tenant)');
  assert.deepEqual(one, { jobId: 'dl-1', batchId: 'dl', tenant: 'default', error: `expired: deadline ${deadline} passed before the job started`, attempts: 0, possibly_billed: 0, metadata: { n: 1 } });
  const completed = events.filter((e) => e.type === 'batch.completed');
  assert.equal(completed.length, 1);
  assert.equal((completed[0]?.data as { expired: number }).expired, 3);
  assert.equal(events.filter((e) => e.type === 'job.failed').length, 0);

  // The manifest, `fluxq status` and /metrics say expired too.
  const manifest = (await h.getObject('images/dl/manifest.jsonl')).bytes.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; state: string; error?: string });
  assert.deepEqual(manifest.map((l) => [l.id, l.state]), [['dl-1', 'expired'], ['dl-2', 'expired'], ['dl-3', 'expired']]);
  assert.match(manifest[0]?.error ?? '', REASON);
  const status = await h.cli(['status', 'dl']);
  assert.match(status.stdout, /^completed total=3 .* expired=3 tenant=default /);
  assert.equal((await h.cli(['status', 'dl-1'])).stdout.split('\n')[0], 'expired');
  const api = await startApi(h);
  t.after(() => api.close());
  const metrics = parsePrometheus(await (await api.call('/metrics')).text());
  assert.equal(metrics.get('fluxq_jobs_expired_total{tenant="default"}'), 3);
  const body = (await (await api.call('/v1/jobs/dl-3')).json()) as { state: string; error: string; tenant: string };
  assert.deepEqual([body.state, body.tenant], ['expired', 'default']);
  assert.match(body.error, REASON);
  const batchBody = (await (await api.call('/v1/batches/dl')).json()) as { counts: { expired: number }; tenant: string };
  assert.deepEqual([batchBody.counts.expired, batchBody.tenant], [3, 'default']);

  // Enqueued again (no deadline now): retried like a failed job, and it runs.
  await resumeQueue(producer.control, 'test');
  const again = await producer.enqueue({ id: 'dl-1', prompt: 'late 1' }, { batch: 'dl' });
  assert.equal(again.status, 'retried');
  const rerun = await producer.waitFor('dl-1', { timeoutMs: 30_000 });
  assert.equal(rerun.state, 'completed');
  assert.equal(h.fake.calls.length, 1);
});

test('a worker picking up a job after its deadline ends it expired without a call (the check is in the call start); one job.expired, also to its webhook', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 }, env: { WEBHOOK_ALLOWED_HOSTS: 'localhost', WEBHOOK_BACKOFF_MS: '100' } });
  const rx = await startWebhookReceiver();
  t.after(() => rx.close());
  const producer = h.producer();
  await waitForRedis(producer.redis, 'test redis');
  await pauseQueue(producer.control, 'test: hold the job until its deadline passed');
  await producer.enqueue({ id: 'pick-late', prompt: 'late pick-up', deadline: new Date(Date.now() + 1000).toISOString(), webhook_url: rx.url('/late'), webhook_secret: 'a-raw-secret-0123' });
  // No sweep during the test: only the call start can expire it.
  await h.worker({}, { deadlineSweepMs: 600_000, resolver: testResolver() });
  await new Promise((r) => setTimeout(r, 1500));
  await resumeQueue(producer.control, 'test');
  const st = await producer.waitFor('pick-late', { timeoutMs: 20_000 });
  assert.equal(st.state, 'expired');
  assert.match(st.error ?? '', REASON);
  assert.equal(h.fake.calls.length, 0);
  await waitFor(async () => (await h.events()).some((e) => e.type === 'job.expired'), { timeoutMs: 10_000, what: 'job.expired' });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await h.events()).filter((e) => e.type === 'job.expired' || e.type === 'job.failed').length, 1);
  await waitFor(() => rx.deliveries.length >= 1, { timeoutMs: 15_000, what: 'the job webhook' });
  const hook = JSON.parse(rx.deliveries[0]?.body ?? '{}') as { type: string; data: { jobId: string; error: string } };
  assert.deepEqual([hook.type, hook.data.jobId], ['job.expired', 'pick-late']);
  assert.match(hook.data.error, REASON);
  assert.ok(rx.deliveries[0]?.headers['webhook-signature'], 'signed');
});

test('a call in flight when the deadline passes finishes normally (it is paid): completed, no job.expired', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 2500 } });
  const producer = h.producer();
  await h.worker({}, { deadlineSweepMs: 100 });
  await producer.enqueue({ id: 'in-flight', prompt: 'slow', deadline: new Date(Date.now() + 1200).toISOString() });
  await waitFor(async () => h.fake.inFlight > 0, { timeoutMs: 10_000, what: 'the call to be in flight' });
  const st = await producer.waitFor('in-flight', { timeoutMs: 30_000 });
  assert.equal(st.state, 'completed');
  assert.equal(h.fake.calls.length, 1);
  const types = (await h.events()).map((e) => e.type);
  assert.deepEqual(types.filter((x) => x.startsWith('job.')), ['job.completed']);
  assert.equal(await h.redis.zscore(producer.keys.deadlines, 'in-flight'), null, 'the sweeper dropped it once the call had started');
});

test('a deadline already past at enqueue is a validation error naming deadline (library, HTTP job and batch, CLI); --deadline 2h parses', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const producer = h.producer();
  const past = new Date(Date.now() - 60_000).toISOString();
  await assert.rejects(producer.enqueue({ prompt: 'p', deadline: past }), (err: unknown) => err instanceof ValidationError && err.details[0]?.path === 'deadline' && /has already passed/.test(err.details[0].message));
  await assert.rejects(producer.enqueue({ prompt: 'p', deadline: 'tomorrow' }), (err: unknown) => err instanceof ValidationError && err.details[0]?.path === 'deadline');

  const api = await startApi(h);
  t.after(() => api.close());
  const job = await api.call('/v1/jobs', { method: 'POST', json: { prompt: 'p', deadline: past } });
  assert.equal(job.status, 400);
  assert.equal(((await job.json()) as { details: { path: string }[] }).details[0]?.path, 'deadline');
  const batch = await api.call('/v1/batches', { method: 'POST', json: { requests: [{ prompt: 'p' }], deadline: past } });
  assert.equal(batch.status, 400);
  assert.equal(((await batch.json()) as { details: { path: string }[] }).details[0]?.path, 'deadline');
  const item = await api.call('/v1/batches', { method: 'POST', json: { requests: [{ prompt: 'p' }, { prompt: 'q', deadline: past }] } });
  assert.equal(((await item.json()) as { details: { path: string }[] }).details[0]?.path, 'requests.1.deadline');
  const future = new Date(Date.now() + 3_600_000).toISOString();
  const ok = await api.call('/v1/batches', { method: 'POST', json: { batch: 'http-dl', requests: [{ id: 'http-dl-1', prompt: 'p' }], deadline: future } });
  assert.equal(ok.status, 201);
  assert.equal((await producer.records.get('http-dl-1'))?.deadline, Date.parse(future));

  const file = await jsonl([{ prompt: 'a' }, { prompt: 'b', deadline: future }]);
  const refused = await h.cli(['enqueue', file, '--deadline', past]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--deadline: .* has already passed/);
  const before = Date.now();
  const run = await h.cli(['enqueue', file, '--batch', 'cli-dl', '--deadline', '2h']);
  assert.equal(run.code, 0, run.stderr);
  const [first, second] = await producer.records.getMany(['cli-dl-1', 'cli-dl-2']);
  const twoHours = 2 * 3_600_000;
  assert.ok(first?.deadline !== undefined && first.deadline >= before + twoHours - 1000 && first.deadline <= Date.now() + twoHours, `deadline ${first?.deadline}`);
  assert.equal(second?.deadline, Date.parse(future), 'a line naming its own deadline keeps it');
  assert.equal(await h.redis.zscore(producer.keys.deadlines, 'cli-dl-1'), String(first?.deadline));
});

test('a batch whose deadline passes mid-run: every job ends completed (its one call) or expired (no call), one event each, batch.completed once', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 400 } });
  const producer = h.producer();
  await h.worker({ WORKER_CONCURRENCY: '2' }, { deadlineSweepMs: 100 });
  const deadline = new Date(Date.now() + 1500).toISOString();
  const ids = Array.from({ length: 20 }, (_, i) => `mid-${String(i).padStart(2, '0')}`);
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: `mid ${id}` })), { batch: 'mid', deadline });
  const done = await producer.waitForBatch('mid', { timeoutMs: 40_000 });
  const states = new Map<string, string>();
  for (const id of ids) states.set(id, (await producer.getJob(id))?.state ?? 'missing');
  const completed = ids.filter((id) => states.get(id) === 'completed');
  const expired = ids.filter((id) => states.get(id) === 'expired');
  assert.equal(completed.length + expired.length, 20, `every job completed or expired: ${JSON.stringify([...states])}`);
  assert.ok(completed.length >= 2 && expired.length >= 2, `a split: ${completed.length} completed, ${expired.length} expired`);
  assert.deepEqual([done.counts.completed, done.counts.expired, done.counts.failed], [completed.length, expired.length, 0]);
  // Calls: exactly one per completed job, none for an expired one.
  const calledPrompts = h.fake.calls.map((c) => c.prompt).sort();
  assert.deepEqual(calledPrompts, completed.map((id) => `mid ${id}`).sort());
  await waitFor(async () => (await h.events()).some((e) => e.type === 'batch.completed'), { timeoutMs: 20_000, what: 'batch.completed' });
  await new Promise((r) => setTimeout(r, 500));
  const events = await h.events();
  const jobOf = (e: { data: unknown }) => (e.data as { jobId: string }).jobId;
  assert.deepEqual(events.filter((e) => e.type === 'job.completed').map(jobOf).sort(), completed, 'one job.completed per completed job');
  assert.deepEqual(events.filter((e) => e.type === 'job.expired').map(jobOf).sort(), expired, 'one job.expired per expired job');
  const batchDone = events.filter((e) => e.type === 'batch.completed');
  assert.equal(batchDone.length, 1);
  assert.deepEqual([(batchDone[0]?.data as { completed: number }).completed, (batchDone[0]?.data as { expired: number }).expired], [completed.length, expired.length]);
});
