/**
 * fluxq bench: enqueue rates, end-to-end throughput, queue overhead, CPU per image, peak
 * RSS, event-loop delay and the 4-worker scale-out, against the project's fake upstream,
 * a private redis-server and s3rver, with a bare baseline in the same run. Prints one
 * table; `--json FILE` writes the figures too. See bench/README.md for each definition.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { startFakeFlux, type CallRecord, type FakeFlux } from '../src/demo/fake-flux.js';
import { startLocalRedis, type LocalRedis } from '../src/demo/local-redis.js';
import { createProducer, type Producer } from '../src/producer/producer.js';
import { loadConfig } from '../src/shared/config.js';
import { busyShare, clockTicks, cpuMs, peakRssMiB, rssMiB, outsideLoad, snapshotAll, systemCpu, topConsumers, type ProcSnapshot } from './proc-stats.js';
import { CleanUps, median, percentile, pollUntil, sleep, spawnChild, withTimeout, type Child } from './util.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    latency: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    jobs: { type: 'string' },
    'image-mp': { type: 'string', default: '1' },
    entropy: { type: 'string', default: '0.5' },
    'enqueue-jobs': { type: 'string' },
    scale: { type: 'boolean', default: false },
    'no-scale': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'stream-baseline': { type: 'boolean', default: false },
    repeat: { type: 'string' },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    's3-dir': { type: 'string' },
    'scale-concurrency': { type: 'string', default: '8' },
    'scale-latency': { type: 'string', default: '500' },
    'scale-mp': { type: 'string', default: '0.25' },
    auto: { type: 'boolean', default: false },
    'no-auto': { type: 'boolean', default: false },
    'no-auto-compare': { type: 'boolean', default: false },
    'auto-cap': { type: 'string', default: '24' },
    'auto-workers': { type: 'string', default: '4' },
    'auto-concurrency': { type: 'string', default: '16' },
    'auto-latency': { type: 'string', default: '500' },
    'auto-mp': { type: 'string', default: '0.0625' },
    'auto-seconds': { type: 'string' },
    'auto-compare-seconds': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
  allowPositionals: false,
});

if (argv.help) {
  console.log(`npm run bench -- [--latency 200] [--concurrency 32] [--workers 1] [--jobs N] [--image-mp 1] [--entropy 0.5]
                   [--enqueue-jobs 10000] [--scale | --no-scale] [--quick] [--repeat 3] [--json FILE] [--cpu-prof DIR]
                   [--auto | --no-auto] [--no-auto-compare] [--auto-cap 24] [--auto-workers 4] [--auto-concurrency 16]
                   [--auto-latency 500] [--auto-mp 0.0625] [--auto-seconds 60] [--auto-compare-seconds 30]
BENCH_ONLY=enqueue,e2e,probe,scale,auto runs a subset.`);
  process.exit(0);
}

/** CPU ms per image of the processes around the worker (fake + bench, s3rver, redis) over a window. */
/** Upstream idle per slot: the fake's log paired the same way as the job hand-over (³). */
function callGaps(calls: readonly { at: number; endedAt?: number | undefined }[], slots: number) {
  return slotGaps(calls.map((c) => c.at), calls.map((c) => c.endedAt ?? c.at), slots);
}

function rigPerImage(rig0: { bench: number; s3rver: number; redis: number }, rig1: { bench: number; s3rver: number; redis: number }, completed: number) {
  const per = (a: number, b: number) => (b - a) / Math.max(1, completed);
  return { bench: per(rig0.bench, rig1.bench), s3rver: per(rig0.s3rver, rig1.s3rver), redis: per(rig0.redis, rig1.redis) };
}

function num(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < min || n > max) {
    console.error(`bench: --${name} must be a number from ${min} to ${max}, got ${v}`);
    process.exit(2);
  }
  return n;
}

const QUICK = argv.quick;
const LATENCY = num('latency', argv.latency, 0, 600_000);
const CONC = Math.round(num('concurrency', argv.concurrency, 1, 1024));
const WORKERS = Math.round(num('workers', argv.workers, 1, 16));
const IMAGE_MP = num('image-mp', argv['image-mp'], 0.004, 4);
const ENTROPY = num('entropy', argv.entropy, 0, 1);
const REPEAT = Math.round(num('repeat', argv.repeat ?? (QUICK ? '1' : '3'), 1, 20));
const IDEAL = (WORKERS * CONC) / (Math.max(LATENCY, 1) / 1000);
const SLOTS = WORKERS * CONC;
const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const JOBS = argv.jobs !== undefined ? Math.round(num('jobs', argv.jobs, 1)) : roundUp(Math.max(QUICK ? 200 : 600, IDEAL * (QUICK ? 3 : 15)), SLOTS);
const ENQ_JOBS = Math.round(num('enqueue-jobs', argv['enqueue-jobs'] ?? (QUICK ? '2000' : '10000'), 1));
const STREAM_BASELINE = argv['stream-baseline'];
const SCALE = argv['no-scale'] ? false : argv.scale || !QUICK;
const CPU_PROF = argv['cpu-prof'] ? resolve(argv['cpu-prof']) : undefined;
const S3_DIR = argv['s3-dir'] ? resolve(argv['s3-dir']) : undefined;
const JSON_OUT = argv.json ? resolve(argv.json) : undefined;
// The scale-out check: latency-bound on a 2-core machine (small images, few slots, long calls).
const SCALE_C = Math.round(num('scale-concurrency', argv['scale-concurrency'], 1, 1024));
const SCALE_L = num('scale-latency', argv['scale-latency'], 1, 600_000);
const SCALE_MP = num('scale-mp', argv['scale-mp'], 0.004, 4);
const SCALE_ROUNDS = QUICK ? 6 : 20;
const PROBE_SECONDS = QUICK ? 2 : 5;
// The adaptive-concurrency check: a fleet of W × C slots against an account capped at CAP
// active calls (the fake answers 429 beyond it), latency-bound (small images, long calls).
const AUTO = argv['no-auto'] ? false : argv.auto || !QUICK;
const AUTO_COMPARE = !argv['no-auto-compare'];
const AUTO_CAP = Math.round(num('auto-cap', argv['auto-cap'], 1, 10_000));
const AUTO_W = Math.round(num('auto-workers', argv['auto-workers'], 1, 16));
const AUTO_C = Math.round(num('auto-concurrency', argv['auto-concurrency'], 1, 1024));
const AUTO_L = num('auto-latency', argv['auto-latency'], 1, 600_000);
const AUTO_MP = num('auto-mp', argv['auto-mp'], 0.004, 4);
const AUTO_SECONDS = num('auto-seconds', argv['auto-seconds'] ?? (QUICK ? '15' : '60'), 1, 3600);
const AUTO_COMPARE_SECONDS = num('auto-compare-seconds', argv['auto-compare-seconds'] ?? (QUICK ? '8' : '30'), 1, 3600);
/** What the account allows: CAP calls in flight, each taking L. */
const AUTO_IDEAL = AUTO_CAP / (AUTO_L / 1000);
/** Wall-clock budget for the repeated end-to-end pairs (fluxq + baseline) in a full run. */
const E2E_BUDGET_S = Number(process.env.BENCH_E2E_BUDGET_S ?? (QUICK ? 60 : 130));

const REPO = resolve(new URL('../', import.meta.url).pathname);
const CLI = join(REPO, 'src/cli.ts');
const QUEUE = 'generate';
const RUN_ID = randomUUID().slice(0, 6);

function sizeFor(mp: number): { width: number; height: number } {
  const px = mp * 1024 * 1024;
  const width = Math.max(64, Math.round(Math.sqrt(px) / 32) * 32);
  const height = Math.max(64, Math.round(px / width / 32) * 32);
  return { width, height };
}
const SIZE = sizeFor(IMAGE_MP);
const SCALE_SIZE = sizeFor(SCALE_MP);
const AUTO_SIZE = sizeFor(AUTO_MP);

const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
const T0 = Date.now();

// ---------------------------------------------------------------- rig: redis, s3rver, fake

interface Rig {
  tmp: string;
  redis: LocalRedis;
  benchRedis: Redis;
  s3: Child;
  s3dir: string;
  s3env: Record<string, Record<string, string>>;
  fake: FakeFlux;
}

const BUCKETS = { e2e: 'bench-e2e', base: 'bench-base', probe: 'bench-probe', scale: 'bench-scale', auto: 'bench-auto' };
const cleanups = new CleanUps({ log, timeoutMs: 20_000, firstSignal: 'SIGTERM', signalMessage: 'cleaning up' });
const profIndex: { role: string; pid: number; spawnedAt: number; windows: { tag: string; start: number; end: number }[]; stalls?: unknown[] }[] = [];

async function startRig(): Promise<Rig> {
  const tmp = await mkdtemp(join(tmpdir(), 'fluxq-bench-'));
  cleanups.push({ name: 'temp dir', fn: () => rm(tmp, { recursive: true, force: true }) });
  await mkdir(join(tmp, 'redis'), { recursive: true });
  const redis = await startLocalRedis({ dir: join(tmp, 'redis') });
  cleanups.push({ name: 'redis-server', fn: () => redis.stop() });
  const benchRedis = new Redis(redis.url, { maxRetriesPerRequest: 3 });
  benchRedis.on('error', () => undefined);
  cleanups.push({ name: 'bench redis client', fn: async () => benchRedis.disconnect() });

  const s3dir = S3_DIR ? await mkdtemp(join(S3_DIR, 'fluxq-bench-s3-')) : join(tmp, 's3');
  await mkdir(s3dir, { recursive: true });
  if (S3_DIR) cleanups.push({ name: 's3rver dir', fn: () => rm(s3dir, { recursive: true, force: true }) });
  const s3 = spawnChild('s3rver', process.execPath, [...profArgs(), '--import', 'tsx', join(REPO, 'bench/s3-child.ts'), s3dir, ...Object.values(BUCKETS)], {
    cwd: REPO,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  cleanups.push({ name: 's3rver', fn: () => s3.stop(5000) });
  profIndex.push({ role: 's3rver', pid: s3.pid, spawnedAt: s3.spawnedAt, windows: [] });
  const ready = await s3.waitMessage((m) => m.event === 'ready', 30_000, 's3rver ready');
  const s3env = ready.env as Record<string, Record<string, string>>;

  const fake = await startFakeFlux({ latencyMs: LATENCY, entropy: ENTROPY });
  cleanups.push({ name: 'fake upstream', fn: () => fake.close() });
  return { tmp, redis, benchRedis, s3, s3dir, s3env, fake };
}

/** One direct call, so the fake builds (and caches) its PNG for this size before any clock runs. */
async function prewarmFake(fake: FakeFlux, size: { width: number; height: number }): Promise<number> {
  const res = await request(`${fake.url}/flux-2-pro`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'bench prewarm', ...size }),
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const json = (await res.body.json()) as { data: { b64_json: string }[] };
  return Buffer.from(json.data[0]?.b64_json ?? '', 'base64').length;
}

function resetFake(fake: FakeFlux): void {
  fake.calls.length = 0;
  fake.maxInFlight = fake.inFlight;
}

function rigCpu(rig: Rig): { bench: number; s3rver: number; redis: number } {
  const u = process.cpuUsage();
  return {
    bench: (u.user + u.system) / 1000,
    s3rver: cpuMs(rig.s3.pid) ?? 0,
    redis: (rig.redis.process.pid !== undefined ? cpuMs(rig.redis.process.pid) : 0) ?? 0,
  };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** Remove a window's objects from s3rver's directory (they add up to gigabytes). */
async function dropObjects(rig: Rig, bucket: string, tag: string): Promise<void> {
  await rm(join(rig.s3dir, bucket, 'images', tag), { recursive: true, force: true }).catch(() => undefined);
}

// ---------------------------------------------------------------- children

const profArgs = (): string[] => (CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : []);

function workerEnv(rig: Rig, prefix: string, bucket: string, concurrency: number, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: rig.redis.url,
    QUEUE_PREFIX: prefix,
    QUEUE_NAME: QUEUE,
    FLUX_API_BASE_URL: rig.fake.url,
    FLUX_API_KEY: rig.fake.apiKey,
    ...rig.s3env[bucket],
    WORKER_CONCURRENCY: String(concurrency),
    LOG_LEVEL: 'warn',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  // `undefined` removes a variable (e.g. GLOBAL_CONCURRENCY inherited from the shell).
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function track(child: Child, role: string): Child {
  cleanups.push({ name: child.name, fn: () => child.stop(10_000) });
  profIndex.push({ role, pid: child.pid, spawnedAt: child.spawnedAt, windows: [] });
  return child;
}

function markWindow(pids: number[], tag: string, start: number, end: number): void {
  for (const e of profIndex) if (pids.includes(e.pid)) e.windows.push({ tag, start, end });
}

interface Fleet {
  name: string;
  prefix: string;
  bucket: string;
  producer: Producer;
  children: Child[];
  slots: number;
}

function newProducer(rig: Rig, prefix: string): Producer {
  const p = createProducer({ config: loadConfig({ REDIS_URL: rig.redis.url, QUEUE_PREFIX: prefix, QUEUE_NAME: QUEUE, LOG_LEVEL: 'warn' }, 'producer') });
  cleanups.push({ name: `producer ${prefix}`, fn: () => p.close() });
  return p;
}

/** `fluxq worker` child processes (the CLI, as deployed). Ready = registered with BullMQ (CLIENT LIST). */
async function startCliFleet(rig: Rig, name: string, workers: number, concurrency: number, bucket: string, extraEnv: Record<string, string | undefined> = {}): Promise<Fleet> {
  const prefix = `bench-${name}-${RUN_ID}`;
  const producer = newProducer(rig, prefix);
  const children: Child[] = [];
  for (let i = 0; i < workers; i++) {
    const c = spawnChild(`worker ${name}#${i + 1}`, process.execPath, [...profArgs(), '--import', 'tsx', CLI, 'worker'], {
      cwd: REPO,
      env: workerEnv(rig, prefix, bucket, concurrency, extraEnv),
    });
    children.push(track(c, `fluxq worker (${name})`));
  }
  // LOG_LEVEL=warn hides the info-level "worker ready" line, so readiness is read from
  // BullMQ's own registry: each worker's blocking connection names itself (CLIENT SETNAME).
  await pollUntil(
    async () => {
      const dead = children.find((c) => c.proc.exitCode !== null || c.proc.signalCode !== null);
      if (dead) throw new Error(`${dead.name} exited during start-up:\n${dead.stderr.slice(-10).join('\n')}`);
      return (await producer.queue.getWorkersCount()) >= workers ? true : undefined;
    },
    90_000,
    `${workers} worker(s) of ${name} to register`,
    100,
  );
  await sleep(300); // queue settings applied, run loop started
  return { name, prefix, bucket, producer, children, slots: workers * concurrency };
}

async function stopFleet(f: Fleet): Promise<void> {
  const codes = await Promise.all(f.children.map((c) => c.stop(20_000)));
  const bad = codes.filter((c) => c !== 0);
  if (bad.length > 0) log(`warning: ${f.name} worker exit codes ${codes.join(', ')}`);
}

// ---------------------------------------------------------------- windows

interface WindowResult {
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
  rigCpuMsPerImage: { bench: number; s3rver: number; redis: number };
  /** Per job, ms. */
  overhead: number[];
  pre: number[];
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

function outsideOf(rig: Rig, a: ProcSnapshot, b: ProcSnapshot) {
  const known = new Set<number>([process.pid, process.ppid, rig.s3.pid, ...profIndex.map((e) => e.pid)]);
  if (rig.redis.process.pid !== undefined) known.add(rig.redis.process.pid);
  return outsideLoad(a, b, known);
}

/** k-th finish → (slots+k)-th start, both sorted: with at most `slots` running, the refill gap of the k-th freed slot. */
function slotGaps(starts: number[], ends: number[], slots: number): number[] {
  const s = [...starts].sort((a, b) => a - b);
  const e = [...ends].sort((a, b) => a - b);
  const out: number[] = [];
  for (let k = 0; k + slots < s.length && k < e.length; k++) out.push((s[k + slots] as number) - (e[k] as number));
  return out;
}

function callStats(calls: CallRecord[], tagPrefix: string) {
  const mine = calls.filter((c) => c.prompt?.startsWith(tagPrefix));
  const ok = new Map<string, CallRecord>();
  for (const c of mine) if (c.status === 200 && c.endedAt !== undefined && c.prompt) ok.set(c.prompt, c);
  return { mine, ok, firstAt: Math.min(...mine.map((c) => c.at)) };
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

const windowTimeout = (n: number, ideal: number) => Math.max(30_000, ((5 * n) / ideal) * 1000 + 20_000);

/**
 * One measured fluxq window: pause the queue, enqueue `n` jobs through the library,
 * read CPU, resume; the clock runs from the first upstream call of the window to the
 * last job's finishedOn.
 */
async function fluxqWindow(
  rig: Rig,
  f: Fleet,
  tag: string,
  n: number,
  size: { width: number; height: number },
  latency: number,
  opts: { pids?: number[]; /** jobs/s; default slots / L */ ideal?: number; /** most jobs running at once, for 3d/3e; default the fleet's slots */ slots?: number } = {},
): Promise<WindowResult> {
  const pids = opts.pids ?? f.children.map((c) => c.pid);
  const slots = opts.slots ?? f.slots;
  const ideal = opts.ideal ?? slots / (Math.max(latency, 1) / 1000);
  await withTimeout(f.producer.queue.pause(), 10_000, `pause before ${tag}`);
  const requests = Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}`, prompt: `${tag} ${i}`, width: size.width, height: size.height }));
  const enq = await withTimeout(f.producer.enqueueBulk(requests, { batch: tag }), 120_000, `enqueue of ${tag}`);
  if (enq.created !== n) throw new Error(`window ${tag}: ${enq.created} of ${n} jobs created`);
  resetFake(rig.fake);
  const cpu0 = pids.map((p) => cpuMs(p) ?? 0);
  const rig0 = rigCpu(rig);
  const sys0 = systemCpu();
  const snap0 = snapshotAll();
  const tracking = trackJobs(rig, f, tag, n, windowTimeout(n, ideal));
  await withTimeout(f.producer.queue.resume(), 10_000, `resume for ${tag}`);
  const { done, failed } = await tracking;
  const cpu1 = pids.map((p) => cpuMs(p) ?? 0);
  const rig1 = rigCpu(rig);
  const sys1 = systemCpu();
  const snap1 = snapshotAll();
  const top = topConsumers(snap0, snap1);
  const outside = outsideOf(rig, snap0, snap1);

  const { mine, ok, firstAt } = callStats(rig.fake.calls, `${tag} `);
  const timed = [...done.entries()].filter((e): e is [string, TrackedJob] => e[1] !== undefined);
  const endAt = Math.max(...timed.map(([, t]) => t.finishedOn));
  const overhead: number[] = [];
  const pre: number[] = [];
  const post: number[] = [];
  const callMs: number[] = [];
  for (const [id, t] of timed) {
    const call = ok.get(`${tag} ${id.slice(tag.length + 1)}`);
    if (!call || call.endedAt === undefined) continue;
    const c = call.endedAt - call.at;
    callMs.push(c);
    overhead.push(t.finishedOn - t.processedOn - c);
    pre.push(call.at - t.processedOn);
    post.push(t.finishedOn - call.endedAt);
  }
  const completed = done.size;
  const seconds = (endAt - firstAt) / 1000;
  const cpu = cpu1.map((v, i) => v - (cpu0[i] ?? 0));
  markWindow([...pids, rig.s3.pid], tag, firstAt, endAt);
  await dropObjects(rig, f.bucket, tag);
  return {
    tag,
    jobs: n,
    completed,
    failed: failed.size,
    ...(failed.size > 0 ? { firstFailure: [...failed.values()][0] } : {}),
    startAt: firstAt,
    endAt,
    seconds,
    throughput: completed / seconds,
    ideal,
    cpuMs: cpu,
    cpuMsPerImage: cpu.reduce((a, b) => a + b, 0) / Math.max(1, completed),
    machineBusy: busyShare(sys0, sys1),
    rigCpuMsPerImage: rigPerImage(rig0, rig1, completed),
    overhead,
    pre,
    post,
    callMs,
    handover: slotGaps(
      timed.map(([, t]) => t.processedOn),
      timed.map(([, t]) => t.finishedOn),
      slots,
    ),
    upstreamIdle: callGaps(mine, slots),
    maxInFlight: rig.fake.maxInFlight,
    upstreamCalls: mine.length,
    top,
    outside,
  };
}

/** One measured baseline window; same clock (first upstream call → last PUT done). */
async function baselineWindow(
  rig: Rig,
  child: Child,
  tag: string,
  n: number,
  size: { width: number; height: number },
  conc = CONC,
  latency = LATENCY,
  bucket = BUCKETS.base,
): Promise<WindowResult> {
  const ideal = conc / (Math.max(latency, 1) / 1000);
  resetFake(rig.fake);
  const cpu0 = cpuMs(child.pid) ?? 0;
  const rig0 = rigCpu(rig);
  const sys0 = systemCpu();
  const snap0 = snapshotAll();
  child.send({ cmd: 'run', tag, count: n, width: size.width, height: size.height });
  const msg = await child.waitMessage((m) => m.event === 'done' && m.tag === tag, windowTimeout(n, ideal), `baseline window ${tag}`);
  const cpu1 = cpuMs(child.pid) ?? 0;
  const rig1 = rigCpu(rig);
  const sys1 = systemCpu();
  const snap1 = snapshotAll();
  const top = topConsumers(snap0, snap1);
  const outside = outsideOf(rig, snap0, snap1);
  const jobs = msg.jobs as [number, number, number][];
  const { mine, ok, firstAt } = callStats(rig.fake.calls, `${tag} `);
  const endAt = Math.max(...jobs.map((j) => j[2]));
  const overhead: number[] = [];
  const pre: number[] = [];
  const post: number[] = [];
  const callMs: number[] = [];
  for (const [i, start, end] of jobs) {
    const call = ok.get(`${tag} ${i}`);
    if (!call || call.endedAt === undefined) continue;
    const c = call.endedAt - call.at;
    callMs.push(c);
    overhead.push(end - start - c);
    pre.push(call.at - start);
    post.push(end - call.endedAt);
  }
  const completed = jobs.length;
  const seconds = (endAt - firstAt) / 1000;
  markWindow([child.pid, rig.s3.pid], tag, firstAt, endAt);
  await dropObjects(rig, bucket, tag);
  return {
    tag,
    jobs: n,
    completed,
    failed: Number(msg.errors ?? 0),
    ...(msg.firstError ? { firstFailure: String(msg.firstError) } : {}),
    startAt: firstAt,
    endAt,
    seconds,
    throughput: completed / seconds,
    ideal,
    cpuMs: [cpu1 - cpu0],
    cpuMsPerImage: (cpu1 - cpu0) / Math.max(1, completed),
    machineBusy: busyShare(sys0, sys1),
    rigCpuMsPerImage: rigPerImage(rig0, rig1, completed),
    overhead,
    pre,
    post,
    callMs,
    handover: slotGaps(
      jobs.map((j) => j[1]),
      jobs.map((j) => j[2]),
      conc,
    ),
    upstreamIdle: callGaps(mine, conc),
    maxInFlight: rig.fake.maxInFlight,
    upstreamCalls: mine.length,
    top,
    outside,
  };
}

// ---------------------------------------------------------------- scenarios

interface EnqueueFigures {
  jobs: number;
  libRates: number[];
  memPerJob: number[];
  cliSeconds: number[];
  helpSeconds: number[];
  cliRates: number[];
  cliRatesNoStartup: number[];
}

async function timeProcess(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ seconds: number; code: number | null; stdout: string; stderr: string }> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  return { seconds: (performance.now() - t0) / 1000, code, stdout, stderr };
}

async function enqueueScenario(rig: Rig): Promise<EnqueueFigures> {
  const fig: EnqueueFigures = { jobs: ENQ_JOBS, libRates: [], memPerJob: [], cliSeconds: [], helpSeconds: [], cliRates: [], cliRatesNoStartup: [] };
  const baseEnv = { ...process.env, REDIS_URL: rig.redis.url, QUEUE_NAME: QUEUE, LOG_LEVEL: 'warn', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  // Library enqueueBulk: a warmed producer, only the call timed.
  for (let r = 1; r <= REPEAT; r++) {
    const producer = newProducer(rig, `bench-enq-lib${r}-${RUN_ID}`);
    await producer.enqueueBulk(
      Array.from({ length: 20 }, (_, i) => ({ id: `warm-${i}`, prompt: `warm ${i}`, ...SIZE })),
      { batch: 'warm' },
    );
    const requests = Array.from({ length: ENQ_JOBS }, (_, i) => ({ id: `e-${i}`, prompt: `enqueue bench ${i}`, ...SIZE }));
    const mem0 = await usedMemory(rig.benchRedis);
    const t0 = performance.now();
    const res = await withTimeout(producer.enqueueBulk(requests, { batch: 'enq' }), 120_000, 'library enqueueBulk');
    const dt = (performance.now() - t0) / 1000;
    const mem1 = await usedMemory(rig.benchRedis);
    if (res.created !== ENQ_JOBS) throw new Error(`enqueueBulk created ${res.created} of ${ENQ_JOBS}`);
    fig.libRates.push(ENQ_JOBS / dt);
    fig.memPerJob.push((mem1 - mem0) / ENQ_JOBS);
    await producer.close();
    log(`enqueueBulk ${r}/${REPEAT}: ${(ENQ_JOBS / dt).toFixed(0)} jobs/s, ${((mem1 - mem0) / ENQ_JOBS).toFixed(0)} B/job`);
  }
  // Start-up cost: `fluxq --help` (loads the same static imports as `enqueue`).
  await timeProcess(['--import', 'tsx', CLI, '--help'], baseEnv, 60_000); // tsx cache warm-up, not counted
  for (let r = 1; r <= REPEAT; r++) fig.helpSeconds.push((await timeProcess(['--import', 'tsx', CLI, '--help'], baseEnv, 60_000)).seconds);
  const file = join(rig.tmp, 'enqueue.jsonl');
  await writeFile(file, Array.from({ length: ENQ_JOBS }, (_, i) => JSON.stringify({ prompt: `cli bench ${i}`, ...SIZE })).join('\n') + '\n');
  const help = median(fig.helpSeconds) ?? 0;
  for (let r = 1; r <= REPEAT; r++) {
    const out = await timeProcess(['--import', 'tsx', CLI, 'enqueue', file, '--batch', `cli${r}`], { ...baseEnv, QUEUE_PREFIX: `bench-enq-cli${r}-${RUN_ID}` }, 180_000);
    if (out.code !== 0 || !out.stdout.includes(`${ENQ_JOBS} new`)) throw new Error(`fluxq enqueue failed (exit ${out.code}): ${out.stdout}${out.stderr}`.slice(0, 2000));
    fig.cliSeconds.push(out.seconds);
    fig.cliRates.push(ENQ_JOBS / out.seconds);
    fig.cliRatesNoStartup.push(ENQ_JOBS / Math.max(0.001, out.seconds - help));
    log(`fluxq enqueue ${r}/${REPEAT}: ${out.seconds.toFixed(2)} s (${(ENQ_JOBS / out.seconds).toFixed(0)} jobs/s; --help ${help.toFixed(2)} s)`);
  }
  return fig;
}

function spawnBaseline(rig: Rig, name: string, concurrency: number, bucket: string, extraEnv: Record<string, string> = {}): Child {
  return track(
    spawnChild(name, process.execPath, [...profArgs(), '--import', 'tsx', join(REPO, 'bench/baseline.ts')], {
      cwd: REPO,
      env: { ...workerEnv(rig, `bench-${name}-${RUN_ID}`, bucket, concurrency), ...extraEnv },
    }),
    name,
  );
}

async function stopBaseline(child: Child): Promise<void> {
  child.send({ cmd: 'exit' });
  await withTimeout(child.exited, 15_000, `${child.name} exit`).catch(() => child.stop(1000));
}

interface E2EFigures {
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

async function e2eScenario(rig: Rig): Promise<E2EFigures> {
  log(`end-to-end: ${WORKERS} worker(s) × C=${CONC}, L=${LATENCY} ms, ${SIZE.width}×${SIZE.height}, ${JOBS} jobs × ${REPEAT}`);
  const fleet = await startCliFleet(rig, 'e2e', WORKERS, CONC, BUCKETS.e2e);
  const base = spawnBaseline(rig, 'baseline', CONC, BUCKETS.base);
  await base.waitMessage((m) => m.event === 'ready', 60_000, 'baseline ready');
  const idleRss = fleet.children.map((c) => rssMiB(c.pid) ?? NaN);
  const baselineIdleRss = rssMiB(base.pid);
  // Warm-up (JIT, lazily loaded SDK modules, connection pools), not measured.
  await fluxqWindow(rig, fleet, 'e2e-warm', 2 * SLOTS, SIZE, LATENCY);
  await baselineWindow(rig, base, 'base-warm', 2 * CONC, SIZE);
  const fluxq: WindowResult[] = [];
  const baseline: WindowResult[] = [];
  const t0 = Date.now();
  for (let r = 1; r <= REPEAT; r++) {
    const perPair = (Date.now() - t0) / Math.max(1, r - 1);
    if (r > 1 && (Date.now() - t0 + perPair) / 1000 > E2E_BUDGET_S) {
      log(`  stopping after ${r - 1} pair(s): one more (~${(perPair / 1000).toFixed(0)} s) would pass the ${E2E_BUDGET_S} s budget`);
      break;
    }
    // Interleaved, so drift on the machine hits both alike.
    const f = await fluxqWindow(rig, fleet, `e2e-r${r}`, JOBS, SIZE, LATENCY);
    fluxq.push(f);
    log(`  fluxq    r${r}: ${f.throughput.toFixed(1)} jobs/s (${((100 * f.throughput) / f.ideal).toFixed(1)}% of ideal), ${f.cpuMsPerImage.toFixed(2)} CPU ms/image, busy ${((f.machineBusy ?? 0) * 100).toFixed(0)}%`);
    const b = await baselineWindow(rig, base, `base-r${r}`, JOBS, SIZE);
    baseline.push(b);
    log(`  baseline r${r}: ${b.throughput.toFixed(1)} jobs/s (${((100 * b.throughput) / b.ideal).toFixed(1)}% of ideal), ${b.cpuMsPerImage.toFixed(2)} CPU ms/image, busy ${((b.machineBusy ?? 0) * 100).toFixed(0)}%`);
  }
  // Peak RSS before SIGTERM.
  const peakRss = fleet.children.map((c) => peakRssMiB(c.pid) ?? NaN);
  const baselinePeakRss = peakRssMiB(base.pid);
  const workerWarnLines = fleet.children.reduce((n, c) => n + c.stderr.filter((l) => /"level":(4|5|6)0/.test(l)).length, 0);
  await Promise.all([stopFleet(fleet), stopBaseline(base)]);
  await fleet.producer.close();
  let stream: { window: WindowResult; peakRss: number | undefined } | undefined;
  if (STREAM_BASELINE) {
    const sb = spawnBaseline(rig, 'baseline-stream', CONC, BUCKETS.base, { BASELINE_DECODE: 'stream' });
    await sb.waitMessage((m) => m.event === 'ready', 60_000, 'streaming baseline ready');
    await baselineWindow(rig, sb, 'bstream-warm', 2 * CONC, SIZE);
    const window = await baselineWindow(rig, sb, 'bstream-r1', JOBS, SIZE);
    log(`  baseline, streaming decode: ${window.throughput.toFixed(1)} jobs/s, ${window.cpuMsPerImage.toFixed(2)} CPU ms/image`);
    stream = { window, peakRss: peakRssMiB(sb.pid) };
    await stopBaseline(sb);
  }
  return { fluxq, baseline, peakRss, baselinePeakRss, idleRss, baselineIdleRss, workerWarnLines, stream };
}

interface ProbeFigures {
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

async function probeScenario(rig: Rig, measuredJobsPerS: number | undefined): Promise<ProbeFigures> {
  // Enough jobs for ~PROBE_SECONDS at the throughput the CLI worker reached (not the ideal).
  const rate = Math.min(CONC / (Math.max(LATENCY, 1) / 1000), measuredJobsPerS ?? Infinity);
  const n = roundUp(Math.max(4 * CONC, rate * PROBE_SECONDS), CONC);
  log(`event-loop probe: 1 in-process worker × C=${CONC}, ${n} jobs`);
  const prefix = `bench-probe-${RUN_ID}`;
  const producer = newProducer(rig, prefix);
  const child = track(
    spawnChild('worker-probe', process.execPath, [...profArgs(), '--import', 'tsx', join(REPO, 'bench/worker-probe.ts')], {
      cwd: REPO,
      env: workerEnv(rig, prefix, BUCKETS.probe, CONC),
    }),
    'worker-probe',
  );
  await child.waitMessage((m) => m.event === 'ready', 60_000, 'probe ready');
  const fleet: Fleet = { name: 'probe', prefix, bucket: BUCKETS.probe, producer, children: [child], slots: CONC };
  await fluxqWindow(rig, fleet, 'probe-warm', 2 * CONC, SIZE, LATENCY);
  child.send({ cmd: 'start' });
  const window = await fluxqWindow(rig, fleet, 'probe-r1', n, SIZE, LATENCY);
  child.send({ cmd: 'stop' });
  const eld = await child.waitMessage((m) => m.event === 'eld', 10_000, 'event-loop figures');
  const peakRss = peakRssMiB(child.pid);
  const entry = profIndex.find((e) => e.pid === child.pid);
  if (entry) entry.stalls = (eld.stalls as unknown[] | undefined) ?? [];
  child.send({ cmd: 'exit' });
  await withTimeout(child.exited, 20_000, 'probe exit').catch(() => child.stop(1000));
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

interface ScaleFigures {
  one: WindowResult;
  four: WindowResult;
  ratio: number;
  /** The bare baseline, one process at the same C, L and size. */
  baseline: WindowResult;
}

async function scaleScenario(rig: Rig): Promise<ScaleFigures> {
  rig.fake.configure({ latencyMs: SCALE_L });
  await prewarmFake(rig.fake, SCALE_SIZE);
  const results: WindowResult[] = [];
  for (const w of [1, 4]) {
    const slots = w * SCALE_C;
    log(`scale-out: ${w} worker(s) × C=${SCALE_C}, L=${SCALE_L} ms, ${SCALE_SIZE.width}×${SCALE_SIZE.height}, ${slots * SCALE_ROUNDS} jobs`);
    const fleet = await startCliFleet(rig, `scale${w}`, w, SCALE_C, BUCKETS.scale);
    await fluxqWindow(rig, fleet, `scale${w}-warm`, 2 * slots, SCALE_SIZE, SCALE_L);
    const r = await fluxqWindow(rig, fleet, `scale${w}-r1`, slots * SCALE_ROUNDS, SCALE_SIZE, SCALE_L);
    log(`  ${w} worker(s): ${r.throughput.toFixed(1)} jobs/s (${((100 * r.throughput) / r.ideal).toFixed(1)}% of ideal), busy ${((r.machineBusy ?? 0) * 100).toFixed(0)}%`);
    results.push(r);
    await stopFleet(fleet);
    await fleet.producer.close();
  }
  const sb = spawnBaseline(rig, 'baseline-scale', SCALE_C, BUCKETS.scale);
  await sb.waitMessage((m) => m.event === 'ready', 60_000, 'scale baseline ready');
  await baselineWindow(rig, sb, 'bscale-warm', 2 * SCALE_C, SCALE_SIZE, SCALE_C, SCALE_L, BUCKETS.scale);
  const baseline = await baselineWindow(rig, sb, 'bscale-r1', SCALE_C * SCALE_ROUNDS, SCALE_SIZE, SCALE_C, SCALE_L, BUCKETS.scale);
  log(`  baseline, 1 process: ${baseline.throughput.toFixed(1)} jobs/s (${((100 * baseline.throughput) / baseline.ideal).toFixed(1)}% of ideal)`);
  await stopBaseline(sb);
  rig.fake.configure({ latencyMs: LATENCY });
  const [one, four] = results as [WindowResult, WindowResult];
  return { one, four, ratio: four.throughput / one.throughput, baseline };
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

interface AutoFigures {
  runs: AutoRun[];
}

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
 * One fleet of AUTO_W × AUTO_C against the fake capped at AUTO_CAP calls in flight. The
 * workers are warmed without the cap; for `auto` the controller is then reset as a fresh
 * deployment starts it (no learned state, BullMQ's global concurrency at
 * AUTO_CONCURRENCY_MIN), so the measured window includes the slow start.
 */
async function autoRun(rig: Rig, mode: AutoMode, n: number): Promise<AutoRun> {
  const globalConcurrency = mode === 'auto' ? 'auto' : mode === 'static' ? String(AUTO_CAP) : '';
  const env: Record<string, string | undefined> =
    mode === 'auto' ? { GLOBAL_CONCURRENCY: 'auto', AUTO_CONCURRENCY_MIN: '1', AUTO_CONCURRENCY_MAX: '64' } : { GLOBAL_CONCURRENCY: globalConcurrency || undefined, AUTO_CONCURRENCY_MIN: undefined, AUTO_CONCURRENCY_MAX: undefined };
  log(`adaptive concurrency: ${AUTO_W} worker(s) × C=${AUTO_C}, GLOBAL_CONCURRENCY=${globalConcurrency || '(unset)'}, cap ${AUTO_CAP}, L=${AUTO_L} ms, ${AUTO_SIZE.width}×${AUTO_SIZE.height}, ${n} jobs`);
  const fleet = await startCliFleet(rig, `auto-${mode}`, AUTO_W, AUTO_C, BUCKETS.auto, env);
  rig.fake.configure({ concurrencyLimit: undefined });
  await fluxqWindow(rig, fleet, `auto-${mode}-warm`, 2 * fleet.slots, AUTO_SIZE, AUTO_L, { ideal: AUTO_IDEAL });
  const stateKey = `${fleet.prefix}:concurrency`;
  const metaKey = `${fleet.prefix}:${QUEUE}:meta`;
  if (mode === 'auto') {
    await sleep(500); // the last observe() calls of the warm-up
    await rig.benchRedis.del(stateKey);
    await rig.benchRedis.hset(metaKey, 'concurrency', '1');
  }
  rig.fake.configure({ concurrencyLimit: AUTO_CAP, concurrencyRetryAfter: '1' });
  const sampler = sampleConcurrency(rig, fleet.prefix);
  let window: WindowResult;
  try {
    // At most ~cap calls run at once under a global concurrency (static and auto), so the slot pairing of 3d/3e uses the cap.
    window = await fluxqWindow(rig, fleet, `auto-${mode}-r1`, n, AUTO_SIZE, AUTO_L, { ideal: AUTO_IDEAL, slots: AUTO_CAP });
  } finally {
    rig.fake.configure({ concurrencyLimit: undefined });
  }
  const trace = (await sampler.stop()).filter((x) => x.at >= window.startAt - 500 && x.at <= window.endAt);
  const state = await rig.benchRedis.hgetall(stateKey);
  const { mine } = callStats(rig.fake.calls, `auto-${mode}-r1 `);
  const limited = mine.filter((c) => c.status === 429).length;
  const rel = (t: number | undefined) => (t === undefined || !Number.isFinite(t) ? undefined : t - window.startAt);
  const capReachedMs = rel(mine.find((c) => c.inFlightAtArrival >= AUTO_CAP)?.at);
  const first429Ms = rel(mine.find((c) => c.status === 429)?.at);
  let settledMs: number | undefined;
  if (mode === 'auto') {
    const [lo, hi] = AUTO_BAND(AUTO_CAP);
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
  log(
    `  ${mode}: ${window.throughput.toFixed(1)} jobs/s (${((100 * window.throughput) / AUTO_IDEAL).toFixed(1)}% of cap/L), 429s ${limited}/${mine.length} (${(100 * run.share429).toFixed(2)}%), max in flight ${window.maxInFlight}, peak accepted ${run.peakAccepted}` +
      (mode === 'auto' ? `, limit ${state.limit ?? '?'}, cap reached at ${f1((capReachedMs ?? NaN) / 1000)} s, settled at ${f1((settledMs ?? NaN) / 1000)} s` : ''),
  );
  await stopFleet(fleet);
  await fleet.producer.close();
  return run;
}

async function autoScenario(rig: Rig): Promise<AutoFigures> {
  rig.fake.configure({ latencyMs: AUTO_L });
  await prewarmFake(rig.fake, AUTO_SIZE);
  const n = roundUp(AUTO_IDEAL * AUTO_SECONDS, AUTO_CAP);
  const nCompare = roundUp(AUTO_IDEAL * AUTO_COMPARE_SECONDS, AUTO_CAP);
  const runs: AutoRun[] = [];
  try {
    runs.push(await autoRun(rig, 'auto', n));
    if (AUTO_COMPARE) {
      runs.push(await autoRun(rig, 'unset', nCompare));
      runs.push(await autoRun(rig, 'static', nCompare));
    }
  } finally {
    rig.fake.configure({ latencyMs: LATENCY, concurrencyLimit: undefined });
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

// ---------------------------------------------------------------- report

type Cell = string;
interface Row {
  id: string;
  figure: string;
  params: string;
  fluxq: Cell;
  baseline: Cell;
  ratio: Cell;
  target: Cell;
  result: Cell;
}

const f0 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(0));
const f1 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(1));
const f2 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !b ? undefined : a / b);
const pass = (ok: boolean | undefined) => (ok === undefined ? '–' : ok ? 'PASS' : 'FAIL');
const all = (ws: WindowResult[], pick: (w: WindowResult) => number[]) => ws.flatMap(pick);
const med = (ws: WindowResult[], pick: (w: WindowResult) => number) => median(ws.map(pick));
const runs = (ws: WindowResult[], pick: (w: WindowResult) => number, fmt = f1) => (ws.length > 1 ? ` [${ws.map((w) => fmt(pick(w))).join(' ')}]` : '');

function printTable(rows: Row[]): string {
  const cols: (keyof Row)[] = ['id', 'figure', 'params', 'fluxq', 'baseline', 'ratio', 'target', 'result'];
  const heads: Record<keyof Row, string> = { id: '#', figure: 'figure', params: 'parameters', fluxq: 'fluxq', baseline: 'baseline', ratio: 'fluxq/base', target: 'target', result: 'result' };
  const width = (c: keyof Row) => Math.max(heads[c].length, ...rows.map((r) => r[c].length));
  const w = Object.fromEntries(cols.map((c) => [c, width(c)])) as Record<keyof Row, number>;
  const line = (r: Record<keyof Row, string>) => `| ${cols.map((c) => r[c].padEnd(w[c])).join(' | ')} |`;
  const sep = `|${cols.map((c) => '-'.repeat(w[c] + 2)).join('|')}|`;
  return [line(heads), sep, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- main

async function cleanup(): Promise<void> {
  return cleanups.run();
}

function enqueueRows(enq: EnqueueFigures): Row[] {
  const lib = median(enq.libRates);
  const cli = median(enq.cliRates);
  const cliNs = median(enq.cliRatesNoStartup);
  const help = median(enq.helpSeconds);
  const rep = REPEAT > 1 ? `, median of ${REPEAT}` : '';
  const list = (v: number[], fmt: (n: number) => string) => (v.length > 1 ? ` [${v.map(fmt).join(' ')}]` : '');
  return [
    { id: '1a', figure: 'enqueue, library enqueueBulk (jobs/s)', params: `${ENQ_JOBS} jobs, the call only${rep}${list(enq.libRates, f0)}`, fluxq: f0(lib), baseline: '', ratio: '', target: '≥ 5000', result: pass(lib !== undefined && lib >= 5000) },
    { id: '1b', figure: 'enqueue, CLI end to end (jobs/s)', params: `${ENQ_JOBS}-line JSONL, process start included${rep} [${enq.cliSeconds.map(f2).join(' ')} s]`, fluxq: f0(cli), baseline: '', ratio: '', target: '≥ 2000', result: pass(cli !== undefined && cli >= 2000) },
    { id: '1c', figure: 'enqueue, CLI without start-up (jobs/s)', params: `minus \`fluxq --help\` = ${f2(help)} s`, fluxq: f0(cliNs), baseline: '', ratio: '', target: '(≥ 2000)', result: pass(cliNs !== undefined && cliNs >= 2000) },
    { id: '1d', figure: 'Redis memory per waiting job (bytes)', params: `INFO used_memory Δ / ${ENQ_JOBS}${rep}${list(enq.memPerJob, f0)}`, fluxq: f0(median(enq.memPerJob)), baseline: '', ratio: '', target: '', result: '' },
  ];
}

function e2eRows(e2e: E2EFigures, imageBytes: number): Row[] {
  const F = e2e.fluxq;
  const B = e2e.baseline;
  const rows: Row[] = [];
  const tF = med(F, (w) => w.throughput);
  const tB = med(B, (w) => w.throughput);
  const atTarget = LATENCY === 200 && CONC === 32 && WORKERS === 1 && IMAGE_MP === 1;
  const repE2E = F.length > 1 ? `, median of ${F.length}` : REPEAT > 1 ? ', 1 run (time budget)' : '';
  const e2eParams = `W=${WORKERS} C=${CONC} L=${LATENCY}ms ${SIZE.width}×${SIZE.height} (${IMAGE_MP} MP) e=${ENTROPY} N=${JOBS}${repE2E}`;
  const both = (pick: (w: WindowResult) => number, fmt = f1) => (F.length > 1 ? `${runs(F, pick, fmt)} / base${runs(B, pick, fmt)}` : '');
  rows.push({ id: '2a', figure: 'end-to-end throughput (jobs/s)', params: `${e2eParams}${both((w) => w.throughput)}`, fluxq: f1(tF), baseline: f1(tB), ratio: f2(ratio(tF, tB)), target: `≥ ${f1(0.95 * IDEAL)} (0.95 × ideal ${f0(IDEAL)})${atTarget ? '' : ' *'}`, result: pass(tF !== undefined && tF >= 0.95 * IDEAL) });
  rows.push({ id: '2b', figure: 'throughput / ideal', params: `ideal = W×C/L = ${f1(IDEAL)} jobs/s`, fluxq: f2(ratio(tF, IDEAL)), baseline: f2(ratio(tB, IDEAL)), ratio: '', target: '≥ 0.95', result: pass(tF !== undefined && tF / IDEAL >= 0.95) });
  rows.push({ id: '2c', figure: 'upstream max in flight (fake)', params: `slots = ${SLOTS}`, fluxq: f0(Math.max(...F.map((w) => w.maxInFlight))), baseline: f0(Math.max(...B.map((w) => w.maxInFlight))), ratio: '', target: '', result: '' });
  const pp = (v: number[]) => `${f1(percentile(v, 50))} / ${f1(percentile(v, 99))}`;
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
  const rssTarget = 150 + (CONC * 3 * imageBytes) / 1048576;
  const peak = Math.max(...e2e.peakRss);
  rows.push({ id: '4b', figure: 'peak RSS per worker (MiB, VmHWM)', params: `C=${CONC}, image ${f2(imageBytes / 1048576)} MiB decoded; idle RSS ${e2e.idleRss.map(f0).join(' ')} / base ${f0(e2e.baselineIdleRss)}${WORKERS > 1 ? `; peaks ${e2e.peakRss.map(f0).join(' ')}` : ''}`, fluxq: f0(peak), baseline: f0(e2e.baselinePeakRss), ratio: f2(ratio(peak, e2e.baselinePeakRss)), target: `≤ ${f0(rssTarget)} (150 + C×3×image)`, result: pass(peak <= rssTarget) });
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
  rows.push({ id: '4e', figure: 'rig CPU ceiling (jobs/s) ⁴', params: 'min(cores×1000 / all CPU ms per image, 1000 / s3rver ms, W×1000 / worker ms)', fluxq: f0(ceil(F, WORKERS)), baseline: f0(ceil(B, 1)), ratio: '', target: `vs ideal ${f0(IDEAL)}`, result: '' });
  if (e2e.stream) {
    const sw = e2e.stream.window;
    rows.push({ id: '6s', figure: 'experiment: baseline with streaming base64 decode', params: `jobs/s · CPU ms/image · peak RSS MiB (vs the plain baseline ${f1(tB)} · ${f2(cB)} · ${f0(e2e.baselinePeakRss)})`, fluxq: '', baseline: `${f1(sw.throughput)} · ${f2(sw.cpuMsPerImage)} · ${f0(e2e.stream.peakRss)}`, ratio: '', target: `RSS ≤ ${f0(rssTarget)}`, result: pass((e2e.stream.peakRss ?? Infinity) <= rssTarget) });
  }
  return rows;
}

function probeRows(probe: ProbeFigures): Row[] {
  const top = probe.stalls.slice(0, 5);
  const sum = (pick: (x: ProbeFigures['stalls'][number]) => number | undefined) => top.reduce((n, x) => n + (pick(x) ?? NaN), 0);
  const stalls = top.length > 0 ? `; ${probe.stallCount} stalls > 20 ms, longest ${top.map((x) => f0(x.gapMs)).join(' ')} ms: main thread on a core ${f0(sum((x) => x.runMs))} ms, waiting for one ${f0(sum((x) => x.runQueueMs))} ms of ${f0(sum((x) => x.gapMs))} ⁵` : '';
  return [
    { id: '5', figure: 'worker event-loop delay p50 / p99 / max (ms)', params: `in-process probe, C=${CONC} L=${LATENCY}ms ${SIZE.width}×${SIZE.height}, N=${probe.window.jobs}, ${f1(probe.window.throughput)} jobs/s, busy ${f0((probe.window.machineBusy ?? NaN) * 100)}%${stalls}`, fluxq: `${f1(probe.p50Ms)} / ${f1(probe.p99Ms)} / ${f0(probe.maxMs)}`, baseline: '', ratio: '', target: '< 50 (p99)', result: pass(probe.p99Ms < 50) },
  ];
}

function scaleRows(scale: ScaleFigures): Row[] {
  return [
    { id: '7a', figure: 'scale-out: 1 worker (jobs/s)', params: `C=${SCALE_C} L=${SCALE_L}ms ${SCALE_SIZE.width}×${SCALE_SIZE.height} N=${scale.one.jobs}, ideal ${f0(scale.one.ideal)}, busy ${f0((scale.one.machineBusy ?? NaN) * 100)}%`, fluxq: `${f1(scale.one.throughput)} (${f0((100 * scale.one.throughput) / scale.one.ideal)}%)`, baseline: `${f1(scale.baseline.throughput)} (${f0((100 * scale.baseline.throughput) / scale.baseline.ideal)}%)`, ratio: f2(scale.one.throughput / scale.baseline.throughput), target: '', result: '' },
    { id: '7a′', figure: '  upstream idle per slot p50 / p99 (ms) ³', params: '1 worker vs 1 baseline process, same window sizes', fluxq: `${f1(percentile(scale.one.upstreamIdle, 50))} / ${f1(percentile(scale.one.upstreamIdle, 99))}`, baseline: `${f1(percentile(scale.baseline.upstreamIdle, 50))} / ${f1(percentile(scale.baseline.upstreamIdle, 99))}`, ratio: '', target: '', result: '' },
    { id: '7b', figure: 'scale-out: 4 workers (jobs/s)', params: `4 processes × C=${SCALE_C}, N=${scale.four.jobs}, ideal ${f0(scale.four.ideal)}, busy ${f0((scale.four.machineBusy ?? NaN) * 100)}%`, fluxq: `${f1(scale.four.throughput)} (${f0((100 * scale.four.throughput) / scale.four.ideal)}%)`, baseline: '', ratio: '', target: '', result: '' },
    { id: '7c', figure: 'scale-out: 4 workers / 1 worker', params: 'latency-bound upstream', fluxq: scale.ratio.toFixed(3), baseline: '', ratio: '', target: '≥ 3.50', result: pass(scale.ratio >= 3.5) },
  ];
}

function autoRows(a: AutoFigures): Row[] {
  const pctOf = (x: number) => `${f0((100 * x) / AUTO_IDEAL)}%`;
  const share = (r: AutoRun) => `${(100 * r.share429).toFixed(2)} %`;
  const sz = `${AUTO_SIZE.width}×${AUTO_SIZE.height}`;
  const byMode = (m: AutoMode) => a.runs.find((r) => r.mode === m);
  const rows: Row[] = [];
  const auto = byMode('auto');
  const stat = byMode('static');
  if (auto) {
    const w = auto.window;
    const vsStatic = stat ? `; ${f2(w.throughput / stat.window.throughput)} × the static run` : '';
    rows.push({ id: '8a', figure: 'adaptive concurrency: GLOBAL_CONCURRENCY=auto (jobs/s)', params: `${AUTO_W} workers × C=${AUTO_C} vs an account cap of ${AUTO_CAP} in flight, L=${AUTO_L}ms ${sz} N=${w.jobs}; ideal cap/L = ${f0(AUTO_IDEAL)}; from a cold controller (min 1, max 64); busy ${f0((w.machineBusy ?? NaN) * 100)}%${vsStatic}`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: `≥ ${f1(0.9 * AUTO_IDEAL)} (0.90 × cap/L)`, result: pass(w.throughput >= 0.9 * AUTO_IDEAL) });
    rows.push({ id: '8a′', figure: '  auto after settling (200s/s) · per job p50: before call / after call / hand-over (ms)', params: `from ${f1((auto.settledMs ?? NaN) / 1000)} s to the last answer; a job's time besides L, see ² ³ (pairing with S = cap)`, fluxq: `${f1(auto.steadyJobsPerS)} (${pctOf(auto.steadyJobsPerS ?? NaN)}) · ${f0(percentile(w.pre, 50))} / ${f0(percentile(w.post, 50))} / ${f0(percentile(w.handover, 50))}`, baseline: '', ratio: '', target: '', result: '' });
    rows.push({ id: '8b', figure: '  calls answered 429 (auto)', params: `${auto.limited} of ${auto.calls} upstream calls; ${auto.state.decreases ?? 0} cut(s) of the limit`, fluxq: share(auto), baseline: '', ratio: '', target: '< 2 %', result: pass(auto.share429 < 0.02) });
    const [lo, hi] = AUTO_BAND(AUTO_CAP);
    rows.push({ id: '8c', figure: '  settled limit · max in flight · peak 200s in flight', params: `\`{prefix}:concurrency\` limit at the end (learned break ${auto.state.bad ?? '?'}); ${AUTO_CAP} in flight first at ${f1((auto.capReachedMs ?? NaN) / 1000)} s, first 429 at ${f1((auto.first429Ms ?? NaN) / 1000)} s, limit in ${lo}–${hi} from ${f1((auto.settledMs ?? NaN) / 1000)} s on`, fluxq: `${auto.state.limit ?? '–'} · ${w.maxInFlight} · ${auto.peakAccepted}`, baseline: '', ratio: '', target: `cap ${AUTO_CAP}`, result: '' });
  }
  const unset = byMode('unset');
  if (unset) {
    const w = unset.window;
    rows.push({ id: '8d', figure: '  GLOBAL_CONCURRENCY unset: 429 storm (jobs/s)', params: `${AUTO_W}×${AUTO_C} = ${AUTO_W * AUTO_C} slots vs cap ${AUTO_CAP}, N=${w.jobs}; 429s ${unset.limited} of ${unset.calls} = ${share(unset)}; max in flight ${w.maxInFlight}, peak 200s ${unset.peakAccepted}`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: '', result: '' });
  }
  if (stat) {
    const w = stat.window;
    rows.push({ id: '8e', figure: `  GLOBAL_CONCURRENCY=${AUTO_CAP}: static, ideal setting (jobs/s)`, params: `same fleet, N=${w.jobs}; 429s ${stat.limited} of ${stat.calls} = ${share(stat)}; max in flight ${w.maxInFlight}; per job p50 before call / after call / hand-over ${f0(percentile(w.pre, 50))} / ${f0(percentile(w.post, 50))} / ${f0(percentile(w.handover, 50))} ms, upstream idle/slot p50 ${f0(percentile(w.upstreamIdle, 50))} ms`, fluxq: `${f1(w.throughput)} (${pctOf(w.throughput)})`, baseline: '', ratio: '', target: '', result: '' });
  }
  return rows;
}

const strip = (w: WindowResult) => {
  const { overhead, pre, post, callMs, handover, upstreamIdle, ...rest } = w;
  const q = (v: number[]) => ({ n: v.length, p50: percentile(v, 50), p90: percentile(v, 90), p99: percentile(v, 99), max: v.length ? Math.max(...v) : undefined });
  return { ...rest, overheadMs: q(overhead), preMs: q(pre), postMs: q(post), callMs: q(callMs), handoverMs: q(handover), upstreamIdleMs: q(upstreamIdle) };
};

const ONLY = new Set((process.env.BENCH_ONLY ?? 'enqueue,e2e,probe,scale,auto').split(',').map((x) => x.trim()));

async function main(): Promise<number> {
  if (CPU_PROF) await mkdir(CPU_PROF, { recursive: true });
  log(`rig: redis-server, s3rver (child process), fake upstream (this process); ${cpus().length} cores, CLK_TCK ${clockTicks()}`);
  const rig = await startRig();
  const imageBytes = await prewarmFake(rig.fake, SIZE);
  log(`fake image ${SIZE.width}×${SIZE.height}: ${(imageBytes / 1048576).toFixed(2)} MiB decoded (entropy ${ENTROPY})`);

  const enq = ONLY.has('enqueue') ? await enqueueScenario(rig) : undefined;
  const e2e = ONLY.has('e2e') ? await e2eScenario(rig) : undefined;
  const probe = ONLY.has('probe') ? await probeScenario(rig, e2e ? median(e2e.fluxq.map((w) => w.throughput / WORKERS)) : undefined) : undefined;
  const scale = SCALE && ONLY.has('scale') ? await scaleScenario(rig) : undefined;
  // BENCH_ONLY=auto runs it in a quick run too.
  const auto = (AUTO || process.env.BENCH_ONLY !== undefined) && ONLY.has('auto') ? await autoScenario(rig) : undefined;

  const rows: Row[] = [...(enq ? enqueueRows(enq) : []), ...(e2e ? e2eRows(e2e, imageBytes) : []), ...(probe ? probeRows(probe) : []), ...(scale ? scaleRows(scale) : []), ...(auto ? autoRows(auto) : [])];
  const windows = [...(e2e?.fluxq ?? []), ...(e2e?.baseline ?? []), ...(e2e?.stream ? [e2e.stream.window] : []), ...(probe ? [probe.window] : []), ...(scale ? [scale.one, scale.four, scale.baseline] : []), ...(auto ? auto.runs.map((r) => r.window) : [])];
  const notes = [
    `Clock (2a, 7): from the first upstream call of the window arriving at the fake to the last job's finishedOn (baseline: its last PUT); workers are up, warmed (2×slots jobs) and idle, and the window's jobs are enqueued into the paused queue before it resumes.`,
    `¹ per job: (finishedOn − processedOn) − (fake answer end − call arrival) of its successful call, matched by prompt; baseline: (its end − its start) − the same. It holds everything a job does besides the upstream's own latency: ledger/checkpoint/S3 lookup, receiving and decoding the body, sha256, the PUT to s3rver, finalize.`,
    `² the two halves of ¹. ³ with at most S = W×C jobs running, the k-th job to finish frees the slot the (S+k)-th start takes: hand-over = start[S+k] − finish[k] (BullMQ processedOn/finishedOn); upstream idle = arrival[S+k] − answer end[k] at the fake, i.e. what one slot spends per job besides L (throughput ≈ S / (L + idle)).`,
    `⁴ the most this machine could do with this job mix: every core busy, or the single-threaded s3rver (or worker) at 100 %; when it is below 0.95 × ideal the throughput target cannot be met on this machine by fluxq or by the baseline.`,
    `* the throughput target is defined at L=200 ms, C=32, 1 worker, 1 MP; other parameters are compared with 0.95 × their own ideal.`,
    ...(probe && probe.stalls.length > 0
      ? [
          `⁵ stalls of the probe's event loop (a 5 ms timer firing > 20 ms late), split by /proc/self/task/<pid>/schedstat into time the main thread ran (blocking work) and time it sat runnable on the run queue (no core free: starvation, not code). Their µs bounds are on the clock of --cpu-prof profiles: \`npx tsx bench/profile-summary.ts DIR --stalls\` shows what ran in them.`,
        ]
      : []),
    ...(auto
      ? [
          `8: the fake answers 429 (Retry-After: 1) to a call that finds more than ${AUTO_CAP} in flight; a 429 pauses the whole queue for the Retry-After (queue.rateLimit) and puts the job back. Clock as in 2a. Workers are warmed without the cap; the auto run then starts from a reset controller (no {prefix}:concurrency, global concurrency 1), like a fresh deployment.`,
          ...auto.runs.filter((r) => r.mode === 'auto').map((r) => `8 auto: BullMQ global concurrency over the window (s from the first call → value, sampled every 250 ms): ${traceChanges(r)}`),
        ]
      : []),
    ...(e2e && e2e.workerWarnLines > 0 ? [`workers wrote ${e2e.workerWarnLines} warn/error log line(s) during the run.`] : []),
    ...windows
      .filter((w) => w.outside.cpuMs > 0.05 * w.seconds * 1000 * cpus().length)
      .map((w) => `window ${w.tag}: other processes on the machine used ${f0(w.outside.cpuMs)} CPU ms (${f0((100 * w.outside.cpuMs) / (w.seconds * 1000 * cpus().length))}% of the machine), e.g. ${w.outside.top.map((p) => `${p.comm}[${p.pid}] ${f0(p.cpuMs)} ms`).join(', ')}`),
    ...windows.filter((w) => w.failed > 0).map((w) => `window ${w.tag}: ${w.failed} job(s) failed, e.g. ${w.firstFailure ?? '?'}`),
  ];
  console.log(`\nfluxq bench — ${new Date().toISOString()} — node ${process.version}, ${cpus().length} cores${QUICK ? ' — QUICK' : ''}${CPU_PROF ? ' — with --cpu-prof (slower)' : ''}\n`);
  console.log(printTable(rows));
  console.log('');
  for (const n of notes) console.log(n);

  if (JSON_OUT) {
    const out = {
      at: new Date().toISOString(),
      durationS: (Date.now() - T0) / 1000,
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, clkTck: clockTicks() },
      params: { latencyMs: LATENCY, concurrency: CONC, workers: WORKERS, jobs: JOBS, imageMp: IMAGE_MP, size: SIZE, entropy: ENTROPY, enqueueJobs: ENQ_JOBS, repeat: REPEAT, quick: QUICK, scale: SCALE, cpuProf: CPU_PROF ?? null, s3Dir: S3_DIR ?? null },
      imageBytes,
      idealJobsPerS: IDEAL,
      enqueue: enq ? { ...enq, libMedian: median(enq.libRates), cliMedian: median(enq.cliRates), cliNoStartupMedian: median(enq.cliRatesNoStartup), helpMedianS: median(enq.helpSeconds), memPerJobMedian: median(enq.memPerJob) } : null,
      e2e: e2e
        ? {
            fluxq: e2e.fluxq.map(strip),
            baseline: e2e.baseline.map(strip),
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
            rssTargetMiB: 150 + (CONC * 3 * imageBytes) / 1048576,
            stream: e2e.stream ? { window: strip(e2e.stream.window), peakRssMiB: e2e.stream.peakRss } : null,
          }
        : null,
      eventLoop: probe ? { ...probe, window: strip(probe.window) } : null,
      scale: scale ? { one: strip(scale.one), four: strip(scale.four), baseline: strip(scale.baseline), ratio: scale.ratio, concurrency: SCALE_C, latencyMs: SCALE_L, size: SCALE_SIZE } : null,
      auto: auto
        ? {
            params: { cap: AUTO_CAP, workers: AUTO_W, concurrency: AUTO_C, latencyMs: AUTO_L, size: AUTO_SIZE, idealJobsPerS: AUTO_IDEAL, seconds: AUTO_SECONDS, compareSeconds: AUTO_COMPARE_SECONDS },
            runs: auto.runs.map(({ window, trace, ...r }) => ({
              ...r,
              window: strip(window),
              throughputOverIdeal: window.throughput / AUTO_IDEAL,
              trace: trace.map((x) => ({ tMs: x.at - window.startAt, concurrency: x.concurrency ?? null, inFlight: x.inFlight })),
            })),
          }
        : null,
      rows,
      notes,
    };
    await mkdir(dirname(JSON_OUT), { recursive: true });
    await writeFile(JSON_OUT, `${JSON.stringify(out, null, 2)}\n`);
    log(`wrote ${JSON_OUT}`);
  }
  if (CPU_PROF) log(`profiles in ${CPU_PROF} (index.json maps pid → role and windows); summarise with: npx tsx bench/profile-summary.ts ${CPU_PROF}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  code = 1;
} finally {
  await cleanup();
  if (CPU_PROF) {
    // Profiles are written as the children exit; the index must survive a failed run too.
    await writeFile(join(CPU_PROF, 'index.json'), `${JSON.stringify(profIndex, null, 2)}\n`).catch(() => undefined);
  }
}
log(`done in ${((Date.now() - T0) / 1000).toFixed(0)} s`);
process.exit(code);
