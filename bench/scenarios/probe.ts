/**
 * Scenario 5: the worker's event-loop delay at full load, measured in its own process by
 * `bench/worker-probe.ts` (the worker built exactly as `fluxq worker` builds it), with
 * the stalls it saw for `profile-summary.ts --stalls`.
 */
import { join } from 'node:path';
import { peakRssMiB } from '../proc-stats.js';
import { f0, f1, pass, windowJson, type Row } from '../report.js';
import { BUCKETS, newProducer, REPO, roundUp, RUN_ID, spawnTracked, stopScript, workerEnv, type Fleet, type Rig, type Size } from '../rig.js';
import { fluxqWindow, type WindowResult } from '../windows.js';

export interface ProbeOptions {
  concurrency: number;
  latency: number;
  size: Size;
  /** Length of the measured window at the measured rate. */
  seconds: number;
}

export interface ProbeFigures {
  window: WindowResult;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  peakRss: number | undefined;
  /** Ticks of the probe's 5 ms timer later than 20 ms, and the longest (see worker-probe.ts). */
  stallCount: number;
  stalls: { startUs: number; endUs: number; gapMs: number; runMs?: number; runQueueMs?: number }[];
  pid: number;
}

/** `measuredJobsPerS`: what one CLI worker reached in the end-to-end windows, when they ran. */
export async function probeScenario(rig: Rig, o: ProbeOptions, measuredJobsPerS: number | undefined): Promise<ProbeFigures> {
  const C = o.concurrency;
  // Enough jobs for ~o.seconds at the throughput the CLI worker reached (not the ideal).
  const rate = Math.min(C / (Math.max(o.latency, 1) / 1000), measuredJobsPerS ?? Infinity);
  const n = roundUp(Math.max(4 * C, rate * o.seconds), C);
  rig.log(`event-loop probe: 1 in-process worker × C=${C}, ${n} jobs`);
  const prefix = `bench-probe-${RUN_ID}`;
  const producer = newProducer(rig, prefix);
  const child = spawnTracked(rig, 'worker-probe', 'worker-probe', join(REPO, 'bench/worker-probe.ts'), [], workerEnv(rig, prefix, BUCKETS.probe, C));
  await child.waitMessage((m) => m.event === 'ready', 60_000, 'probe ready');
  const fleet: Fleet = { name: 'probe', prefix, bucket: BUCKETS.probe, producer, children: [child], slots: C };
  await fluxqWindow(rig, fleet, 'probe-warm', 2 * C, o.size, o.latency);
  child.send({ cmd: 'start' });
  const window = await fluxqWindow(rig, fleet, 'probe-r1', n, o.size, o.latency);
  child.send({ cmd: 'stop' });
  const eld = await child.waitMessage((m) => m.event === 'eld', 10_000, 'event-loop figures');
  const peakRss = peakRssMiB(child.pid);
  const entry = rig.profIndex.find((e) => e.pid === child.pid);
  if (entry) entry.stalls = (eld.stalls as unknown[] | undefined) ?? [];
  await stopScript(child, 20_000);
  await producer.close();
  return {
    window,
    p50Ms: Number(eld.p50Ms),
    p99Ms: Number(eld.p99Ms),
    maxMs: Number(eld.maxMs),
    meanMs: Number(eld.meanMs),
    peakRss,
    stallCount: Number(eld.stallCount ?? 0),
    stalls: (eld.stalls as ProbeFigures['stalls'] | undefined) ?? [],
    pid: child.pid,
  };
}

export function probeRows(probe: ProbeFigures, o: ProbeOptions): Row[] {
  const top = probe.stalls.slice(0, 5);
  const sum = (pick: (x: ProbeFigures['stalls'][number]) => number | undefined) => top.reduce((n, x) => n + (pick(x) ?? NaN), 0);
  const stalls = top.length > 0 ? `; ${probe.stallCount} stalls > 20 ms, longest ${top.map((x) => f0(x.gapMs)).join(' ')} ms: main thread on a core ${f0(sum((x) => x.runMs))} ms, waiting for one ${f0(sum((x) => x.runQueueMs))} ms of ${f0(sum((x) => x.gapMs))} ⁵` : '';
  return [
    { id: '5', figure: 'worker event-loop delay p50 / p99 / max (ms)', params: `in-process probe, C=${o.concurrency} L=${o.latency}ms ${o.size.width}×${o.size.height}, N=${probe.window.jobs}, ${f1(probe.window.throughput)} jobs/s, busy ${f0((probe.window.machineBusy ?? NaN) * 100)}%${stalls}`, fluxq: `${f1(probe.p50Ms)} / ${f1(probe.p99Ms)} / ${f0(probe.maxMs)}`, baseline: '', ratio: '', target: '< 50 (p99)', result: pass(probe.p99Ms < 50) },
  ];
}

export function probeNotes(probe: ProbeFigures): string[] {
  return probe.stalls.length > 0
    ? [
        `⁵ stalls of the probe's event loop (a 5 ms timer firing > 20 ms late), split by /proc/self/task/<pid>/schedstat into time the main thread ran (blocking work) and time it sat runnable on the run queue (no core free: starvation, not code). Their µs bounds are on the clock of --cpu-prof profiles: \`npx tsx bench/profile-summary.ts DIR --stalls\` shows what ran in them.`,
      ]
    : [];
}

export function probeJson(probe: ProbeFigures) {
  return { ...probe, window: windowJson(probe.window) };
}
