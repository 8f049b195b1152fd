/**
 * A measured window: N jobs through fluxq (a fleet) or through the bare baseline, with
 * the same clock (first upstream call of the window → last job done), the same CPU and
 * machine readings around it and the same per-job figures from the fake's log.
 */
import type { CallRecord } from '../src/demo/fake-flux.js';
import { busyShare, cpuMs, outsideLoad, snapshotAll, systemCpu, topConsumers, type ProcSnapshot, type SystemCpu } from './proc-stats.js';
import { dropObjects, markWindow, QUEUE, resetFake, rigCpu, type Fleet, type Rig, type RigCpu, type Size } from './rig.js';
import { sleep, withTimeout, type Child } from './util.js';

export interface WindowResult {
  tag: string;
  jobs: number;
  completed: number;
  failed: number;
  firstFailure?: string;
  startAt: number;
  endAt: number;
  seconds: number;
  throughput: number;
  ideal: number;
  cpuMs: number[];
  cpuMsPerImage: number;
  machineBusy: number | undefined;
  rigCpuMsPerImage: RigCpu;
  /** Per job, ms. */
  overhead: number[];
  pre: number[];
  /** processedOn of each `pre` entry (same order). */
  preAt: number[];
  post: number[];
  callMs: number[];
  handover: number[];
  upstreamIdle: number[];
  maxInFlight: number;
  upstreamCalls: number;
  /** Busiest processes on the machine during the window (CPU ms), to spot outside load. */
  top: { pid: number; comm: string; cpuMs: number }[];
  /** CPU ms used by processes that are not the bench's during the window (kernel threads included). */
  outside: { cpuMs: number; top: { pid: number; comm: string; cpuMs: number }[] };
}

/** k-th finish → (slots+k)-th start, both sorted: with at most `slots` running, the refill gap of the k-th freed slot. */
function slotGaps(starts: number[], ends: number[], slots: number): number[] {
  const s = [...starts].sort((a, b) => a - b);
  const e = [...ends].sort((a, b) => a - b);
  const out: number[] = [];
  for (let k = 0; k + slots < s.length && k < e.length; k++) out.push((s[k + slots] as number) - (e[k] as number));
  return out;
}

/** A window's calls at the fake (prompts starting with `tagPrefix`), its successful ones by prompt, and the first arrival. */
export function callStats(calls: CallRecord[], tagPrefix: string) {
  const mine = calls.filter((c) => c.prompt?.startsWith(tagPrefix));
  const ok = new Map<string, CallRecord>();
  for (const c of mine) if (c.status === 200 && c.endedAt !== undefined && c.prompt) ok.set(c.prompt, c);
  return { mine, ok, firstAt: Math.min(...mine.map((c) => c.at)) };
}

const windowTimeout = (n: number, ideal: number) => Math.max(30_000, ((5 * n) / ideal) * 1000 + 20_000);

interface Readings {
  cpu: number[];
  rig: RigCpu;
  sys: SystemCpu;
  snap: ProcSnapshot;
}

function read(rig: Rig, pids: number[]): Readings {
  return { cpu: pids.map((p) => cpuMs(p) ?? 0), rig: rigCpu(rig), sys: systemCpu(), snap: snapshotAll() };
}

/** One job of a window: its prompt, start and end (fluxq: processedOn / finishedOn; baseline: its own clock). */
interface TimedJob {
  prompt: string;
  start: number;
  end: number;
}

/** Close a window: the clock, CPU, the per-job figures against the fake's log; then drop its objects. */
async function closeWindow(
  rig: Rig,
  w: { tag: string; n: number; pids: number[]; bucket: string; slots: number; ideal: number; before: Readings; after: Readings; jobs: TimedJob[]; completed: number; failed: number; firstFailure: string | undefined },
): Promise<WindowResult> {
  const { tag, before, after, jobs, completed } = w;
  const known = new Set<number>([process.pid, process.ppid, rig.s3.pid, ...rig.profIndex.map((e) => e.pid)]);
  if (rig.redis.process.pid !== undefined) known.add(rig.redis.process.pid);
  const { mine, ok, firstAt } = callStats(rig.fake.calls, `${tag} `);
  const endAt = Math.max(...jobs.map((j) => j.end));
  const overhead: number[] = [];
  const pre: number[] = [];
  const preAt: number[] = [];
  const post: number[] = [];
  const callMs: number[] = [];
  for (const j of jobs) {
    const call = ok.get(j.prompt);
    if (!call || call.endedAt === undefined) continue;
    const c = call.endedAt - call.at;
    callMs.push(c);
    overhead.push(j.end - j.start - c);
    pre.push(call.at - j.start);
    preAt.push(j.start);
    post.push(j.end - call.endedAt);
  }
  const seconds = (endAt - firstAt) / 1000;
  const cpu = after.cpu.map((v, i) => v - (before.cpu[i] ?? 0));
  const perImage = (a: number, b: number) => (b - a) / Math.max(1, completed);
  markWindow(rig, [...w.pids, rig.s3.pid], tag, firstAt, endAt);
  await dropObjects(rig, w.bucket, tag);
  return {
    tag,
    jobs: w.n,
    completed,
    failed: w.failed,
    ...(w.firstFailure !== undefined ? { firstFailure: w.firstFailure } : {}),
    startAt: firstAt,
    endAt,
    seconds,
    throughput: completed / seconds,
    ideal: w.ideal,
    cpuMs: cpu,
    cpuMsPerImage: cpu.reduce((a, b) => a + b, 0) / Math.max(1, completed),
    machineBusy: busyShare(before.sys, after.sys),
    rigCpuMsPerImage: { bench: perImage(before.rig.bench, after.rig.bench), s3rver: perImage(before.rig.s3rver, after.rig.s3rver), redis: perImage(before.rig.redis, after.rig.redis) },
    overhead,
    pre,
    preAt,
    post,
    callMs,
    handover: slotGaps(
      jobs.map((j) => j.start),
      jobs.map((j) => j.end),
      w.slots,
    ),
    // Upstream idle per slot: the fake's log paired the same way as the job hand-over (³).
    upstreamIdle: slotGaps(
      mine.map((c) => c.at),
      mine.map((c) => c.endedAt ?? c.at),
      w.slots,
    ),
    maxInFlight: rig.fake.maxInFlight,
    upstreamCalls: mine.length,
    top: topConsumers(before.snap, after.snap),
    outside: outsideLoad(before.snap, after.snap, known),
  };
}

interface TrackedJob {
  processedOn: number;
  finishedOn: number;
}

/** Follow a window's jobs through BullMQ's completed set (trimmed at 1000, so it is read as it fills). */
async function trackJobs(rig: Rig, f: Fleet, tag: string, n: number, timeoutMs: number): Promise<{ done: Map<string, TrackedJob | undefined>; failed: Map<string, string> }> {
  const r = rig.benchRedis;
  const completedKey = `${f.prefix}:${QUEUE}:completed`;
  const failedKey = `${f.prefix}:${QUEUE}:failed`;
  const done = new Map<string, TrackedJob | undefined>();
  const failed = new Map<string, string>();
  const mine = `${tag}-`;
  let minScore = Date.now() - 1;
  let failedSeen = await r.zcard(failedKey);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const flat = await r.zrangebyscore(completedKey, minScore, '+inf', 'WITHSCORES');
    const fresh: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = flat[i] as string;
      const score = Number(flat[i + 1]);
      if (score > minScore) minScore = score;
      if (id.startsWith(mine) && !done.has(id)) {
        done.set(id, undefined);
        fresh.push(id);
      }
    }
    if (fresh.length > 0) {
      const p = r.pipeline();
      for (const id of fresh) p.hmget(`${f.prefix}:${QUEUE}:${id}`, 'processedOn', 'finishedOn');
      const replies = (await p.exec()) ?? [];
      replies.forEach(([err, v], i) => {
        const [po, fo] = (v as (string | null)[] | null) ?? [];
        if (!err && po && fo) done.set(fresh[i] as string, { processedOn: Number(po), finishedOn: Number(fo) });
      });
    }
    const fc = await r.zcard(failedKey);
    if (fc > failedSeen) {
      failedSeen = fc;
      for (const id of await r.zrange(failedKey, '0', '-1')) {
        if (id.startsWith(mine) && !failed.has(id)) failed.set(id, (await r.hget(`${f.prefix}:${QUEUE}:${id}`, 'failedReason')) ?? '?');
      }
    }
    if (done.size + failed.size >= n) return { done, failed };
    const dead = f.children.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null);
    if (dead) throw new Error(`${dead.name} exited mid-window:\n${dead.stderr.slice(-10).join('\n')}`);
    if (Date.now() > deadline) throw new Error(`window ${tag}: only ${done.size} completed, ${failed.size} failed of ${n} after ${timeoutMs} ms`);
    await sleep(150);
  }
}

/**
 * One measured fluxq window: pause the queue, enqueue `n` jobs through the library,
 * read CPU, resume; the clock runs from the first upstream call of the window to the
 * last job's finishedOn.
 */
export async function fluxqWindow(
  rig: Rig,
  f: Fleet,
  tag: string,
  n: number,
  size: Size,
  latency: number,
  opts: {
    pids?: number[];
    /** jobs/s; default slots / L */ ideal?: number;
    /** most jobs running at once, for 3d/3e; default the fleet's slots */ slots?: number;
    /** Spread the jobs round-robin over `batches` batches (`{tag}-b{k}`) of `tenants` tenants (`t{k mod tenants}`) instead of one batch `{tag}` of the default tenant. */
    spread?: { tenants: number; batches: number };
  } = {},
): Promise<WindowResult> {
  const pids = opts.pids ?? f.children.map((c) => c.pid);
  const slots = opts.slots ?? f.slots;
  const ideal = opts.ideal ?? slots / (Math.max(latency, 1) / 1000);
  await withTimeout(f.producer.queue.pause(), 10_000, `pause before ${tag}`);
  const spread = opts.spread;
  const requests = Array.from({ length: n }, (_, i) => ({
    id: `${tag}-${i}`,
    prompt: `${tag} ${i}`,
    width: size.width,
    height: size.height,
    ...(spread ? { batch: `${tag}-b${i % spread.batches}`, tenant: `t${(i % spread.batches) % spread.tenants}` } : {}),
  }));
  const enq = await withTimeout(f.producer.enqueueBulk(requests, spread ? {} : { batch: tag }), 120_000, `enqueue of ${tag}`);
  if (enq.created !== n) throw new Error(`window ${tag}: ${enq.created} of ${n} jobs created`);
  resetFake(rig.fake);
  const before = read(rig, pids);
  const tracking = trackJobs(rig, f, tag, n, windowTimeout(n, ideal));
  await withTimeout(f.producer.queue.resume(), 10_000, `resume for ${tag}`);
  const { done, failed } = await tracking;
  const after = read(rig, pids);
  const jobs: TimedJob[] = [];
  for (const [id, t] of done) if (t) jobs.push({ prompt: `${tag} ${id.slice(tag.length + 1)}`, start: t.processedOn, end: t.finishedOn });
  const result = await closeWindow(rig, { tag, n, pids, bucket: f.bucket, slots, ideal, before, after, jobs, completed: done.size, failed: failed.size, firstFailure: [...failed.values()][0] });
  if (spread) for (let k = 0; k < spread.batches; k++) await dropObjects(rig, f.bucket, `${tag}-b${k}`);
  return result;
}

/** One measured window of the baseline child (`bench/baseline.ts`); same clock (first upstream call → last PUT done). */
export async function baselineWindow(rig: Rig, child: Child, tag: string, n: number, size: Size, w: { concurrency: number; latency: number; bucket: string }): Promise<WindowResult> {
  const ideal = w.concurrency / (Math.max(w.latency, 1) / 1000);
  resetFake(rig.fake);
  const before = read(rig, [child.pid]);
  child.send({ cmd: 'run', tag, count: n, width: size.width, height: size.height });
  const msg = await child.waitMessage((m) => m.event === 'done' && m.tag === tag, windowTimeout(n, ideal), `baseline window ${tag}`);
  const after = read(rig, [child.pid]);
  const done = msg.jobs as [number, number, number][];
  const jobs = done.map(([i, start, end]) => ({ prompt: `${tag} ${i}`, start, end }));
  return closeWindow(rig, {
    tag,
    n,
    pids: [child.pid],
    bucket: w.bucket,
    slots: w.concurrency,
    ideal,
    before,
    after,
    jobs,
    completed: done.length,
    failed: Number(msg.errors ?? 0),
    firstFailure: msg.firstError ? String(msg.firstError) : undefined,
  });
}
