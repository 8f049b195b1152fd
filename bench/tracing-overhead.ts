/**
 * Tracing on and off (SPEC §9, issue 14): the per-job cost of fluxq's tracing.
 *
 *   npx tsx bench/tracing-overhead.ts [--jobs 300] [--pairs 3] [--concurrency 8]
 *
 * 1. End to end: the same batch of small jobs (256×256, the fake upstream answering at
 *    once, so fluxq's own work dominates) through one real `fluxq worker`, alternately
 *    without an OTLP endpoint (off) and with one (on: the SDK exports every span to a
 *    local sink). Per job: the worker's CPU (from /proc) and the wall time. The figure is
 *    the median of the on/off ratios of the pairs.
 * 2. Off, in isolation: what fluxq's spans cost with no SDK loaded (the API's no-ops): the
 *    time of one no-op `inSpan`, times the spans a job makes, against the off per-job CPU.
 *
 * Nothing is asserted: on a shared machine the end-to-end ratio moves by several percent
 * between runs; bench/README.md says what a run measured. Local and on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createProducer } from '../src/producer/producer.js';
import { loadConfig } from '../src/shared/config.js';
import { inSpan } from '../src/shared/spans.js';
import { startFakeFlux, startLocalRedis, startLocalS3 } from '../src/testing.js';
import { cpuMs } from './proc-stats.js';
import { median } from './util.js';

const { values: flags } = parseArgs({ options: { jobs: { type: 'string', default: '300' }, pairs: { type: 'string', default: '3' }, concurrency: { type: 'string', default: '8' } } });
const JOBS = Number(flags.jobs);
const PAIRS = Number(flags.pairs);
const CONCURRENCY = Number(flags.concurrency);
const REPO = new URL('../', import.meta.url).pathname;
const TSX = import.meta.resolve('tsx');
const BUCKET = 'bench-tracing';
/** Spans fluxq makes per job on the happy path: fluxq.enqueue, fluxq.job, flux.generate, s3.put. */
const SPANS_PER_JOB = 4;

/** An OTLP endpoint that takes everything (counting requests and bytes). */
async function startSink(): Promise<{ url: string; requests: number; bytes: number; close(): Promise<void> }> {
  const sink = { url: '', requests: 0, bytes: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (sink.bytes += c.length));
    req.on('end', () => {
      sink.requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };
  return sink;
}

async function spawnWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', TSX, join(REPO, 'src/cli.ts'), 'worker'], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready in 30 s: ${seen.slice(-500)}`)), 30_000);
    const onData = (c: Buffer) => {
      seen += c.toString();
      if (seen.includes('worker ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited (${code}): ${seen.slice(-500)}`)));
  });
  return child;
}

interface Round {
  tracing: 'off' | 'on';
  cpuMsPerJob: number;
  wallMsPerJob: number;
}

async function round(base: Record<string, string>, tracing: 'off' | 'on', sinkUrl: string, n: number): Promise<Round> {
  const prefix = `bt-${tracing}-${n}`;
  const env = { ...base, QUEUE_PREFIX: prefix, ...(tracing === 'on' ? { OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl } : {}) };
  const worker = await spawnWorker(env);
  const producer = createProducer({ config: loadConfig(env, 'producer') });
  try {
    const batch = `b-${n}`;
    const requests = Array.from({ length: JOBS }, (_, i) => ({ id: `${prefix}-${i}`, prompt: `tracing bench ${i}`, width: 256, height: 256 }));
    const cpu0 = cpuMs(worker.pid ?? 0) ?? 0;
    const t0 = performance.now();
    await producer.enqueueBulk(requests, { batch });
    await producer.waitForBatch(batch, { timeoutMs: 300_000, pollMs: 50 });
    const wall = performance.now() - t0;
    const cpu = (cpuMs(worker.pid ?? 0) ?? 0) - cpu0;
    return { tracing, cpuMsPerJob: cpu / JOBS, wallMsPerJob: wall / JOBS };
  } finally {
    await producer.close();
    worker.kill('SIGTERM');
    await Promise.race([once(worker, 'exit'), new Promise((r) => setTimeout(r, 20_000).unref())]);
    if (worker.exitCode === null) worker.kill('SIGKILL');
  }
}

/** ns per no-op `inSpan` (no tracer provider is registered in this process). */
async function noopSpanNs(): Promise<number> {
  const n = 200_000;
  const attrs = { 'fluxq.job_id': 'j', 'fluxq.attempt': 1 };
  for (let i = 0; i < 10_000; i++) await inSpan('fluxq.job', { attributes: attrs }, async () => i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await inSpan('fluxq.job', { attributes: attrs }, async () => i);
  const emptyT0 = process.hrtime.bigint();
  const empty = async (i: number) => i;
  for (let i = 0; i < n; i++) await empty(i);
  const end = process.hrtime.bigint();
  return (Number(emptyT0 - t0) - Number(end - emptyT0)) / n;
}

async function main(): Promise<void> {
  const [redis, s3, fake, sink] = await Promise.all([startLocalRedis(), startLocalS3({ buckets: [BUCKET] }), startFakeFlux({ latencyMs: 0, entropy: 0.1 }), startSink()]);
  const base: Record<string, string> = {
    REDIS_URL: redis.url,
    FLUX_API_BASE_URL: fake.url,
    FLUX_API_KEY: fake.apiKey,
    ...s3.env(BUCKET),
    WORKER_CONCURRENCY: String(CONCURRENCY),
    LOG_LEVEL: 'info',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const rounds: Round[] = [];
  try {
    // A warm-up round (module cache, s3rver, JIT), not counted.
    await round(base, 'off', sink.url, 0);
    for (let p = 1; p <= PAIRS; p++) {
      // Alternate which goes first, so a drift of the machine's load does not favour one.
      const order: ('off' | 'on')[] = p % 2 ? ['off', 'on'] : ['on', 'off'];
      for (const t of order) {
        const r = await round(base, t, sink.url, p * 10 + (t === 'on' ? 1 : 0));
        rounds.push(r);
        console.log(`pair ${p} tracing ${t}: worker CPU ${r.cpuMsPerJob.toFixed(2)} ms/job, wall ${r.wallMsPerJob.toFixed(2)} ms/job`);
      }
    }
  } finally {
    await Promise.all([fake.close(), s3.close(), sink.close()]);
    await redis.stop();
  }
  const pairs = Array.from({ length: PAIRS }, (_, i) => rounds.slice(2 * i, 2 * i + 2));
  const ratio = (k: 'cpuMsPerJob' | 'wallMsPerJob') =>
    median(pairs.map((pr) => (pr.find((r) => r.tracing === 'on')?.[k] ?? NaN) / (pr.find((r) => r.tracing === 'off')?.[k] ?? NaN))) ?? NaN;
  const offCpu = median(rounds.filter((r) => r.tracing === 'off').map((r) => r.cpuMsPerJob)) ?? NaN;
  const onCpu = median(rounds.filter((r) => r.tracing === 'on').map((r) => r.cpuMsPerJob)) ?? NaN;
  const noop = await noopSpanNs();
  const offUs = (noop * SPANS_PER_JOB) / 1000;
  console.log('');
  console.log(`jobs ${JOBS} × ${PAIRS} pairs, WORKER_CONCURRENCY ${CONCURRENCY}, 256×256, fake upstream latency 0; sink got ${sink.requests} OTLP requests (${(sink.bytes / 1024).toFixed(0)} KiB)`);
  console.log(`worker CPU per job: off ${offCpu.toFixed(2)} ms, on ${onCpu.toFixed(2)} ms; median on/off ratio ${ratio('cpuMsPerJob').toFixed(3)}`);
  console.log(`wall per job: median on/off ratio ${ratio('wallMsPerJob').toFixed(3)}`);
  console.log(`tracing off: one no-op span ${noop.toFixed(0)} ns; ${SPANS_PER_JOB} per job = ${offUs.toFixed(2)} µs/job = ${((offUs / 1000 / offCpu) * 100).toFixed(3)} % of the off per-job worker CPU`);
}

await main();
