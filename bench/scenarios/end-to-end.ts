/**
 * Scenarios 2, 3, 4 and 6: end-to-end throughput, per-job overhead, CPU per image and
 * peak RSS of a `fluxq worker` fleet against the bare baseline (`bench/baseline.ts`), in
 * interleaved windows of the same jobs; `--stream-baseline` adds 6s.
 */
import { cpus } from 'node:os';
import { peakRssMiB, rssMiB } from '../proc-stats.js';
import { all, f0, f1, f2, med, pass, pp, ratio, runs, windowJson, type Row } from '../report.js';
import { BUCKETS, startBaseline, startCliFleet, stopFleet, stopScript, type Rig, type Size } from '../rig.js';
import { percentile } from '../util.js';
import { baselineWindow, fluxqWindow, type WindowResult } from '../windows.js';

export interface E2EOptions {
  workers: number;
  concurrency: number;
  /** The fake's ms per call. */
  latency: number;
  imageMp: number;
  entropy: number;
  size: Size;
  /** N per window. */
  jobs: number;
  repeat: number;
  /** Wall-clock budget for the repeated pairs (BENCH_E2E_BUDGET_S). */
  budgetS: number;
  streamBaseline: boolean;
}

export interface E2EFigures {
  fluxq: WindowResult[];
  baseline: WindowResult[];
  peakRss: number[];
  baselinePeakRss: number | undefined;
  /** VmRSS once started, before any job. */
  idleRss: number[];
  baselineIdleRss: number | undefined;
  workerWarnLines: number;
  /** `--stream-baseline`: the baseline with chunk-by-chunk base64 decoding. */
  stream?: { window: WindowResult; peakRss: number | undefined };
}

/** W × C / L: what the fleet would do with no time spent besides the upstream's. */
export const e2eIdeal = (o: E2EOptions) => (o.workers * o.concurrency) / (Math.max(o.latency, 1) / 1000);
const rssTarget = (o: E2EOptions, imageBytes: number) => 150 + (o.concurrency * 3 * imageBytes) / 1048576;

export async function e2eScenario(rig: Rig, o: E2EOptions): Promise<E2EFigures> {
  const { size, concurrency: C, latency: L } = o;
  const slots = o.workers * C;
  const base = { concurrency: C, latency: L, bucket: BUCKETS.base };
  rig.log(`end-to-end: ${o.workers} worker(s) × C=${C}, L=${L} ms, ${size.width}×${size.height}, ${o.jobs} jobs × ${o.repeat}`);
  const fleet = await startCliFleet(rig, 'e2e', o.workers, C, BUCKETS.e2e);
  const baseline = await startBaseline(rig, 'baseline', C, BUCKETS.base);
  const idleRss = fleet.children.map((c) => rssMiB(c.pid) ?? NaN);
  const baselineIdleRss = rssMiB(baseline.pid);
  // Warm-up (JIT, lazily loaded SDK modules, connection pools), not measured.
  await fluxqWindow(rig, fleet, 'e2e-warm', 2 * slots, size, L);
  await baselineWindow(rig, baseline, 'base-warm', 2 * C, size, base);
  const F: WindowResult[] = [];
  const B: WindowResult[] = [];
  const t0 = Date.now();
  for (let r = 1; r <= o.repeat; r++) {
    const perPair = (Date.now() - t0) / Math.max(1, r - 1);
    if (r > 1 && (Date.now() - t0 + perPair) / 1000 > o.budgetS) {
      rig.log(`  stopping after ${r - 1} pair(s): one more (~${(perPair / 1000).toFixed(0)} s) would pass the ${o.budgetS} s budget`);
      break;
    }
    // Interleaved, so drift on the machine hits both alike.
    const f = await fluxqWindow(rig, fleet, `e2e-r${r}`, o.jobs, size, L);
    F.push(f);
    rig.log(`  fluxq    r${r}: ${f.throughput.toFixed(1)} jobs/s (${((100 * f.throughput) / f.ideal).toFixed(1)}% of ideal), ${f.cpuMsPerImage.toFixed(2)} CPU ms/image, busy ${((f.machineBusy ?? 0) * 100).toFixed(0)}%`);
    const b = await baselineWindow(rig, baseline, `base-r${r}`, o.jobs, size, base);
    B.push(b);
    rig.log(`  baseline r${r}: ${b.throughput.toFixed(1)} jobs/s (${((100 * b.throughput) / b.ideal).toFixed(1)}% of ideal), ${b.cpuMsPerImage.toFixed(2)} CPU ms/image, busy ${((b.machineBusy ?? 0) * 100).toFixed(0)}%`);
  }
  // Peak RSS before SIGTERM.
  const peakRss = fleet.children.map((c) => peakRssMiB(c.pid) ?? NaN);
  const baselinePeakRss = peakRssMiB(baseline.pid);
  const workerWarnLines = fleet.children.reduce((n, c) => n + c.stderr.filter((l) => /"level":(4|5|6)0/.test(l)).length, 0);
  await Promise.all([stopFleet(rig, fleet), stopScript(baseline)]);
  let stream: E2EFigures['stream'];
  if (o.streamBaseline) {
    const sb = await startBaseline(rig, 'baseline-stream', C, BUCKETS.base, { BASELINE_DECODE: 'stream' });
    await baselineWindow(rig, sb, 'bstream-warm', 2 * C, size, base);
    const window = await baselineWindow(rig, sb, 'bstream-r1', o.jobs, size, base);
    rig.log(`  baseline, streaming decode: ${window.throughput.toFixed(1)} jobs/s, ${window.cpuMsPerImage.toFixed(2)} CPU ms/image`);
    stream = { window, peakRss: peakRssMiB(sb.pid) };
    await stopScript(sb);
  }
  return { fluxq: F, baseline: B, peakRss, baselinePeakRss, idleRss, baselineIdleRss, workerWarnLines, stream };
}

export function e2eRows(e2e: E2EFigures, o: E2EOptions, imageBytes: number): Row[] {
  const F = e2e.fluxq;
  const B = e2e.baseline;
  const IDEAL = e2eIdeal(o);
  const rows: Row[] = [];
  const tF = med(F, (w) => w.throughput);
  const tB = med(B, (w) => w.throughput);
  const atTarget = o.latency === 200 && o.concurrency === 32 && o.workers === 1 && o.imageMp === 1;
  const repE2E = F.length > 1 ? `, median of ${F.length}` : o.repeat > 1 ? ', 1 run (time budget)' : '';
  const e2eParams = `W=${o.workers} C=${o.concurrency} L=${o.latency}ms ${o.size.width}×${o.size.height} (${o.imageMp} MP) e=${o.entropy} N=${o.jobs}${repE2E}`;
  const both = (pick: (w: WindowResult) => number, fmt = f1) => (F.length > 1 ? `${runs(F, pick, fmt)} / base${runs(B, pick, fmt)}` : '');
  rows.push({ id: '2a', figure: 'end-to-end throughput (jobs/s)', params: `${e2eParams}${both((w) => w.throughput)}`, fluxq: f1(tF), baseline: f1(tB), ratio: f2(ratio(tF, tB)), target: `≥ ${f1(0.95 * IDEAL)} (0.95 × ideal ${f0(IDEAL)})${atTarget ? '' : ' *'}`, result: pass(tF !== undefined && tF >= 0.95 * IDEAL) });
  rows.push({ id: '2b', figure: 'throughput / ideal', params: `ideal = W×C/L = ${f1(IDEAL)} jobs/s`, fluxq: f2(ratio(tF, IDEAL)), baseline: f2(ratio(tB, IDEAL)), ratio: '', target: '≥ 0.95', result: pass(tF !== undefined && tF / IDEAL >= 0.95) });
  rows.push({ id: '2c', figure: 'upstream max in flight (fake)', params: `slots = ${o.workers * o.concurrency}`, fluxq: f0(Math.max(...F.map((w) => w.maxInFlight))), baseline: f0(Math.max(...B.map((w) => w.maxInFlight))), ratio: '', target: '', result: '' });
  const ovF = all(F, (w) => w.overhead);
  const ovB = all(B, (w) => w.overhead);
  rows.push({ id: '3a', figure: 'per-job overhead p50 / p99 (ms) ¹', params: `all ${ovF.length} jobs of the windows`, fluxq: pp(ovF), baseline: pp(ovB), ratio: f2(ratio(percentile(ovF, 50), percentile(ovB, 50))), target: '', result: '' });
  rows.push({ id: '3b', figure: '  before the call p50 / p99 (ms) ²', params: 'processedOn → call arrives at the fake', fluxq: pp(all(F, (w) => w.pre)), baseline: pp(all(B, (w) => w.pre)), ratio: '', target: '', result: '' });
  rows.push({ id: '3c', figure: '  after the call p50 / p99 (ms) ²', params: 'fake answer sent → finishedOn', fluxq: pp(all(F, (w) => w.post)), baseline: pp(all(B, (w) => w.post)), ratio: '', target: '', result: '' });
  rows.push({ id: '3d', figure: '  slot hand-over p50 / p99 (ms) ³', params: 'job finishes → next job starts in the freed slot', fluxq: pp(all(F, (w) => w.handover)), baseline: pp(all(B, (w) => w.handover)), ratio: '', target: '', result: '' });
  const idF = all(F, (w) => w.upstreamIdle);
  const idB = all(B, (w) => w.upstreamIdle);
  rows.push({ id: '3e', figure: '  upstream idle per slot p50 / p99 (ms) ³', params: 'answer sent → next call arrives, per slot', fluxq: pp(idF), baseline: pp(idB), ratio: f2(ratio(percentile(idF, 50), percentile(idB, 50))), target: '', result: '' });
  const cF = med(F, (w) => w.cpuMsPerImage);
  const cB = med(B, (w) => w.cpuMsPerImage);
  rows.push({ id: '4a', figure: 'CPU per image (ms, /proc utime+stime)', params: `worker process(es) vs baseline child${both((w) => w.cpuMsPerImage, f2)}`, fluxq: f2(cF), baseline: f2(cB), ratio: f2(ratio(cF, cB)), target: '≤ 1.30 × baseline', result: pass(cF !== undefined && cB !== undefined && cF <= 1.3 * cB) });
  const rss = rssTarget(o, imageBytes);
  const peak = Math.max(...e2e.peakRss);
  rows.push({ id: '4b', figure: 'peak RSS per worker (MiB, VmHWM)', params: `C=${o.concurrency}, image ${f2(imageBytes / 1048576)} MiB decoded; idle RSS ${e2e.idleRss.map(f0).join(' ')} / base ${f0(e2e.baselineIdleRss)}${o.workers > 1 ? `; peaks ${e2e.peakRss.map(f0).join(' ')}` : ''}`, fluxq: f0(peak), baseline: f0(e2e.baselinePeakRss), ratio: f2(ratio(peak, e2e.baselinePeakRss)), target: `≤ ${f0(rss)} (150 + C×3×image)`, result: pass(peak <= rss) });
  const rigF = (k: 'bench' | 's3rver' | 'redis') => med(F, (w) => w.rigCpuMsPerImage[k]);
  const rigB = (k: 'bench' | 's3rver' | 'redis') => med(B, (w) => w.rigCpuMsPerImage[k]);
  rows.push({ id: '4c', figure: 'rig CPU per image: fake+bench / s3rver / redis (ms)', params: 'processes outside the worker, same windows', fluxq: `${f2(rigF('bench'))} / ${f2(rigF('s3rver'))} / ${f2(rigF('redis'))}`, baseline: `${f2(rigB('bench'))} / ${f2(rigB('s3rver'))} / ${f2(rigB('redis'))}`, ratio: '', target: '', result: '' });
  const busyF = med(F, (w) => w.machineBusy ?? NaN);
  const busyB = med(B, (w) => w.machineBusy ?? NaN);
  rows.push({ id: '4d', figure: 'machine CPU busy during the window', params: `${cpus().length} cores, /proc/stat`, fluxq: `${f0((busyF ?? NaN) * 100)}%`, baseline: `${f0((busyB ?? NaN) * 100)}%`, ratio: '', target: '', result: '' });
  const rigTotal = (ws: WindowResult[]) => med(ws, (w) => w.cpuMsPerImage + w.rigCpuMsPerImage.bench + w.rigCpuMsPerImage.s3rver + w.rigCpuMsPerImage.redis);
  // Bound by all cores, and by the busiest single-threaded process (s3rver, or one worker).
  const ceil = (ws: WindowResult[], workers: number) => {
    const total = rigTotal(ws);
    const s3 = med(ws, (w) => w.rigCpuMsPerImage.s3rver);
    const worker = med(ws, (w) => w.cpuMsPerImage);
    const bounds = [total ? (cpus().length * 1000) / total : Infinity, s3 ? 1000 / s3 : Infinity, worker ? (1000 * workers) / worker : Infinity];
    return Math.min(...bounds);
  };
  rows.push({ id: '4e', figure: 'rig CPU ceiling (jobs/s) ⁴', params: 'min(cores×1000 / all CPU ms per image, 1000 / s3rver ms, W×1000 / worker ms)', fluxq: f0(ceil(F, o.workers)), baseline: f0(ceil(B, 1)), ratio: '', target: `vs ideal ${f0(IDEAL)}`, result: '' });
  if (e2e.stream) {
    const sw = e2e.stream.window;
    rows.push({ id: '6s', figure: 'experiment: baseline with streaming base64 decode', params: `jobs/s · CPU ms/image · peak RSS MiB (vs the plain baseline ${f1(tB)} · ${f2(cB)} · ${f0(e2e.baselinePeakRss)})`, fluxq: '', baseline: `${f1(sw.throughput)} · ${f2(sw.cpuMsPerImage)} · ${f0(e2e.stream.peakRss)}`, ratio: '', target: `RSS ≤ ${f0(rss)}`, result: pass((e2e.stream.peakRss ?? Infinity) <= rss) });
  }
  return rows;
}

export function e2eNotes(e2e: E2EFigures): string[] {
  return e2e.workerWarnLines > 0 ? [`workers wrote ${e2e.workerWarnLines} warn/error log line(s) during the run.`] : [];
}

export function e2eWindows(e2e: E2EFigures): WindowResult[] {
  return [...e2e.fluxq, ...e2e.baseline, ...(e2e.stream ? [e2e.stream.window] : [])];
}

export function e2eJson(e2e: E2EFigures, o: E2EOptions, imageBytes: number) {
  return {
    fluxq: e2e.fluxq.map(windowJson),
    baseline: e2e.baseline.map(windowJson),
    medians: {
      fluxqJobsPerS: med(e2e.fluxq, (w) => w.throughput),
      baselineJobsPerS: med(e2e.baseline, (w) => w.throughput),
      fluxqCpuMsPerImage: med(e2e.fluxq, (w) => w.cpuMsPerImage),
      baselineCpuMsPerImage: med(e2e.baseline, (w) => w.cpuMsPerImage),
    },
    peakRssMiB: e2e.peakRss,
    baselinePeakRssMiB: e2e.baselinePeakRss,
    idleRssMiB: e2e.idleRss,
    baselineIdleRssMiB: e2e.baselineIdleRss,
    rssTargetMiB: rssTarget(o, imageBytes),
    stream: e2e.stream ? { window: windowJson(e2e.stream.window), peakRssMiB: e2e.stream.peakRss } : null,
  };
}
