/**
 * Summarise the .cpuprofile files a `--cpu-prof DIR` bench run left: self time per
 * function and per area (fluxq src/, each node_modules package, node internals, GC),
 * for each process role listed in DIR/index.json, restricted to its measured windows.
 *
 *   npx tsx bench/profile-summary.ts DIR [--top 25] [--all-time] [--per-image N]
 *   npx tsx bench/profile-summary.ts DIR --stalls [--role worker-probe]
 *
 * `--stalls`: for each profile, the largest gaps between samples (timeDeltas) in its
 * measured windows with the stack sampled right after each, and, for the worker-probe,
 * what ran during each event-loop stall it recorded (index.json `stalls`, µs on the
 * profile's own clock).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
interface IndexEntry {
  role: string;
  pid: number;
  spawnedAt: number;
  windows: { tag: string; start: number; end: number }[];
  stalls?: { startUs: number; endUs: number; gapMs: number; runMs?: number; runQueueMs?: number }[];
}

const { values, positionals } = parseArgs({
  options: {
    top: { type: 'string', default: '25' },
    'all-time': { type: 'boolean', default: false },
    /** Also show who calls these functions (comma list of names), as stacks of 4 frames. */
    callers: { type: 'string' },
    /** Only files whose role (index.json) contains this. */
    role: { type: 'string' },
    depth: { type: 'string', default: '4' },
    /** Only the measured windows whose tag contains this (e.g. e2e-r, base-r, scale4). */
    window: { type: 'string' },
    stalls: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});
const dir = positionals[0];
if (!dir) {
  console.error('usage: profile-summary.ts DIR [--top 25] [--all-time] [--role worker] [--callers fnA,fnB]');
  process.exit(2);
}
const TOP = Number(values.top);
const DEPTH = Number(values.depth);

function area(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native/builtin)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node internals';
  const src = url.indexOf('/src/');
  if (src !== -1) return `fluxq ${url.slice(src + 1).replace(/^src\//, '')}`;
  const bench = url.indexOf('/bench/');
  if (bench !== -1) return `bench ${url.slice(bench + 1)}`;
  return url;
}

const short = (url: string) => {
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length);
  const src = url.indexOf('/src/');
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
};

const index: IndexEntry[] = (() => {
  try {
    return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as IndexEntry[];
  } catch {
    return [];
  }
})();

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
if (files.length === 0) {
  console.error(`no .cpuprofile files in ${dir}`);
  process.exit(1);
}

for (const file of files.sort()) {
  const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1] ?? /\.(\d+)\./.exec(file)?.[1]);
  const entry = index.find((e) => e.pid === pid);
  if (values.role && !entry?.role.includes(values.role)) continue;
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  // Sample times: startTime + cumulative deltas (µs, monotonic). Map them to wall-clock via
  // the spawn time: the profile starts within a few ms of the process.
  let t = prof.startTime;
  const windows = values['all-time'] || !entry ? undefined : entry.windows.filter((w) => !w.tag.includes('warm') && (!values.window || w.tag.includes(values.window)));
  const inWindow = (us: number) => {
    if (!windows || !entry) return true;
    const wall = entry.spawnedAt + (us - prof.startTime) / 1000;
    return windows.some((w) => wall >= w.start && wall <= w.end);
  };
  const self = new Map<number, number>();
  let total = 0;
  let idle = 0;
  prof.samples.forEach((id, i) => {
    const dt = prof.timeDeltas[i] ?? 0;
    t += dt;
    if (!inWindow(t)) return;
    const node = byId.get(id);
    if (node?.callFrame.functionName === '(idle)') {
      idle += dt;
      return;
    }
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const fnTotals = new Map<string, number>();
  const areaTotals = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = (byId.get(id) as ProfileNode).callFrame;
    const key = `${cf.functionName || '(anonymous)'}  ${cf.url ? `${short(cf.url)}:${cf.lineNumber + 1}` : ''}`;
    fnTotals.set(key, (fnTotals.get(key) ?? 0) + us);
    const a = area(cf.url, cf.functionName);
    areaTotals.set(a, (areaTotals.get(a) ?? 0) + us);
  }
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callerNames = new Set((values.callers ?? '').split(',').filter(Boolean));
  const callerStacks = new Map<string, number>();
  if (callerNames.size > 0) {
    for (const [id, us] of self) {
      const cf = (byId.get(id) as ProfileNode).callFrame;
      if (!callerNames.has(cf.functionName)) continue;
      const frames: string[] = [];
      let cur = parent.get(id);
      while (cur !== undefined && frames.length < DEPTH) {
        const f = (byId.get(cur) as ProfileNode).callFrame;
        frames.push(`${f.functionName || '(anon)'}@${short(f.url).split('/').slice(-2).join('/')}:${f.lineNumber + 1}`);
        cur = parent.get(cur);
      }
      const key = `${cf.functionName} ← ${frames.join(' ← ')}`;
      callerStacks.set(key, (callerStacks.get(key) ?? 0) + us);
    }
  }
  if (values.stalls) {
    printStalls(prof, byId, parent, entry, inWindow, file);
    continue;
  }
  const jobsHint = windows ? ` windows ${windows.map((w) => w.tag).join(', ')}` : ' whole run';
  console.log(`\n=== ${file}  pid ${pid}  ${entry?.role ?? '(not in index)'} —${jobsHint}: busy ${(total / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms`);
  const pct = (us: number) => `${((100 * us) / Math.max(1, total)).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms`;
  console.log('  by area:');
  for (const [a, us] of [...areaTotals].sort((x, y) => y[1] - x[1]).slice(0, 15)) console.log(`    ${pct(us)}  ${a}`);
  console.log(`  top ${TOP} functions by self time:`);
  for (const [k, us] of [...fnTotals].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`    ${pct(us)}  ${k}`);
  if (callerStacks.size > 0) {
    console.log('  callers:');
    for (const [k, us] of [...callerStacks].sort((x, y) => y[1] - x[1]).slice(0, TOP)) console.log(`    ${pct(us)}  ${k}`);
  }
}

function stackOf(byId: Map<number, ProfileNode>, parent: Map<number, number>, id: number, depth: number): string {
  const frames: string[] = [];
  let cur: number | undefined = id;
  while (cur !== undefined && frames.length < depth) {
    const f = (byId.get(cur) as ProfileNode).callFrame;
    if (f.functionName !== '(root)') frames.push(`${f.functionName || '(anon)'}@${short(f.url).split('/').slice(-2).join('/')}:${f.lineNumber + 1}`);
    cur = parent.get(cur);
  }
  return frames.join(' ← ');
}

function printStalls(prof: CpuProfile, byId: Map<number, ProfileNode>, parent: Map<number, number>, entry: IndexEntry | undefined, inWindow: (us: number) => boolean, file: string): void {
  const times: number[] = [];
  let t = prof.startTime;
  for (const dt of prof.timeDeltas) times.push((t += dt));
  console.log(`\n=== ${file}  ${entry?.role ?? '(not in index)'}`);
  const gaps = prof.samples
    .map((id, i) => ({ id, i, dt: prof.timeDeltas[i] ?? 0, at: times[i] ?? 0 }))
    .filter((g) => inWindow(g.at))
    .sort((a, b) => b.dt - a.dt)
    .slice(0, 5);
  console.log('  largest gaps between samples (measured windows), with the stack sampled at their end:');
  for (const g of gaps) console.log(`    ${(g.dt / 1000).toFixed(1).padStart(7)} ms  ${stackOf(byId, parent, g.id, DEPTH + 2)}`);
  for (const st of (entry?.stalls ?? []).slice(0, TOP)) {
    const self = new Map<string, number>();
    let busy = 0;
    let idle = 0;
    let n = 0;
    let maxDt = 0;
    prof.samples.forEach((id, i) => {
      const at = times[i] ?? 0;
      // A sample covers the time since the one before it.
      const from = at - (prof.timeDeltas[i] ?? 0);
      if (at <= st.startUs || from >= st.endUs) return;
      const dt = Math.min(at, st.endUs) - Math.max(from, st.startUs);
      const node = byId.get(id) as ProfileNode;
      n++;
      maxDt = Math.max(maxDt, prof.timeDeltas[i] ?? 0);
      if (node.callFrame.functionName === '(idle)') {
        idle += dt;
        return;
      }
      busy += dt;
      const key = stackOf(byId, parent, id, DEPTH);
      self.set(key, (self.get(key) ?? 0) + dt);
    });
    console.log(
      `  stall ${st.gapMs.toFixed(0)} ms (main thread on a core ${st.runMs?.toFixed(0) ?? '?'} ms, runnable waiting ${st.runQueueMs?.toFixed(0) ?? '?'} ms): ${n} samples, largest gap ${(maxDt / 1000).toFixed(1)} ms, busy ${(busy / 1000).toFixed(0)} ms, idle ${(idle / 1000).toFixed(0)} ms`,
    );
    for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 6)) console.log(`      ${(us / 1000).toFixed(1).padStart(6)} ms  ${k}`);
  }
}
