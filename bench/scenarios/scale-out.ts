/**
 * Scenario 7: 1 worker process vs 4, latency-bound (small images, few slots, long
 * calls), and one baseline process at the same C, L and size.
 */
import { f0, f1, f2, pass, windowJson, type Row } from '../report.js';
import { BUCKETS, prewarmFake, startBaseline, startCliFleet, stopFleet, stopScript, type Rig, type Size } from '../rig.js';
import { percentile } from '../util.js';
import { baselineWindow, fluxqWindow, type WindowResult } from '../windows.js';

export interface ScaleOptions {
  concurrency: number;
  latency: number;
  size: Size;
  /** N = rounds × W × C. */
  rounds: number;
  /** The fake's latency to restore afterwards. */
  restoreLatency: number;
}

export interface ScaleFigures {
  one: WindowResult;
  four: WindowResult;
  ratio: number;
  /** The bare baseline, one process at the same C, L and size. */
  baseline: WindowResult;
}

export async function scaleScenario(rig: Rig, o: ScaleOptions): Promise<ScaleFigures> {
  const { concurrency: C, latency: L, size } = o;
  rig.fake.configure({ latencyMs: L });
  await prewarmFake(rig.fake, size);
  const results: WindowResult[] = [];
  for (const w of [1, 4]) {
    const slots = w * C;
    rig.log(`scale-out: ${w} worker(s) × C=${C}, L=${L} ms, ${size.width}×${size.height}, ${slots * o.rounds} jobs`);
    const fleet = await startCliFleet(rig, `scale${w}`, w, C, BUCKETS.scale);
    await fluxqWindow(rig, fleet, `scale${w}-warm`, 2 * slots, size, L);
    const r = await fluxqWindow(rig, fleet, `scale${w}-r1`, slots * o.rounds, size, L);
    rig.log(`  ${w} worker(s): ${r.throughput.toFixed(1)} jobs/s (${((100 * r.throughput) / r.ideal).toFixed(1)}% of ideal), busy ${((r.machineBusy ?? 0) * 100).toFixed(0)}%`);
    results.push(r);
    await stopFleet(rig, fleet);
  }
  const sb = await startBaseline(rig, 'baseline-scale', C, BUCKETS.scale);
  const base = { concurrency: C, latency: L, bucket: BUCKETS.scale };
  await baselineWindow(rig, sb, 'bscale-warm', 2 * C, size, base);
  const baseline = await baselineWindow(rig, sb, 'bscale-r1', C * o.rounds, size, base);
  rig.log(`  baseline, 1 process: ${baseline.throughput.toFixed(1)} jobs/s (${((100 * baseline.throughput) / baseline.ideal).toFixed(1)}% of ideal)`);
  await stopScript(sb);
  rig.fake.configure({ latencyMs: o.restoreLatency });
  const [one, four] = results as [WindowResult, WindowResult];
  return { one, four, ratio: four.throughput / one.throughput, baseline };
}

export function scaleRows(scale: ScaleFigures, o: ScaleOptions): Row[] {
  const pct = (w: WindowResult) => `${f1(w.throughput)} (${f0((100 * w.throughput) / w.ideal)}%)`;
  const idle = (w: WindowResult) => `${f1(percentile(w.upstreamIdle, 50))} / ${f1(percentile(w.upstreamIdle, 99))}`;
  return [
    { id: '7a', figure: 'scale-out: 1 worker (jobs/s)', params: `C=${o.concurrency} L=${o.latency}ms ${o.size.width}×${o.size.height} N=${scale.one.jobs}, ideal ${f0(scale.one.ideal)}, busy ${f0((scale.one.machineBusy ?? NaN) * 100)}%`, fluxq: pct(scale.one), baseline: pct(scale.baseline), ratio: f2(scale.one.throughput / scale.baseline.throughput), target: '', result: '' },
    { id: '7a′', figure: '  upstream idle per slot p50 / p99 (ms) ³', params: '1 worker vs 1 baseline process, same window sizes', fluxq: idle(scale.one), baseline: idle(scale.baseline), ratio: '', target: '', result: '' },
    { id: '7b', figure: 'scale-out: 4 workers (jobs/s)', params: `4 processes × C=${o.concurrency}, N=${scale.four.jobs}, ideal ${f0(scale.four.ideal)}, busy ${f0((scale.four.machineBusy ?? NaN) * 100)}%`, fluxq: pct(scale.four), baseline: '', ratio: '', target: '', result: '' },
    { id: '7c', figure: 'scale-out: 4 workers / 1 worker', params: 'latency-bound upstream', fluxq: scale.ratio.toFixed(3), baseline: '', ratio: '', target: '≥ 3.50', result: pass(scale.ratio >= 3.5) },
  ];
}

export function scaleJson(scale: ScaleFigures, o: ScaleOptions) {
  return { one: windowJson(scale.one), four: windowJson(scale.four), baseline: windowJson(scale.baseline), ratio: scale.ratio, concurrency: o.concurrency, latencyMs: o.latency, size: o.size };
}
