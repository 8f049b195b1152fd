/**
 * The bench's rig, shared by every scenario: a private redis-server, s3rver in its own
 * child process, the fake upstream in this process, and the processes under test
 * (`fluxq worker` fleets, the bare baseline), each registered with the run's CleanUps
 * and, under `--cpu-prof`, in the profile index.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { startFakeFlux, type FakeFlux } from '../src/demo/fake-flux.js';
import { startLocalRedis, type LocalRedis } from '../src/demo/local-redis.js';
import { createProducer, type Producer } from '../src/producer/producer.js';
import { loadConfig } from '../src/shared/config.js';
import { cpuMs } from './proc-stats.js';
import { pollUntil, sleep, spawnChild, withTimeout, type Child, type CleanUps } from './util.js';

export const REPO = resolve(new URL('../', import.meta.url).pathname);
export const CLI = join(REPO, 'src/cli.ts');
export const QUEUE = 'generate';
export const RUN_ID = randomUUID().slice(0, 6);
/** One bucket per scenario, so a window's objects can be dropped by folder. */
export const BUCKETS = { e2e: 'bench-e2e', base: 'bench-base', probe: 'bench-probe', scale: 'bench-scale', auto: 'bench-auto', fair: 'bench-fair' };

export interface Size {
  width: number;
  height: number;
}

/** Width × height of about `mp` megapixels, sides multiples of 32. */
export function sizeFor(mp: number): Size {
  const px = mp * 1024 * 1024;
  const width = Math.max(64, Math.round(Math.sqrt(px) / 32) * 32);
  const height = Math.max(64, Math.round(px / width / 32) * 32);
  return { width, height };
}

export const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** One process of the run, for `--cpu-prof`'s index.json: its role and measured windows. */
export interface ProfEntry {
  role: string;
  pid: number;
  spawnedAt: number;
  windows: { tag: string; start: number; end: number }[];
  stalls?: unknown[];
}

export interface Rig {
  tmp: string;
  redis: LocalRedis;
  benchRedis: Redis;
  s3: Child;
  s3dir: string;
  s3env: Record<string, Record<string, string>>;
  fake: FakeFlux;
  cleanups: CleanUps;
  profIndex: ProfEntry[];
  /** `--cpu-prof` directory, when profiling. */
  cpuProf: string | undefined;
  log: (msg: string) => void;
}

/**
 * s3rver in its own process (`bench/s3-child.ts`), so its CPU (MD5, file writes) neither
 * shares this event loop nor hides in its figures. Resolves with each bucket's S3_* env.
 */
export async function startS3Child(opts: { cleanups: CleanUps; dir: string; buckets: string[]; nodeArgs?: string[] }): Promise<{ child: Child; env: Record<string, Record<string, string>> }> {
  const child = spawnChild('s3rver', process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', join(REPO, 'bench/s3-child.ts'), opts.dir, ...opts.buckets], {
    cwd: REPO,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  opts.cleanups.push({ name: 's3rver', fn: () => child.stop(5000) });
  const ready = await child.waitMessage((m) => m.event === 'ready', 30_000, 's3rver ready');
  return { child, env: ready.env as Record<string, Record<string, string>> };
}

/** `profIndex` is filled as processes start (the caller writes it out even when the run fails). */
export async function startRig(opts: { cleanups: CleanUps; profIndex: ProfEntry[]; log: (msg: string) => void; latencyMs: number; entropy: number; s3Dir: string | undefined; cpuProf: string | undefined }): Promise<Rig> {
  const { cleanups, profIndex } = opts;
  const tmp = await mkdtemp(join(tmpdir(), 'fluxq-bench-'));
  cleanups.push({ name: 'temp dir', fn: () => rm(tmp, { recursive: true, force: true }) });
  await mkdir(join(tmp, 'redis'), { recursive: true });
  const redis = await startLocalRedis({ dir: join(tmp, 'redis') });
  cleanups.push({ name: 'redis-server', fn: () => redis.stop() });
  const benchRedis = new Redis(redis.url, { maxRetriesPerRequest: 3 });
  benchRedis.on('error', () => undefined);
  cleanups.push({ name: 'bench redis client', fn: async () => benchRedis.disconnect() });

  const s3dir = opts.s3Dir ? await mkdtemp(join(opts.s3Dir, 'fluxq-bench-s3-')) : join(tmp, 's3');
  await mkdir(s3dir, { recursive: true });
  if (opts.s3Dir) cleanups.push({ name: 's3rver dir', fn: () => rm(s3dir, { recursive: true, force: true }) });
  const s3 = await startS3Child({ cleanups, dir: s3dir, buckets: Object.values(BUCKETS), nodeArgs: profArgs(opts.cpuProf) });
  profIndex.push({ role: 's3rver', pid: s3.child.pid, spawnedAt: s3.child.spawnedAt, windows: [] });

  const fake = await startFakeFlux({ latencyMs: opts.latencyMs, entropy: opts.entropy });
  cleanups.push({ name: 'fake upstream', fn: () => fake.close() });
  return { tmp, redis, benchRedis, s3: s3.child, s3dir, s3env: s3.env, fake, cleanups, profIndex, cpuProf: opts.cpuProf, log: opts.log };
}

const profArgs = (dir: string | undefined): string[] => (dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : []);

/** One direct call, so the fake builds (and caches) its PNG for this size before any clock runs. Returns its decoded bytes. */
export async function prewarmFake(fake: FakeFlux, size: Size): Promise<number> {
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

export function resetFake(fake: FakeFlux): void {
  fake.calls.length = 0;
  fake.maxInFlight = fake.inFlight;
}

export interface RigCpu {
  bench: number;
  s3rver: number;
  redis: number;
}

/** CPU ms so far of the processes around the worker: this one (fake + bench), s3rver, redis. */
export function rigCpu(rig: Rig): RigCpu {
  const u = process.cpuUsage();
  return {
    bench: (u.user + u.system) / 1000,
    s3rver: cpuMs(rig.s3.pid) ?? 0,
    redis: (rig.redis.process.pid !== undefined ? cpuMs(rig.redis.process.pid) : 0) ?? 0,
  };
}

export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** Remove a window's objects from s3rver's directory (they add up to gigabytes). */
export async function dropObjects(rig: Rig, bucket: string, tag: string): Promise<void> {
  await rm(join(rig.s3dir, bucket, 'images', tag), { recursive: true, force: true }).catch(() => undefined);
}

// ---------------------------------------------------------------- processes under test

export function workerEnv(rig: Rig, prefix: string, bucket: string, concurrency: number, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
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

/** Spawn `node [--cpu-prof…] --import tsx SCRIPT ARGS`, stopped by the clean-up and listed in the profile index as `role`. */
export function spawnTracked(rig: Rig, name: string, role: string, script: string, args: string[], env: NodeJS.ProcessEnv): Child {
  const child = spawnChild(name, process.execPath, [...profArgs(rig.cpuProf), '--import', 'tsx', script, ...args], { cwd: REPO, env });
  rig.cleanups.push({ name: child.name, fn: () => child.stop(10_000) });
  rig.profIndex.push({ role, pid: child.pid, spawnedAt: child.spawnedAt, windows: [] });
  return child;
}

export function markWindow(rig: Rig, pids: number[], tag: string, start: number, end: number): void {
  for (const e of rig.profIndex) if (pids.includes(e.pid)) e.windows.push({ tag, start, end });
}

export interface Fleet {
  name: string;
  prefix: string;
  bucket: string;
  producer: Producer;
  children: Child[];
  slots: number;
}

export function newProducer(rig: Rig, prefix: string): Producer {
  const p = createProducer({ config: loadConfig({ REDIS_URL: rig.redis.url, QUEUE_PREFIX: prefix, QUEUE_NAME: QUEUE, LOG_LEVEL: 'warn' }, 'producer') });
  rig.cleanups.push({ name: `producer ${prefix}`, fn: () => p.close() });
  return p;
}

/** `fluxq worker` child processes (the CLI, as deployed). Ready = registered with BullMQ (CLIENT LIST). */
export async function startCliFleet(rig: Rig, name: string, workers: number, concurrency: number, bucket: string, extraEnv: Record<string, string | undefined> = {}): Promise<Fleet> {
  const prefix = `bench-${name}-${RUN_ID}`;
  const producer = newProducer(rig, prefix);
  const children: Child[] = [];
  for (let i = 0; i < workers; i++) {
    children.push(spawnTracked(rig, `worker ${name}#${i + 1}`, `fluxq worker (${name})`, CLI, ['worker'], workerEnv(rig, prefix, bucket, concurrency, extraEnv)));
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

export async function stopFleet(rig: Rig, f: Fleet): Promise<void> {
  const codes = await Promise.all(f.children.map((c) => c.stop(20_000)));
  const bad = codes.filter((c) => c !== 0);
  if (bad.length > 0) rig.log(`warning: ${f.name} worker exit codes ${codes.join(', ')}`);
  await f.producer.close();
}

/** The bare baseline (`bench/baseline.ts`) as a child, ready for `run` commands. */
export async function startBaseline(rig: Rig, name: string, concurrency: number, bucket: string, extraEnv: Record<string, string> = {}): Promise<Child> {
  const child = spawnTracked(rig, name, name, join(REPO, 'bench/baseline.ts'), [], { ...workerEnv(rig, `bench-${name}-${RUN_ID}`, bucket, concurrency), ...extraEnv });
  await child.waitMessage((m) => m.event === 'ready', 60_000, `${name} ready`);
  return child;
}

/** Ask a child script to exit (`{"cmd":"exit"}`); SIGTERM/SIGKILL if it does not. */
export async function stopScript(child: Child, ms = 15_000): Promise<void> {
  child.send({ cmd: 'exit' });
  await withTimeout(child.exited, ms, `${child.name} exit`).catch(() => child.stop(1000));
}
