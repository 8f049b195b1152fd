/**
 * Scenario 9: what fair share costs at pick-up (issue 13) with 1 000 open batches of 10
 * tenants. Fair share cannot be switched off, so it is measured against the cheapest
 * shape of the same work (one batch of one tenant):
 *   9a — the fair-dispatch script (FairShare.dispatch, one EVALSHA round trip) releasing
 *        one job into the wait list, over a deep parked backlog, taken in this process;
 *   9b — end-to-end per-job figures of a `fluxq worker` running the same jobs spread over
 *        the batches and tenants, or in one batch (3b: processedOn → call at the fake).
 */
import { f0, f1, f2, med, pass, pp, windowJson, type Row } from '../report.js';
import { BUCKETS, newProducer, prewarmFake, QUEUE, RUN_ID, startCliFleet, stopFleet, workerEnv, type Rig, type Size } from '../rig.js';
import { percentile } from '../util.js';
import { fluxqWindow, type WindowResult } from '../windows.js';
import { loadConfig } from '../../src/shared/config.js';
import { FairShare } from '../../src/shared/fair-share.js';
import { redisKeys } from '../../src/shared/keys.js';
import { createLogger } from '../../src/shared/logger.js';

export interface FairOptions {
  /** Spread: tenants and open batches. */
  tenants: number;
  batches: number;
  /** 9a: parked jobs behind the measured releases, and releases measured per shape. */
  parked: number;
  releases: number;
  /** 9b: one worker process, its slots, the fake's ms per call, N per window, windows per shape. */
  concurrency: number;
  latency: number;
  size: Size;
  jobs: number;
  repeat: number;
  /** The fake's latency to restore afterwards. */
  restoreLatency: number;
}

export interface DispatchTimes {
  /** ms per FairShare.dispatch round trip that released one job. */
  ms: number[];
  /** Calls that released other than exactly one job (should be 0). */
  odd: number;
  enqueueS: number;
}

export interface FairFigures {
  dispatch: { single: DispatchTimes; spread: DispatchTimes };
  single: WindowResult[];
  spread: WindowResult[];
  loadAvg: number[];
}

const shapeOf = (o: FairOptions, spread: boolean) => (spread ? { tenants: o.tenants, batches: o.batches } : { tenants: 1, batches: 1 });

/** A queue with `o.parked` jobs parked (no worker), and a FairShare over it as a worker would have. */
async function parkedQueue(rig: Rig, o: FairOptions, name: string, spread: boolean) {
  const prefix = `bench-${name}-${RUN_ID}`;
  const producer = newProducer(rig, prefix);
  const { tenants, batches } = shapeOf(o, spread);
  const t0 = Date.now();
  const chunk = 1000;
  for (let from = 0; from < o.parked; from += chunk) {
    const requests = Array.from({ length: Math.min(chunk, o.parked - from) }, (_, j) => {
      const i = from + j;
      return { id: `${name}-${i}`, prompt: `${name} ${i}`, width: 64, height: 64, batch: `${name}-b${i % batches}`, tenant: `t${(i % batches) % tenants}` };
    });
    const r = await producer.enqueueBulk(requests);
    if (r.created !== requests.length) throw new Error(`${name}: ${r.created} of ${requests.length} jobs created`);
  }
  const enqueueS = (Date.now() - t0) / 1000;
  const config = loadConfig(workerEnv(rig, prefix, BUCKETS.fair, o.concurrency, { GLOBAL_CONCURRENCY: undefined }), 'worker');
  const keys = redisKeys(prefix, QUEUE);
  const fair = new FairShare(rig.benchRedis, keys, config, createLogger({ level: 'warn' }));
  await fair.dispatch(); // fill the window
  return { producer, fair, wait: keys.bullWait, enqueueS };
}

/** `n` releases: take one job off the wait list as a worker would (not timed), then time the dispatch that refills it. */
async function timeReleases(rig: Rig, q: Awaited<ReturnType<typeof parkedQueue>>, n: number, into: DispatchTimes): Promise<void> {
  for (let i = 0; i < n; i++) {
    await rig.benchRedis.rpop(q.wait);
    const t = process.hrtime.bigint();
    const reply = await q.fair.dispatch();
    into.ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (reply.released !== 1) into.odd++;
  }
}

async function loadAvg(): Promise<number> {
  const { loadavg } = await import('node:os');
  return loadavg()[0] ?? NaN;
}

export async function fairScenario(rig: Rig, o: FairOptions): Promise<FairFigures> {
  const loads = [await loadAvg()];
  // 9a: both backlogs first, then the releases in alternating blocks, so drift on the machine hits both alike.
  rig.log(`fair share 9a: ${o.parked} parked jobs in 1 batch of 1 tenant, and in ${o.batches} batches of ${o.tenants} tenants`);
  const qSingle = await parkedQueue(rig, o, 'fair1', false);
  const qSpread = await parkedQueue(rig, o, 'fairN', true);
  const single: DispatchTimes = { ms: [], odd: 0, enqueueS: qSingle.enqueueS };
  const spread: DispatchTimes = { ms: [], odd: 0, enqueueS: qSpread.enqueueS };
  await timeReleases(rig, qSingle, 50, { ms: [], odd: 0, enqueueS: 0 }); // warm-up: script loaded, JIT
  await timeReleases(rig, qSpread, 50, { ms: [], odd: 0, enqueueS: 0 });
  const block = 250;
  for (let done = 0; done < o.releases; done += block) {
    await timeReleases(rig, qSingle, Math.min(block, o.releases - done), single);
    await timeReleases(rig, qSpread, Math.min(block, o.releases - done), spread);
  }
  rig.log(`  dispatch p50 / p99: 1 batch ${f2(percentile(single.ms, 50))} / ${f2(percentile(single.ms, 99))} ms, ${o.batches} batches ${f2(percentile(spread.ms, 50))} / ${f2(percentile(spread.ms, 99))} ms`);
  await Promise.all([qSingle.producer.close(), qSpread.producer.close()]);
  loads.push(await loadAvg());

  // 9b: one worker, the same N jobs in one batch or spread, interleaved.
  rig.fake.configure({ latencyMs: o.latency });
  await prewarmFake(rig.fake, o.size);
  rig.log(`fair share 9b: 1 worker × C=${o.concurrency}, L=${o.latency} ms, ${o.size.width}×${o.size.height}, ${o.jobs} jobs per window × ${o.repeat}`);
  const fleet = await startCliFleet(rig, 'fair', 1, o.concurrency, BUCKETS.fair);
  await fluxqWindow(rig, fleet, 'fair-warm', 2 * o.concurrency, o.size, o.latency);
  const S: WindowResult[] = [];
  const P: WindowResult[] = [];
  for (let r = 1; r <= o.repeat; r++) {
    const s = await fluxqWindow(rig, fleet, `fair1-r${r}`, o.jobs, o.size, o.latency);
    S.push(s);
    rig.log(`  1 batch        r${r}: ${s.throughput.toFixed(1)} jobs/s, before-call p50 ${f1(percentile(s.pre, 50))} ms`);
    const p = await fluxqWindow(rig, fleet, `fairN-r${r}`, o.jobs, o.size, o.latency, { spread: shapeOf(o, true) });
    P.push(p);
    rig.log(`  ${o.batches} batches r${r}: ${p.throughput.toFixed(1)} jobs/s, before-call p50 ${f1(percentile(p.pre, 50))} ms`);
  }
  await stopFleet(rig, fleet);
  rig.fake.configure({ latencyMs: o.restoreLatency });
  loads.push(await loadAvg());
  return { dispatch: { single, spread }, single: S, spread: P, loadAvg: loads };
}

/**
 * `pre` of the jobs among the first `share` of a window's starts: in the spread run at
 * N = 3 × batches, the first two thirds of the starts come before any batch can finish
 * (the fair order takes one job of every batch per round), so no batch completion
 * (manifest upload, batch.completed) runs beside them.
 */
function preOfFirst(ws: WindowResult[], share: number): number[] {
  return ws.flatMap((w) => {
    const order = w.preAt.map((at, i) => [at, w.pre[i] as number] as const).sort((a, b) => a[0] - b[0]);
    return order.slice(0, Math.floor(order.length * share)).map(([, v]) => v);
  });
}

export function fairRows(x: FairFigures, o: FairOptions): Row[] {
  const d1 = percentile(x.dispatch.single.ms, 50);
  const dN = percentile(x.dispatch.spread.ms, 50);
  const all = (ws: WindowResult[], pick: (w: WindowResult) => number[]) => ws.flatMap(pick);
  const pre1 = percentile(all(x.single, (w) => w.pre), 50);
  const preN = percentile(all(x.spread, (w) => w.pre), 50);
  const diff = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a - b);
  const within = (v: number | undefined) => (v === undefined ? undefined : v <= 1);
  const shape = `${o.batches} batches × ${o.tenants} tenants vs 1 × 1`;
  const rounds = Math.floor(o.jobs / o.batches);
  const early = rounds >= 2 ? (rounds - 1) / rounds : undefined;
  const e1 = early ? percentile(preOfFirst(x.single, early), 50) : undefined;
  const eN = early ? percentile(preOfFirst(x.spread, early), 50) : undefined;
  const cpu = (ws: WindowResult[]) => `${f2(med(ws, (w) => w.cpuMsPerImage))} / ${f2(med(ws, (w) => w.rigCpuMsPerImage.s3rver))} / ${f2(med(ws, (w) => w.rigCpuMsPerImage.redis))}`;
  return [
    { id: '9a', figure: 'fair share: dispatch releasing 1 job p50 / p99 (ms)', params: `FairShare.dispatch (1 EVALSHA), ${o.parked} parked, ${x.dispatch.single.ms.length} releases each; ${shape}`, fluxq: pp(x.dispatch.spread.ms), baseline: pp(x.dispatch.single.ms), ratio: f2(dN !== undefined && d1 ? dN / d1 : undefined), target: `p50 +${f2(diff(dN, d1))} ms (≤ 1)`, result: pass(within(diff(dN, d1))) },
    { id: '9b', figure: '  before the call p50 / p99 (ms) ²', params: `processedOn → call at the fake; 1 worker C=${o.concurrency} L=${o.latency}ms ${o.size.width}×${o.size.height} N=${o.jobs} × ${x.single.length}; ${shape}`, fluxq: pp(all(x.spread, (w) => w.pre)), baseline: pp(all(x.single, (w) => w.pre)), ratio: '', target: `p50 ${(diff(preN, pre1) ?? 0) >= 0 ? '+' : ''}${f1(diff(preN, pre1))} ms (≤ 1)`, result: pass(within(diff(preN, pre1))) },
    ...(early
      ? [{ id: '9b′', figure: '  the same, while no batch can have finished', params: `the first ${f0(early * 100)} % of each window's starts (spread: before the last round, so no batch completes — no manifest upload, no batch.completed — beside them)`, fluxq: pp(preOfFirst(x.spread, early)), baseline: pp(preOfFirst(x.single, early)), ratio: '', target: `p50 ${(diff(eN, e1) ?? 0) >= 0 ? '+' : ''}${f1(diff(eN, e1))} ms (≤ 1)`, result: pass(within(diff(eN, e1))) }]
      : []),
    { id: '9c', figure: '  slot hand-over p50 / p99 (ms) ³', params: 'job finishes → next job starts in the freed slot', fluxq: pp(all(x.spread, (w) => w.handover)), baseline: pp(all(x.single, (w) => w.handover)), ratio: '', target: '', result: '' },
    { id: '9d', figure: '  throughput (jobs/s)', params: `ideal ${f0(o.concurrency / (o.latency / 1000))}`, fluxq: f1(med(x.spread, (w) => w.throughput)), baseline: f1(med(x.single, (w) => w.throughput)), ratio: f2((med(x.spread, (w) => w.throughput) ?? NaN) / (med(x.single, (w) => w.throughput) ?? NaN)), target: '', result: '' },
    { id: '9e', figure: '  CPU per image: worker / s3rver / redis (ms)', params: 'median of the windows; the spread run also writes 1 000 manifests', fluxq: cpu(x.spread), baseline: cpu(x.single), ratio: '', target: '', result: '' },
  ];
}

export function fairNotes(x: FairFigures): string[] {
  const out = [`fair share (9): load average ${x.loadAvg.map((l) => l.toFixed(2)).join(' → ')} (start, after 9a, after 9b); enqueue of the parked backlogs ${x.dispatch.single.enqueueS.toFixed(1)} s / ${x.dispatch.spread.enqueueS.toFixed(1)} s.`];
  const odd = x.dispatch.single.odd + x.dispatch.spread.odd;
  if (odd > 0) out.push(`fair share (9a): ${odd} dispatch call(s) released other than exactly one job.`);
  return out;
}

export function fairWindows(x: FairFigures): WindowResult[] {
  return [...x.single, ...x.spread];
}

export function fairJson(x: FairFigures, o: FairOptions) {
  const stats = (v: number[]) => ({ n: v.length, p50: percentile(v, 50), p99: percentile(v, 99) });
  return {
    options: o,
    loadAvg: x.loadAvg,
    dispatch: { single: { ...stats(x.dispatch.single.ms), odd: x.dispatch.single.odd, enqueueS: x.dispatch.single.enqueueS }, spread: { ...stats(x.dispatch.spread.ms), odd: x.dispatch.spread.odd, enqueueS: x.dispatch.spread.enqueueS } },
    single: x.single.map(windowJson),
    spread: x.spread.map(windowJson),
  };
}
