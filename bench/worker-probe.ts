/**
 * A fluxq worker built exactly as src/worker/run-worker.ts builds it (same config, Redis
 * role and name, S3 sockets, FluxClient pool), run in this process so that its event
 * loop can be watched with perf_hooks.monitorEventLoopDelay().
 *
 * Env: the worker's. stdin commands: {"cmd":"start"} resets and enables the histogram;
 * {"cmd":"stop"} disables it and answers {"event":"eld","p50Ms","p99Ms","maxMs","meanMs","count","stalls"};
 * {"cmd":"exit"} (or SIGTERM, or stdin closing) drains the worker like `fluxq worker` and exits 0.
 * Prints {"event":"ready"} when the worker is ready.
 *
 * `stalls`: the longest event-loop stalls seen by a 5 ms interval timer (a tick later than
 * STALL_MS), each with its monotonic start and end in µs (`process.hrtime`, the clock of
 * a `--cpu-prof` profile's startTime/timeDeltas, so the stall can be found in the
 * profile) and, from /proc/self/task/<pid>/schedstat, how much of it the main thread
 * spent running (blocking work) and waiting for a core on the run queue (starved).
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../src/shared/config.js';
import { createLogger } from '../src/shared/logger.js';
import { createRedis } from '../src/shared/redis.js';
import { createS3Client } from '../src/shared/s3.js';
import { FluxClient } from '../src/worker/flux-client.js';
import { createWorker } from '../src/worker/worker.js';
import { emit, onStdinCommands } from './util.js';

const config = loadConfig(process.env, 'worker');
const logger = createLogger({ level: config.logLevel, name: 'fluxq-worker' });
const redis = createRedis(config, { role: 'worker', connectionName: 'fluxq-worker' });
redis.on('error', () => undefined);
const s3 = createS3Client(config, { maxSockets: config.worker.concurrency * 2 });
const flux = FluxClient.fromConfig(config);
const fw = createWorker({ config, redis, s3, flux, logger });
const eld = monitorEventLoopDelay({ resolution: 5 });
const ms = (ns: number) => ns / 1e6;

// ---- stall recorder
const TICK_MS = 5;
const STALL_MS = Number(process.env.PROBE_STALL_MS ?? 20);
const KEEP_STALLS = 20;
interface Stall {
  startUs: number;
  endUs: number;
  gapMs: number;
  runMs: number | undefined;
  runQueueMs: number | undefined;
}
const schedPath = `/proc/self/task/${process.pid}/schedstat`;
/** [ns on a CPU, ns runnable on a run queue] of the main thread, or undefined off Linux. */
const sched = (): [number, number] | undefined => {
  try {
    const [run, wait] = readFileSync(schedPath, 'latin1').split(' ');
    return [Number(run), Number(wait)];
  } catch {
    return undefined;
  }
};
let stalls: Stall[] = [];
let stallTimer: NodeJS.Timeout | undefined;
function startStalls(): void {
  stalls = [];
  clearInterval(stallTimer);
  let lastUs = Number(process.hrtime.bigint() / 1000n);
  let lastSched = sched();
  stallTimer = setInterval(() => {
    const nowUs = Number(process.hrtime.bigint() / 1000n);
    const s = sched();
    const gapMs = (nowUs - lastUs) / 1000 - TICK_MS;
    if (gapMs > STALL_MS) {
      stalls.push({
        startUs: lastUs,
        endUs: nowUs,
        gapMs,
        runMs: s && lastSched ? (s[0] - lastSched[0]) / 1e6 : undefined,
        runQueueMs: s && lastSched ? (s[1] - lastSched[1]) / 1e6 : undefined,
      });
      if (stalls.length > 4 * KEEP_STALLS) stalls = stalls.sort((a, b) => b.gapMs - a.gapMs).slice(0, KEEP_STALLS);
    }
    lastUs = nowUs;
    lastSched = s;
  }, TICK_MS);
}
function stopStalls(): { count: number; top: Stall[] } {
  clearInterval(stallTimer);
  stallTimer = undefined;
  return { count: stalls.length, top: [...stalls].sort((a, b) => b.gapMs - a.gapMs).slice(0, KEEP_STALLS) };
}

let exiting = false;
async function exit(): Promise<void> {
  if (exiting) return;
  exiting = true;
  eld.disable();
  clearInterval(stallTimer);
  await fw.close();
  s3.destroy();
  await redis.quit().catch(() => redis.disconnect());
  logger.flush();
  process.exit(0);
}

onStdinCommands((cmd) => {
  if (cmd.cmd === 'start') {
    eld.reset();
    eld.enable();
    startStalls();
  } else if (cmd.cmd === 'stop') {
    eld.disable();
    const st = stopStalls();
    emit({ event: 'eld', p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max), meanMs: ms(eld.mean), count: eld.count, stallCount: st.count, stalls: st.top });
  } else if (cmd.cmd === 'exit') void exit();
});
process.stdin.on('end', () => void exit());
process.on('SIGTERM', () => void exit());
await fw.ready;
emit({ event: 'ready', pid: process.pid });
