/**
 * Linux /proc readings for the bench: CPU time (utime + stime) and peak RSS (VmHWM) of a
 * process, and the machine-wide busy share from /proc/stat.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticks: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`, normally 100). */
export function clockTicks(): number {
  if (ticks !== undefined) return ticks;
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim());
    ticks = Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    ticks = 100;
  }
  return ticks;
}

/** utime + stime of a process in ms (its threads included), or undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}

function statusKb(pid: number, field: string): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Peak resident set size (VmHWM) in MiB. */
export function peakRssMiB(pid: number): number | undefined {
  const kb = statusKb(pid, 'VmHWM');
  return kb === undefined ? undefined : kb / 1024;
}

/** Current resident set size (VmRSS) in MiB. */
export function rssMiB(pid: number): number | undefined {
  const kb = statusKb(pid, 'VmRSS');
  return kb === undefined ? undefined : kb / 1024;
}

export interface SystemCpu {
  busy: number;
  total: number;
}

/** Aggregate jiffies from /proc/stat's first line (busy = total − idle − iowait). */
export function systemCpu(): SystemCpu {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Share of all cores busy between two readings, 0–1. */
export function busyShare(a: SystemCpu, b: SystemCpu): number | undefined {
  const total = b.total - a.total;
  return total > 0 ? (b.busy - a.busy) / total : undefined;
}

export interface ProcSnapshot {
  at: number;
  procs: Map<number, { comm: string; cpuMs: number }>;
}

/** CPU time of every process on the machine (to see who else was busy in a window). */
export function snapshotAll(): ProcSnapshot {
  const procs = new Map<number, { comm: string; cpuMs: number }>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return { at: Date.now(), procs };
  }
  for (const n of names) {
    const pid = Number(n);
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      procs.set(pid, { comm, cpuMs: ((Number(rest[11]) + Number(rest[12])) * 1000) / clockTicks() });
    } catch {
      // gone
    }
  }
  return { at: Date.now(), procs };
}

/** The processes that used the most CPU between two snapshots (ms), busiest first. */
export function topConsumers(a: ProcSnapshot, b: ProcSnapshot, n = 8): { pid: number; comm: string; cpuMs: number }[] {
  const out: { pid: number; comm: string; cpuMs: number }[] = [];
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid)?.cpuMs ?? 0;
    const d = p.cpuMs - before;
    if (d > 0) out.push({ pid, comm: p.comm, cpuMs: d });
  }
  return out.sort((x, y) => y.cpuMs - x.cpuMs).slice(0, n);
}

/** CPU used between two snapshots by processes not in `known` (other people's work on the machine). */
export function outsideLoad(a: ProcSnapshot, b: ProcSnapshot, known: Set<number>): { cpuMs: number; top: { pid: number; comm: string; cpuMs: number }[] } {
  const all = topConsumers(a, b, Number.MAX_SAFE_INTEGER).filter((p) => !known.has(p.pid));
  return { cpuMs: all.reduce((n, p) => n + p.cpuMs, 0), top: all.slice(0, 3) };
}
