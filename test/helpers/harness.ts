/**
 * Real parts for tests: the run's redis-server (or a private one when a file runs on
 * its own), an s3rver and a fake flux-2-pro per harness, and a fresh QUEUE_PREFIX so
 * tests never see each other's keys. Everything a harness starts is stopped by
 * `close()`, which `startHarness(t)` registers on the test itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import type { TestContext } from 'node:test';
import { startFakeFlux, type FakeFlux, type FakeFluxOptions } from '../../src/demo/fake-flux.js';
import { startLocalRedis, type LocalRedis } from '../../src/demo/local-redis.js';
import { startLocalS3, type LocalS3 } from '../../src/demo/local-s3.js';
import { loadConfig, type Config, type ConfigRole } from '../../src/shared/config.js';
import { parseEventEntry, type FluxqEvent } from '../../src/shared/events.js';
import { createLogger, type Logger } from '../../src/shared/logger.js';
import { createRedis } from '../../src/shared/redis.js';
import { createS3Client } from '../../src/shared/s3.js';
import { createProducer, type Producer } from '../../src/producer/producer.js';
import { FluxClient } from '../../src/worker/flux-client.js';
import { createWorker, type CreateWorkerOptions, type FluxqWorker } from '../../src/worker/worker.js';
import { waitFor } from './wait-for.js';

export const REPO = new URL('../../', import.meta.url).pathname;
const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
/** tsx's loader by absolute URL, so a child started in any directory finds it. */
const TSX = import.meta.resolve('tsx');

let privateRedis: Promise<LocalRedis> | undefined;

/** The run's Redis (test/run.ts starts it), or a private one for a file run alone. */
export async function testRedisUrl(): Promise<string> {
  if (process.env.FLUXQ_TEST_REDIS_URL) return process.env.FLUXQ_TEST_REDIS_URL;
  privateRedis ??= startLocalRedis().then((r) => {
    // It lives as long as the file's process, and does not keep that process alive.
    r.process.unref();
    process.once('exit', () => r.process.kill('SIGKILL'));
    return r;
  });
  return (await privateRedis).url;
}

export interface HarnessOptions {
  fake?: FakeFluxOptions;
  /** Extra env for every config, producer and worker of this harness. */
  env?: Record<string, string>;
  /** Use this Redis URL instead of the run's (e.g. a restartable private one). */
  redisUrl?: string;
}

export interface WorkerProcess {
  proc: ChildProcess;
  /** Every stderr line (pino JSON) so far. */
  lines: string[];
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Harness {
  prefix: string;
  queueName: string;
  bucket: string;
  redisUrl: string;
  fake: FakeFlux;
  s3server: LocalS3;
  /** Complete environment for a worker/producer of this harness. */
  env: Record<string, string>;
  config(role?: ConfigRole, extra?: Record<string, string>): Config;
  s3: S3Client;
  redis: Redis;
  logger: Logger;
  producer(extra?: Record<string, string>): Producer;
  worker(extra?: Record<string, string>, opts?: Partial<Pick<CreateWorkerOptions, 'resolver' | 'sweepMs' | 'deadlineSweepMs' | 'metrics' | 'tlsCa' | 'testHooks'>>): Promise<FluxqWorker>;
  spawnWorker(extra?: Record<string, string>): Promise<WorkerProcess>;
  /** Any long-running `fluxq` command (e.g. `api`), ready once a line matches `ready`. */
  spawnFluxq(args: string[], extra: Record<string, string>, ready: RegExp): Promise<WorkerProcess>;
  cli(args: string[], opts?: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string }): Promise<CliResult>;
  events(): Promise<FluxqEvent[]>;
  listObjects(prefix?: string): Promise<string[]>;
  getObject(key: string): Promise<{ bytes: Buffer; contentType: string | undefined; metadata: Record<string, string> }>;
  headObject(key: string): Promise<{ contentType: string | undefined; metadata: Record<string, string> } | undefined>;
  close(): Promise<void>;
}

export async function startHarness(t: TestContext | undefined, opts: HarnessOptions = {}): Promise<Harness> {
  const id = randomUUID().slice(0, 8);
  const prefix = opts.env?.QUEUE_PREFIX ?? `t-${id}`;
  const queueName = 'generate';
  const bucket = `fluxq-t-${id}`;
  const redisUrl = opts.redisUrl ?? (await testRedisUrl());
  const [fake, s3server] = await Promise.all([startFakeFlux(opts.fake), startLocalS3({ buckets: [bucket] })]);
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    QUEUE_NAME: queueName,
    FLUX_API_BASE_URL: fake.url,
    FLUX_API_KEY: fake.apiKey,
    ...s3server.env(bucket),
    LOG_LEVEL: process.env.FLUXQ_TEST_LOG_LEVEL ?? 'error',
    BACKOFF_BASE_MS: '50',
    LOCK_DURATION_MS: '5000',
    STALLED_INTERVAL_MS: '2000',
    SHUTDOWN_TIMEOUT_MS: '10000',
    UPLOAD_RETRY_WINDOW_MS: '2000',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...opts.env,
  };
  const logger = createLogger({ level: (env.LOG_LEVEL as 'warn') ?? 'warn' });
  const config = (role: ConfigRole = 'worker', extra: Record<string, string> = {}) => loadConfig({ ...env, ...extra }, role);
  const s3 = createS3Client(config());
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => undefined);
  const closers: (() => Promise<unknown>)[] = [];
  const children = new Set<ChildProcess>();

  const h: Harness = {
    prefix,
    queueName,
    bucket,
    redisUrl,
    fake,
    s3server,
    env,
    config,
    s3,
    redis,
    logger,
    producer(extra = {}) {
      const p = createProducer({ config: config('producer', extra), logger });
      closers.push(() => p.close());
      return p;
    },
    async worker(extra = {}, wopts = {}) {
      const cfg = config('worker', extra);
      const wredis = createRedis(cfg, { role: 'worker' });
      wredis.on('error', () => undefined);
      const ws3 = createS3Client(cfg);
      const flux = FluxClient.fromConfig(cfg);
      const w = createWorker({ config: cfg, redis: wredis, s3: ws3, flux, logger, sweepMs: 500, ...wopts });
      closers.push(async () => {
        await w.close();
        ws3.destroy();
        wredis.disconnect();
      });
      await w.ready;
      return w;
    },
    spawnWorker(extra = {}) {
      return h.spawnFluxq(['worker'], extra, /worker ready/);
    },
    async spawnFluxq(args, extra, ready) {
      const proc = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
        cwd: REPO,
        env: { ...process.env, ...env, LOG_LEVEL: 'info', ...extra },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(proc);
      const lines: string[] = [];
      const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
      let buf = '';
      const onData = (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push(line);
          for (const w of [...waiters]) {
            if (w.re.test(line)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(line);
            }
          }
        }
      };
      proc.stderr?.on('data', onData);
      proc.stdout?.on('data', onData);
      const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
      exited.then(() => children.delete(proc));
      const wp: WorkerProcess = {
        proc,
        lines,
        exited,
        kill: (sig = 'SIGKILL') => proc.kill(sig),
        waitForLine: (re, timeoutMs = 20_000) => {
          const found = lines.find((l) => re.test(l));
          if (found) return Promise.resolve(found);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`)), timeoutMs);
            waiters.push({ re, resolve: (l) => (clearTimeout(timer), resolve(l)) });
            exited.then((c) => {
              clearTimeout(timer);
              reject(new Error(`worker exited (${c}) before a line matching ${re}; last lines:\n${lines.slice(-10).join('\n')}`));
            });
          });
        },
      };
      await wp.waitForLine(ready);
      return wp;
    },
    async cli(args, o = {}) {
      const proc = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
        cwd: o.cwd ?? REPO,
        env: { ...process.env, ...env, ...o.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(proc);
      let stdout = '';
      let stderr = '';
      proc.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
      proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      proc.stdin?.end(o.input ?? '');
      const timer = setTimeout(() => proc.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      const [code, sig] = (await once(proc, 'exit')) as [number | null, string | null];
      clearTimeout(timer);
      children.delete(proc);
      return { code: code ?? (sig ? 128 : -1), stdout, stderr };
    },
    async events() {
      const entries = (await redis.xrange(`${prefix}:events`, '-', '+')) as [string, string[]][];
      return entries.map((e) => parseEventEntry(e)).filter((e): e is FluxqEvent => e !== undefined);
    },
    async listObjects(p = '') {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: p, ContinuationToken: token }));
        for (const o of res.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
      return keys.sort();
    },
    async getObject(key) {
      const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return { bytes: Buffer.from((await res.Body?.transformToByteArray()) ?? []), contentType: res.ContentType, metadata: res.Metadata ?? {} };
    },
    async headObject(key) {
      try {
        const res = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { contentType: res.ContentType, metadata: res.Metadata ?? {} };
      } catch {
        return undefined;
      }
    },
    async close() {
      const running = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
      for (const c of running) c.kill('SIGKILL');
      await Promise.all(running.map((c) => once(c, 'exit').catch(() => undefined)));
      for (const close of closers.reverse()) await close().catch(() => undefined);
      s3.destroy();
      redis.disconnect();
      await Promise.all([fake.close(), s3server.close()]);
      await rm(s3server.directory, { recursive: true, force: true }).catch(() => undefined);
    },
  };
  if (t) t.after(() => h.close());
  return h;
}

/** Create another bucket on the harness's s3rver. */
export async function createBucket(h: Harness, name: string): Promise<void> {
  await h.s3.send(new CreateBucketCommand({ Bucket: name }));
}

export { waitFor };
