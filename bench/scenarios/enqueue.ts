/**
 * Scenario 1 (1a–1d): enqueue rates through the library and the CLI, the CLI's start-up
 * cost and Redis memory per waiting job.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f0, f2, pass, type Row } from '../report.js';
import { CLI, newProducer, QUEUE, REPO, RUN_ID, usedMemory, type Rig, type Size } from '../rig.js';
import { median, withTimeout } from '../util.js';

export interface EnqueueOptions {
  /** N, `--enqueue-jobs`. */
  jobs: number;
  repeat: number;
  size: Size;
}

export interface EnqueueFigures {
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

export async function enqueueScenario(rig: Rig, o: EnqueueOptions): Promise<EnqueueFigures> {
  const N = o.jobs;
  const fig: EnqueueFigures = { jobs: N, libRates: [], memPerJob: [], cliSeconds: [], helpSeconds: [], cliRates: [], cliRatesNoStartup: [] };
  const baseEnv = { ...process.env, REDIS_URL: rig.redis.url, QUEUE_NAME: QUEUE, LOG_LEVEL: 'warn', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  // Library enqueueBulk: a warmed producer, only the call timed.
  for (let r = 1; r <= o.repeat; r++) {
    const producer = newProducer(rig, `bench-enq-lib${r}-${RUN_ID}`);
    await producer.enqueueBulk(
      Array.from({ length: 20 }, (_, i) => ({ id: `warm-${i}`, prompt: `warm ${i}`, ...o.size })),
      { batch: 'warm' },
    );
    const requests = Array.from({ length: N }, (_, i) => ({ id: `e-${i}`, prompt: `enqueue bench ${i}`, ...o.size }));
    const mem0 = await usedMemory(rig.benchRedis);
    const t0 = performance.now();
    const res = await withTimeout(producer.enqueueBulk(requests, { batch: 'enq' }), 120_000, 'library enqueueBulk');
    const dt = (performance.now() - t0) / 1000;
    const mem1 = await usedMemory(rig.benchRedis);
    if (res.created !== N) throw new Error(`enqueueBulk created ${res.created} of ${N}`);
    fig.libRates.push(N / dt);
    fig.memPerJob.push((mem1 - mem0) / N);
    await producer.close();
    rig.log(`enqueueBulk ${r}/${o.repeat}: ${(N / dt).toFixed(0)} jobs/s, ${((mem1 - mem0) / N).toFixed(0)} B/job`);
  }
  // Start-up cost: `fluxq --help` (loads the same static imports as `enqueue`).
  await timeProcess(['--import', 'tsx', CLI, '--help'], baseEnv, 60_000); // tsx cache warm-up, not counted
  for (let r = 1; r <= o.repeat; r++) fig.helpSeconds.push((await timeProcess(['--import', 'tsx', CLI, '--help'], baseEnv, 60_000)).seconds);
  const file = join(rig.tmp, 'enqueue.jsonl');
  await writeFile(file, Array.from({ length: N }, (_, i) => JSON.stringify({ prompt: `cli bench ${i}`, ...o.size })).join('\n') + '\n');
  const help = median(fig.helpSeconds) ?? 0;
  for (let r = 1; r <= o.repeat; r++) {
    const out = await timeProcess(['--import', 'tsx', CLI, 'enqueue', file, '--batch', `cli${r}`], { ...baseEnv, QUEUE_PREFIX: `bench-enq-cli${r}-${RUN_ID}` }, 180_000);
    if (out.code !== 0 || !out.stdout.includes(`${N} new`)) throw new Error(`fluxq enqueue failed (exit ${out.code}): ${out.stdout}${out.stderr}`.slice(0, 2000));
    fig.cliSeconds.push(out.seconds);
    fig.cliRates.push(N / out.seconds);
    fig.cliRatesNoStartup.push(N / Math.max(0.001, out.seconds - help));
    rig.log(`fluxq enqueue ${r}/${o.repeat}: ${out.seconds.toFixed(2)} s (${(N / out.seconds).toFixed(0)} jobs/s; --help ${help.toFixed(2)} s)`);
  }
  return fig;
}

export function enqueueRows(enq: EnqueueFigures, o: EnqueueOptions): Row[] {
  const lib = median(enq.libRates);
  const cli = median(enq.cliRates);
  const cliNs = median(enq.cliRatesNoStartup);
  const help = median(enq.helpSeconds);
  const rep = o.repeat > 1 ? `, median of ${o.repeat}` : '';
  const list = (v: number[], fmt: (n: number) => string) => (v.length > 1 ? ` [${v.map(fmt).join(' ')}]` : '');
  return [
    { id: '1a', figure: 'enqueue, library enqueueBulk (jobs/s)', params: `${o.jobs} jobs, the call only${rep}${list(enq.libRates, f0)}`, fluxq: f0(lib), baseline: '', ratio: '', target: '≥ 5000', result: pass(lib !== undefined && lib >= 5000) },
    { id: '1b', figure: 'enqueue, CLI end to end (jobs/s)', params: `${o.jobs}-line JSONL, process start included${rep} [${enq.cliSeconds.map(f2).join(' ')} s]`, fluxq: f0(cli), baseline: '', ratio: '', target: '≥ 2000', result: pass(cli !== undefined && cli >= 2000) },
    { id: '1c', figure: 'enqueue, CLI without start-up (jobs/s)', params: `minus \`fluxq --help\` = ${f2(help)} s`, fluxq: f0(cliNs), baseline: '', ratio: '', target: '(≥ 2000)', result: pass(cliNs !== undefined && cliNs >= 2000) },
    { id: '1d', figure: 'Redis memory per waiting job (bytes)', params: `INFO used_memory Δ / ${o.jobs}${rep}${list(enq.memPerJob, f0)}`, fluxq: f0(median(enq.memPerJob)), baseline: '', ratio: '', target: '', result: '' },
  ];
}

export function enqueueJson(enq: EnqueueFigures) {
  return { ...enq, libMedian: median(enq.libRates), cliMedian: median(enq.cliRates), cliNoStartupMedian: median(enq.cliRatesNoStartup), helpMedianS: median(enq.helpSeconds), memPerJobMedian: median(enq.memPerJob) };
}
