/**
 * The bench's one report: the table (one row per figure, see bench/README.md), the notes
 * under it and the `--json` file. Each scenario builds its own rows and JSON section with
 * the formatters here.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { median, percentile } from './util.js';
import type { WindowResult } from './windows.js';

export interface Row {
  id: string;
  figure: string;
  params: string;
  fluxq: string;
  baseline: string;
  ratio: string;
  target: string;
  result: string;
}

export const f0 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(0));
export const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(1));
export const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2));
export const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b ? undefined : a / b);
export const pass = (ok: boolean | undefined) => (ok === undefined ? '–' : ok ? 'PASS' : 'FAIL');
/** Every window's values of one per-job figure. */
export const all = (ws: WindowResult[], pick: (w: WindowResult) => number[]) => ws.flatMap(pick);
/** The median over windows of one figure. */
export const med = (ws: WindowResult[], pick: (w: WindowResult) => number) => median(ws.map(pick));
/** " [a b c]": each window's value, when there is more than one. */
export const runs = (ws: WindowResult[], pick: (w: WindowResult) => number, fmt = f1) => (ws.length > 1 ? ` [${ws.map((w) => fmt(pick(w))).join(' ')}]` : '');
/** "p50 / p99" of per-job values. */
export const pp = (v: number[]) => `${f1(percentile(v, 50))} / ${f1(percentile(v, 99))}`;

export function printTable(rows: Row[]): string {
  const cols: (keyof Row)[] = ['id', 'figure', 'params', 'fluxq', 'baseline', 'ratio', 'target', 'result'];
  const heads: Record<keyof Row, string> = { id: '#', figure: 'figure', params: 'parameters', fluxq: 'fluxq', baseline: 'baseline', ratio: 'fluxq/base', target: 'target', result: 'result' };
  const width = (c: keyof Row) => Math.max(heads[c].length, ...rows.map((r) => r[c].length));
  const w = Object.fromEntries(cols.map((c) => [c, width(c)])) as Record<keyof Row, number>;
  const line = (r: Record<keyof Row, string>) => `| ${cols.map((c) => r[c].padEnd(w[c])).join(' | ')} |`;
  const sep = `|${cols.map((c) => '-'.repeat(w[c] + 2)).join('|')}|`;
  return [line(heads), sep, ...rows.map(line)].join('\n');
}

/** The notes under the table: definitions, then what each scenario adds, then outside load and failed jobs per window. */
export function benchNotes(windows: WindowResult[], scenarioNotes: string[]): string[] {
  const machineMs = (w: WindowResult) => w.seconds * 1000 * cpus().length;
  return [
    `Clock (2a, 7): from the first upstream call of the window arriving at the fake to the last job's finishedOn (baseline: its last PUT); workers are up, warmed (2×slots jobs) and idle, and the window's jobs are enqueued into the paused queue before it resumes.`,
    `¹ per job: (finishedOn − processedOn) − (fake answer end − call arrival) of its successful call, matched by prompt; baseline: (its end − its start) − the same. It holds everything a job does besides the upstream's own latency: ledger/checkpoint/S3 lookup, receiving and decoding the body, sha256, the PUT to s3rver, finalize.`,
    `² the two halves of ¹. ³ with at most S = W×C jobs running, the k-th job to finish frees the slot the (S+k)-th start takes: hand-over = start[S+k] − finish[k] (BullMQ processedOn/finishedOn); upstream idle = arrival[S+k] − answer end[k] at the fake, i.e. what one slot spends per job besides L (throughput ≈ S / (L + idle)).`,
    `⁴ the most this machine could do with this job mix: every core busy, or the single-threaded s3rver (or worker) at 100 %; when it is below 0.95 × ideal the throughput target cannot be met on this machine by fluxq or by the baseline.`,
    `* the throughput target is defined at L=200 ms, C=32, 1 worker, 1 MP; other parameters are compared with 0.95 × their own ideal.`,
    ...scenarioNotes,
    ...windows
      .filter((w) => w.outside.cpuMs > 0.05 * machineMs(w))
      .map((w) => `window ${w.tag}: other processes on the machine used ${f0(w.outside.cpuMs)} CPU ms (${f0((100 * w.outside.cpuMs) / machineMs(w))}% of the machine), e.g. ${w.outside.top.map((p) => `${p.comm}[${p.pid}] ${f0(p.cpuMs)} ms`).join(', ')}`),
    ...windows.filter((w) => w.failed > 0).map((w) => `window ${w.tag}: ${w.failed} job(s) failed, e.g. ${w.firstFailure ?? '?'}`),
  ];
}

/** A window for the JSON file: its per-job lists as quantiles. */
export function windowJson(w: WindowResult) {
  const { overhead, pre, preAt: _preAt, post, callMs, handover, upstreamIdle, ...rest } = w;
  const q = (v: number[]) => ({ n: v.length, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99), max: v.length ? Math.max(...v) : undefined });
  return { ...rest, overheadMs: q(overhead), preMs: q(pre), postMs: q(post), callMs: q(callMs), handoverMs: q(handover), upstreamIdleMs: q(upstreamIdle) };
}

/** `--json FILE`: the run's parameters, every scenario's section (null when it did not run), the rows and the notes. */
export async function writeBenchJson(file: string, head: Record<string, unknown>, sections: Record<string, unknown>, rows: Row[], notes: string[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ ...head, ...sections, rows, notes }, null, 2)}\n`);
}
