/**
 * Scenario 8: adaptive concurrency. A fleet of W × C slots against an account capped at
 * `cap` calls in flight (the fake answers 429 beyond it), latency-bound: with
 * GLOBAL_CONCURRENCY=auto from a cold controller (8a–8c), and for comparison unset (8d)
 * and static at the cap (8e).
 */
import { f0, f1, f2, pass, windowJson, type Row } from '../report.js';
import { BUCKETS, prewarmFake, QUEUE, roundUp, startCliFleet, stopFleet, type Rig, type Size } from '../rig.js';
import { percentile, sleep } from '../util.js';
import { callStats, fluxqWindow, type WindowResult } from '../windows.js';
import type { CallRecord } from '../../src/demo/fake-flux.js';

export interface AutoOptions {
  /** The account's limit: the fake's `concurrencyLimit`. */
  cap: number;
  workers: number;
  concurrency: number;
  latency: number;
  size: Size;
  /** The auto window: N = seconds × cap / L. */
  seconds: number;
  /** Each comparison window (unset, static). */
  compareSeconds: number;
  /** Run the unset and static comparisons. */
  compare: boolean;
  /** The fake's latency to restore afterwards. */
  restoreLatency: number;
}

type AutoMode = 'auto' | 'unset' | 'static';

interface AutoSample {
  /** ms since epoch */
  at: number;
  /** BullMQ's global concurrency (queue meta `concurrency`); undefined when unset. */
  concurrency: number | undefined;
  /** Calls in flight at the fake (429s being answered included). */
  inFlight: number;
}

interface AutoRun {
  mode: AutoMode;
  /** GLOBAL_CONCURRENCY as given to the workers ('' = unset). */
  globalConcurrency: string;
  window: WindowResult;
  calls: number;
  limited: number;
  share429: number;
  /** Most calls in flight at once that were answered 200 (from the fake's log). */
  peakAccepted: number;
  /** From the window's first call: the first call that found `cap` calls in flight; the first 429. */
  capReachedMs: number | undefined;
  first429Ms: number | undefined;
  /** From the window's first call: when the sampled global concurrency entered ±10 % of the cap for good. */
  settledMs: number | undefined;
  /** 200 answers per second from `settledMs` to the last one (the steady state, without the slow start). */
  steadyJobsPerS: number | undefined;
  /** `{prefix}:concurrency` at the end (auto only). */
  state: Record<string, string>;
  trace: AutoSample[];
}

export interface AutoFigures {
  runs: AutoRun[];
}

/** What the account allows: `cap` calls in flight, each taking L. */
const autoIdeal = (o: AutoOptions) => o.cap / (o.latency / 1000);

/** Sample BullMQ's global concurrency and the fake's in-flight count every `everyMs`. */
function sampleConcurrency(rig: Rig, prefix: string, everyMs = 250): { stop(): Promise<AutoSample[]> } {
  const metaKey = `${prefix}:${QUEUE}:meta`;
  const out: AutoSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      const inFlight = rig.fake.inFlight;
      const v = await rig.benchRedis.hget(metaKey, 'concurrency').catch(() => null);
      out.push({ at, concurrency: v === null ? undefined : Number(v), inFlight });
      await sleep(Math.max(0, everyMs - (Date.now() - at)));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return out;
    },
  };
}

/** Most calls answered 200 that were in flight at once (arrival → answer end). */
function peakConcurrent(calls: CallRecord[]): number {
  const ev: [number, number][] = [];
  for (const c of calls) if (c.status === 200 && c.endedAt !== undefined) ev.push([c.at, 1], [c.endedAt, -1]);
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let n = 0;
  let peak = 0;
  for (const [, d] of ev) peak = Math.max(peak, (n += d));
  return peak;
}

const AUTO_BAND = (cap: number): [number, number] => [Math.floor(0.9 * cap), Math.ceil(1.1 * cap)];

/**
 * One fleet of W × C against the fake capped at `cap` calls in flight. The workers are
 * warmed without the cap; for `auto` the controller is then reset as a fresh deployment
 * starts it (no learned state, BullMQ's global concurrency at AUTO_CONCURRENCY_MIN), so
 * the measured window includes the slow start.
 */
async function autoRun(rig: Rig, o: AutoOptions, mode: AutoMode, n: number): Promise<AutoRun> {
  const ideal = autoIdeal(o);
  const globalConcurrency = mode === 'auto' ? 'auto' : mode === 'static' ? String(o.cap) : '';
  const env: Record<string, string | undefined> =
    mode === 'auto' ? { GLOBAL_CONCURRENCY: 'auto', AUTO_CONCURRENCY_MIN: '1', AUTO_CONCURRENCY_MAX: '64' } : { GLOBAL_CONCURRENCY: globalConcurrency || undefined, AUTO_CONCURRENCY_MIN: undefined, AUTO_CONCURRENCY_MAX: undefined };
  rig.log(`adaptive concurrency: ${o.workers} worker(s) × C=${o.concurrency}, GLOBAL_CONCURRENCY=${globalConcurrency || '(unset)'}, cap ${o.cap}, L=${o.latency} ms, ${o.size.width}×${o.size.height}, ${n} jobs`);
  const fleet = await startCliFleet(rig, `auto-${mode}`, o.workers, o.concurrency, BUCKETS.auto, env);
  rig.fake.configure({ concurrencyLimit: undefined });
  await fluxqWindow(rig, fleet, `auto-${mode}-warm`, 2 * fleet.slots, o.size, o.latency, { ideal });
  const stateKey = `${fleet.prefix}:concurrency`;
  const metaKey = `${fleet.prefix}:${QUEUE}:meta`;
  if (mode === 'auto') {
    await sleep(500); // the last observe() calls of the warm-up
    await rig.benchRedis.del(stateKey);
    await rig.benchRedis.hset(metaKey, 'concurrency', '1');
  }
  rig.fake.configure({ concurrencyLimit: o.cap, concurrencyRetryAfter: '1' });
  const sampler = sampleConcurrency(rig, fleet.prefix);
  let window: WindowResult;
  try {
    // At most ~cap calls run at once under a global concurrency (static and auto), so the slot pairing of 3d/3e uses the cap.
    window = await fluxqWindow(rig, fleet, `auto-${mode}-r1`, n, o.size, o.latency, { ideal, slots: o.cap });
  } finally {
    rig.fake.configure({ concurrencyLimit: undefined });
  }
  const trace = (await sampler.stop()).filter((x) => x.at >= window.startAt - 500 && x.at <= window.endAt);
  const state = await rig.benchRedis.hgetall(stateKey);
  const { mine } = callStats(rig.fake.calls, `auto-${mode}-r1 `);
  const limited = mine.filter((c) => c.status === 429).length;
  const rel = (t: number | undefined) => (t === undefined || !Number.isFinite(t) ? undefined : t - window.startAt);
  const capReachedMs = rel(mine.find((c) => c.inFlightAtArrival >= o.cap)?.at);
  const first429Ms = rel(mine.find((c) => c.status === 429)?.at);
  let settledMs: number | undefined;
  if (mode === 'auto') {
    const [lo, hi] = AUTO_BAND(o.cap);
    const inBand = (x: AutoSample) => x.concurrency !== undefined && x.concurrency >= lo && x.concurrency <= hi;
    let lastOut = -1;
    trace.forEach((x, i) => {
      if (!inBand(x)) lastOut = i;
    });
    const first = trace[lastOut + 1];
    settledMs = first ? Math.max(0, first.at - window.startAt) : undefined;
  }
  let steadyJobsPerS: number | undefined;
  if (settledMs !== undefined) {
    const from = window.startAt + settledMs;
    const ends = mine.filter((c) => c.status === 200 && c.endedAt !== undefined && c.endedAt > from).map((c) => c.endedAt as number);
    const last = Math.max(...ends);
    steadyJobsPerS = ends.length > 1 && last > from ? ends.length / ((last - from) / 1000) : undefined;
  }
  const run: AutoRun = {
    mode,
    globalConcurrency,
    window,
    calls: mine.length,
    limited,
    share429: limited / Math.max(1, mine.length),
    peakAccepted: peakConcurrent(mine),
    capReachedMs,
    first429Ms,
    settledMs,
    steadyJobsPerS,
    state,
    trace,
  };
  rig.log(
    `  ${mode}: ${window.throughput.toFixed(1)} jobs/s (${((100 * window.throughput) / ideal).toFixed(1)}% of cap/L), 429s ${limited}/${mine.length} (${(100 * run.share429).toFixed(2)}%), max in flight ${window.maxInFlight}, peak accepted ${run.peakAccepted}` +
      (mode === 'auto' ? `, limit ${state.limit ?? '?'}, cap reached at ${f1((capReachedMs ?? NaN) / 1000)} s, settled at ${f1((settledMs ?? NaN) / 1000)} s` : ''),
  );
  await stopFleet(rig, fleet);
  return run;
}

export async function autoScenario(rig: Rig, o: AutoOptions): Promise<AutoFigures> {
  rig.fake.configure({ latencyMs: o.latency });
  await prewarmFake(rig.fake, o.size);
  const n = roundUp(autoIdeal(o) * o.seconds, o.cap);
  const nCompare = roundUp(autoIdeal(o) * o.compareSeconds, o.cap);
  const runs: AutoRun[] = [];
  try {
    runs.push(await autoRun(rig, o, 'auto', n));
    if (o.compare) {
      runs.push(await autoRun(rig, o, 'unset', nCompare));
      runs.push(await autoRun(rig, o, 'static', nCompare));
    }
  } finally {
    rig.fake.configure({ latencyMs: o.restoreLatency, concurrencyLimit: undefined });
  }
  return { runs };
}

/** The auto run's global concurrency over time, as its changes: "t s→limit". */
function traceChanges(run: AutoRun): string {
  const parts: string[] = [];
  let last: number | undefined | null = null;
  for (const x of run.trace) {
    if (x.concurrency === last) continue;
    last = x.concurrency;
    parts.push(`${((x.at - run.window.startAt) / 1000).toFixed(2)}→${x.concurrency ?? '–'}`);
  }
  return parts.join(' ');
}

export function autoRows(a: AutoFigures, o: AutoOptions): Row[] {
  const ideal = autoIdeal(o);
  const pctOf = (x: number) => `${f0((100 * x) / ideal)}%`;
  const share = (r: AutoRun) => `${(100 * r.share429).toFixed(2)} %`;
  const sz = `${o.size.width}×${o.size.height}`;
  const byMode = (m: AutoMode) => a.runs.find((r) => r.mode === m);
  const rows: Row[] = [];
  const auto = byMode('auto');
  const stat = byMode('static');
  if (auto) {
    const w = auto.window;
    const vsStatic = stat ? `; ${f2(w.throughput / stat.window.throughput)} × the static run` : '';
    rows.push({ id: '8a', figure: 'adaptive concurrency: GLOBAL_CONCURRENCY=auto (jobs/s)', params: `${o.workers} workers × C=${o.concurrency} vs an account cap of ${o.cap} in flight, L=${o.latency}ms ${sz} N=${w.jobs}; ideal cap/L = ${f0(ideal)}; from a cold controller (min 1, max 64); busy ${f0((w.machineBusy ?? NaN) * 100)}%${vsStatic}`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: `≥ ${f1(0.9 * ideal)} (0.90 × cap/L)`, result: pass(w.throughput >= 0.9 * ideal) });
    rows.push({ id: '8a′', figure: '  auto after settling (200s/s) · per job p50: before call / after call / hand-over (ms)', params: `from ${f1((auto.settledMs ?? NaN) / 1000)} s to the last answer; a job's time besides L, see ² ³ (pairing with S = cap)`, fluxq: `${f1(auto.steadyJobsPerS)} (${pctOf(auto.steadyJobsPerS ?? NaN)}) · ${f0(percentile(w.pre, 50))} / ${f0(percentile(w.post, 50))} / ${f0(percentile(w.handover, 50))}`, baseline: '', ratio: '', target: '', result: '' });
    rows.push({ id: '8b', figure: '  calls answered 429 (auto)', params: `${auto.limited} of ${auto.calls} upstream calls; ${auto.state.decreases ?? 0} cut(s) of the limit`, fluxq: share(auto), baseline: '', ratio: '', target: '< 2 %', result: pass(auto.share429 < 0.02) });
    const [lo, hi] = AUTO_BAND(o.cap);
    rows.push({ id: '8c', figure: '  settled limit · max in flight · peak 200s in flight', params: `\`{prefix}:concurrency\` limit at the end (learned break ${auto.state.bad ?? '?'}); ${o.cap} in flight first at ${f1((auto.capReachedMs ?? NaN) / 1000)} s, first 429 at ${f1((auto.first429Ms ?? NaN) / 1000)} s, limit in ${lo}–${hi} from ${f1((auto.settledMs ?? NaN) / 1000)} s on`, fluxq: `${auto.state.limit ?? '–'} · ${w.maxInFlight} · ${auto.peakAccepted}`, baseline: '', ratio: '', target: `cap ${o.cap}`, result: '' });
  }
  const unset = byMode('unset');
  if (unset) {
    const w = unset.window;
    rows.push({ id: '8d', figure: '  GLOBAL_CONCURRENCY unset: 429 storm (jobs/s)', params: `${o.workers}×${o.concurrency} = ${o.workers * o.concurrency} slots vs cap ${o.cap}, N=${w.jobs}; 429s ${unset.limited} of ${unset.calls} = ${share(unset)}; max in flight ${w.maxInFlight}, peak 200s ${unset.peakAccepted}`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: '', result: '' });
  }
  if (stat) {
    const w = stat.window;
    rows.push({ id: '8e', figure: `  GLOBAL_CONCURRENCY=${o.cap}: static, ideal setting (jobs/s)`, params: `same fleet, N=${w.jobs}; 429s ${stat.limited} of ${stat.calls} = ${share(stat)}; max in flight ${w.maxInFlight}; per job p50 before call / after call / hand-over ${f0(percentile(w.pre, 50))} / ${f0(percentile(w.post, 50))} / ${f0(percentile(w.handover, 50))} ms, upstream idle/slot p50 ${f0(percentile(w.upstreamIdle, 50))} ms`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: '', result: '' });
  }
  return rows;
}

export function autoNotes(a: AutoFigures, o: AutoOptions): string[] {
  return [
    `8: the fake answers 429 (Retry-After: 1) to a call that finds more than ${o.cap} in flight; a 429 pauses the whole queue for the Retry-After (queue.rateLimit) and puts the job back. Clock as in 2a. Workers are warmed without the cap; the auto run then starts from a reset controller (no {prefix}:concurrency, global concurrency 1), like a fresh deployment.`,
    ...a.runs.filter((r) => r.mode === 'auto').map((r) => `8 auto: BullMQ global concurrency over the window (s from the first call → value, sampled every 250 ms): ${traceChanges(r)}`),
  ];
}

export function autoJson(a: AutoFigures, o: AutoOptions) {
  const ideal = autoIdeal(o);
  return {
    params: { cap: o.cap, workers: o.workers, concurrency: o.concurrency, latencyMs: o.latency, size: o.size, idealJobsPerS: ideal, seconds: o.seconds, compareSeconds: o.compareSeconds },
    runs: a.runs.map(({ window, trace, ...r }) => ({
      ...r,
      window: windowJson(window),
      throughputOverIdeal: window.throughput / ideal,
      trace: trace.map((x) => ({ tMs: x.at - window.startAt, concurrency: x.concurrency ?? null, inFlight: x.inFlight })),
    })),
  };
}
