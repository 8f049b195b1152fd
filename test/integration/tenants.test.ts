import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventVisibleTo } from '../../src/shared/events.js';
import { startApi } from '../helpers/api.js';
import { parsePrometheus } from '../helpers/prometheus.js';
import { startHarness, waitFor } from '../helpers/harness.js';

/** SPEC §8 Tenants through the real API, CLI, worker and Redis. */

const ACME = 'acme-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdef';
const API_TOKENS = `acme=${ACME},beta=${BETA}`;
const as = (token: string) => ({ authorization: `Bearer ${token}` });

test('tenant tokens: a body naming another tenant is 403; another tenant\'s job, batch and cancel are 404; the operator sees all', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const api = await startApi(h, { API_TOKENS });
  t.after(() => api.close());

  const other = await api.call('/v1/jobs', { method: 'POST', headers: as(ACME), json: { prompt: 'p', tenant: 'beta' } });
  assert.equal(other.status, 403);
  assert.match(((await other.json()) as { error: string }).error, /tenant "acme".*tenant "beta"/);
  const otherItem = await api.call('/v1/batches', { method: 'POST', headers: as(BETA), json: { requests: [{ prompt: 'a' }, { prompt: 'b', tenant: 'acme' }] } });
  assert.equal(otherItem.status, 403);
  assert.match(((await otherItem.json()) as { error: string }).error, /^requests\.1\.tenant: .*"beta".*"acme"/);

  assert.equal((await api.call('/v1/jobs', { method: 'POST', headers: as(ACME), json: { id: 'a-1', prompt: 'acme job' } })).status, 201);
  assert.equal((await api.call('/v1/jobs', { method: 'POST', headers: as(ACME), json: { id: 'a-2', prompt: 'acme job', tenant: 'acme' } })).status, 201, 'naming its own tenant is fine');
  assert.equal((await api.call('/v1/batches', { method: 'POST', headers: as(BETA), json: { batch: 'bb', requests: [{ prompt: 'b1' }, { prompt: 'b2' }] } })).status, 201);

  const mine = await api.call('/v1/jobs/a-1', { headers: as(ACME) });
  assert.equal(mine.status, 200);
  assert.equal(((await mine.json()) as { tenant: string }).tenant, 'acme');
  assert.equal((await api.call('/v1/jobs/a-1', { headers: as(BETA) })).status, 404);
  assert.equal((await api.call('/v1/jobs/a-1', { method: 'DELETE', headers: as(BETA) })).status, 404);
  assert.equal((await api.call('/v1/batches/bb', { headers: as(ACME) })).status, 404);
  assert.equal((await api.call('/batches/bb', { headers: as(ACME) })).status, 404, 'nor its gallery');
  assert.equal((await api.call('/v1/jobs', { method: 'POST', headers: as(BETA), json: { id: 'a-1', prompt: 'steal' } })).status, 409, "another tenant's id is not overwritten");
  assert.equal((await api.call('/v1/batches', { method: 'POST', headers: as(ACME), json: { batch: 'bb', requests: [{ prompt: 'x' }] } })).status, 409);
  assert.equal((await api.call('/metrics', { headers: as(ACME) })).status, 403, '/metrics shows every tenant: operator only');
  assert.equal((await api.call('/admin/queues', { headers: as(ACME) })).status, 403);

  const batch = (await (await api.call('/v1/batches/bb', { headers: as(BETA) })).json()) as { tenant: string; total: number };
  assert.deepEqual([batch.tenant, batch.total], ['beta', 2]);
  const operator = (await (await api.call('/v1/batches/bb')).json()) as { tenant: string };
  assert.equal(operator.tenant, 'beta');
  assert.equal(((await (await api.call('/v1/jobs/a-1')).json()) as { tenant: string }).tenant, 'acme');
  const page = await (await api.call('/batches/bb')).text();
  assert.match(page, /<span class="tenant">tenant beta<\/span>/);

  const cancelled = await api.call('/v1/jobs/a-1', { method: 'DELETE', headers: as(ACME) });
  assert.equal(cancelled.status, 200);
  const operatorCreates = await api.call('/v1/jobs', { method: 'POST', json: { id: 'op-1', prompt: 'for beta', tenant: 'beta' } });
  assert.equal(operatorCreates.status, 201, 'the operator may name any tenant');
  assert.equal(((await (await api.call('/v1/jobs/op-1', { headers: as(BETA) })).json()) as { tenant: string }).tenant, 'beta');

  const m = parsePrometheus(await (await api.call('/metrics')).text());
  assert.equal(m.get('fluxq_jobs_cancelled_total{tenant="acme"}'), 1);
  assert.equal(m.get('fluxq_jobs_completed_total{tenant="beta"}'), 0);
});

test('fluxq tenants counts a job whose call is in flight as in flight, not waiting', { timeout: 60_000 }, async (t) => {
  // The call lasts longer than the CLI takes to start on a loaded machine: the report is read during the first call.
  const h = await startHarness(t, { fake: { latencyMs: 15_000 } });
  const producer = h.producer();
  await producer.enqueueBulk([{ id: 's-1', prompt: 'slow 1', tenant: 'slow' }, { id: 's-2', prompt: 'slow 2', tenant: 'slow' }]);
  await h.worker({ WORKER_CONCURRENCY: '1' });
  await waitFor(async () => h.fake.inFlight === 1, { timeoutMs: 20_000, what: 'one call in flight' });
  const run = await h.cli(['tenants', '--json']);
  const slow = JSON.parse(run.stdout.trim()) as { tenant: string; in_flight: number; waiting: number };
  assert.equal(h.fake.calls.length, 1, 'still the first call');
  assert.deepEqual([slow.tenant, slow.in_flight, slow.waiting], ['slow', 1, 1]);
});

test('tenant in results, events (data.tenant), batch.completed and /metrics; fluxq tenants reports in-flight, waiting, today\'s MP and cost', { timeout: 200_000 }, async (t) => {
  // "Today" is the UTC day: a run that would cross midnight between the calls and the
  // report starts after it instead (a fresh-clone CI run at 00:00 UTC saw today's MP at 0).
  const toMidnight = 86_400_000 - (Date.now() % 86_400_000);
  if (toMidnight < 90_000) await new Promise((r) => setTimeout(r, toMidnight + 1000));
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-tenants-'));
  const file = join(dir, 'beta.jsonl');
  await writeFile(file, [{ prompt: 'b1', width: 1024, height: 1024 }, { prompt: 'b2', width: 1024, height: 1024 }].map((l) => JSON.stringify(l)).join('\n'));
  const enq = await h.cli(['enqueue', file, '--batch', 'tb', '--tenant', 'beta']);
  assert.equal(enq.code, 0, enq.stderr);
  const bad = await h.cli(['enqueue', file, '--tenant', 'no spaces']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--tenant must be 1–64 characters/);
  const producer = h.producer();
  await producer.enqueue({ id: 'g-1', prompt: 'gamma waits', tenant: 'gamma' });
  await producer.enqueue({ id: 'd-1', prompt: 'default job' });

  // Before any worker: everything waits.
  const waiting = await h.cli(['tenants', '--json']);
  assert.equal(waiting.code, 0, waiting.stderr);
  const w = waiting.stdout.trim().split('\n').map((l) => JSON.parse(l) as { tenant: string; waiting: number; in_flight: number });
  assert.deepEqual(w.map((l) => [l.tenant, l.in_flight, l.waiting]), [['beta', 0, 2], ['default', 0, 1], ['gamma', 0, 1]]);

  await h.worker();
  await producer.waitForBatch('tb', { timeoutMs: 30_000 });
  await producer.waitFor('g-1', { timeoutMs: 30_000 });
  await producer.waitFor('d-1', { timeoutMs: 30_000 });

  const result = await producer.getJob('tb-1');
  assert.equal(result?.tenant, 'beta');
  assert.equal(result?.result?.tenant, 'beta');
  await waitFor(async () => (await h.events()).some((e) => e.type === 'batch.completed'), { timeoutMs: 20_000, what: 'batch.completed' });
  const events = await h.events();
  const jobEvents = events.filter((e) => e.type === 'job.completed');
  assert.deepEqual(jobEvents.map((e) => [(e.data as { jobId: string }).jobId, (e.data as { tenant: string }).tenant]).sort(), [['d-1', 'default'], ['g-1', 'gamma'], ['tb-1', 'beta'], ['tb-2', 'beta']]);
  const batchEvent = events.find((e) => e.type === 'batch.completed');
  assert.equal((batchEvent?.data as { tenant: string } | undefined)?.tenant, 'beta');
  assert.deepEqual(events.filter(eventVisibleTo('gamma')).map((e) => (e.data as { jobId?: string }).jobId), ['g-1'], 'a tenant feed carries only its own events');
  assert.equal(events.filter(eventVisibleTo(undefined)).length, events.length, 'the operator sees all');

  const api = await startApi(h);
  t.after(() => api.close());
  const m = parsePrometheus(await (await api.call('/metrics')).text());
  assert.equal(m.get('fluxq_jobs_completed_total{tenant="beta"}'), 2);
  assert.equal(m.get('fluxq_jobs_completed_total{tenant="gamma"}'), 1);
  assert.equal(m.get('fluxq_jobs_completed_total{tenant="default"}'), 1);
  assert.equal(m.get('fluxq_jobs_expired_total{tenant="beta"}'), 0);

  const report = await h.cli(['tenants', '--json']);
  const lines = report.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const beta = lines.find((l) => l.tenant === 'beta');
  assert.deepEqual(beta, { tenant: 'beta', in_flight: 0, waiting: 0, today_mp: 2, today_cost_usd: 0.06, completed: 2, failed: 0, cancelled: 0, expired: 0 });
  assert.equal(lines.find((l) => l.tenant === 'gamma')?.today_mp, 1);
  const table = await h.cli(['tenants']);
  assert.deepEqual(table.stdout.trim().split('\n').map((l) => l.split(/\s+/)), [
    ['TENANT', 'IN_FLIGHT', 'WAITING', 'TODAY_MP', 'TODAY_COST_USD'],
    ['beta', '0', '0', '2', '0.0600'],
    ['default', '0', '0', '1', '0.0300'],
    ['gamma', '0', '0', '1', '0.0300'],
  ]);
  const status = await h.cli(['status', 'tb-1']);
  assert.equal(status.stdout, 'completed\ntenant: beta\n');
});
