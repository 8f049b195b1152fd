/**
 * deploy/grafana-dashboard.json parses, and every query in it names only metrics that a
 * running worker (WORKER_METRICS_PORT) or the API (/metrics) really exports: a renamed
 * metric, or a panel for one that does not exist, fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { WorkerMetrics, serveMetrics } from '../../src/worker/metrics.js';
import { startApi } from '../helpers/api.js';
import { REPO, startHarness } from '../helpers/harness.js';

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan']);

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords, labels, durations or strings. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges ([5m], [$__rate_interval])
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/\$\w+/g, ''); // Grafana variables
  const names: string[] = [];
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const next = bare.slice((m.index ?? 0) + word.length).trimStart();
    if (next.startsWith('(') || PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    names.push(word);
  }
  return names;
}

interface Panel {
  type: string;
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

test('metricNames reads the metrics out of PromQL', () => {
  assert.deepEqual(metricNames('histogram_quantile(0.95, sum by (le, outcome) (rate(fluxq_job_duration_seconds_bucket{job="w"}[$__rate_interval])))'), ['fluxq_job_duration_seconds_bucket']);
  assert.deepEqual(metricNames('sum(rate(a_total[5m])) / sum(rate(b_count[5m])) > 0 and on(instance) up'), ['a_total', 'b_count', 'up']);
});

test('deploy/grafana-dashboard.json: valid JSON with panels, and every query names a metric the worker or the API exports', { timeout: 90_000 }, async (t) => {
  const dash = JSON.parse(readFileSync(join(REPO, 'deploy/grafana-dashboard.json'), 'utf8')) as { title: string; panels: Panel[]; templating?: { list: { type: string }[] } };
  assert.equal(dash.title, 'fluxq');
  const exprs: { panel: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const tg of p.targets ?? []) if (tg.expr) exprs.push({ panel: p.title ?? '?', expr: tg.expr });
      walk(p.panels ?? []);
      if (p.type !== 'row') assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has a query`);
    }
  };
  walk(dash.panels);
  assert.ok(exprs.length >= 10, `${exprs.length} queries`);

  // What a real worker and the real API export, after one job.
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const api = await startApi(h);
  t.after(() => api.close());
  const metrics = new WorkerMetrics();
  const served = await serveMetrics(metrics.registry, 0, '127.0.0.1');
  t.after(() => new Promise((r) => served.server.close(r)));
  await h.worker({}, { metrics });
  const producer = h.producer();
  await producer.enqueue({ id: 'dash-1', prompt: 'dashboard' });
  await producer.waitFor('dash-1', { timeoutMs: 30_000 });
  const exported = new Set<string>();
  for (const text of [await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text(), await (await api.call('/metrics')).text()]) {
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
      if (m?.[1]) exported.add(m[1]);
    }
  }
  for (const must of ['fluxq_queue_wait_seconds_bucket', 'fluxq_job_duration_seconds_bucket', 'fluxq_jobs_completed_total']) assert.ok(exported.has(must), `${must} is exported`);

  const used = new Set<string>();
  for (const { panel, expr } of exprs) {
    const names = metricNames(expr);
    assert.ok(names.length > 0, `"${panel}": ${expr} names no metric`);
    for (const name of names) {
      assert.ok(exported.has(name), `"${panel}": ${name} is not exported by the worker or the API (query: ${expr})`);
      used.add(name);
    }
  }
  for (const name of ['fluxq_queue_wait_seconds_bucket', 'fluxq_job_duration_seconds_bucket']) assert.ok(used.has(name), `the dashboard uses ${name}`);
});
