/**
 * A fluxq worker built exactly as src/worker/run-worker.ts builds it (same config, Redis
 * role and name, S3 sockets, FluxClient pool), run in this process so that its event
 * loop can be watched with perf_hooks.monitorEventLoopDelay().
 *
 * Env: the worker's. stdin commands: {"cmd":"start"} resets and enables the histogram;
 * {"cmd":"stop"} disables it and answers {"event":"eld","p50Ms","p99Ms","maxMs","meanMs","count"};
 * {"cmd":"exit"} (or SIGTERM, or stdin closing) drains the worker like `fluxq worker` and exits 0.
 * Prints {"event":"ready"} when the worker is ready.
 */
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

let exiting = false;
async function exit(): Promise<void> {
  if (exiting) return;
  exiting = true;
  eld.disable();
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
  } else if (cmd.cmd === 'stop') {
    eld.disable();
    emit({ event: 'eld', p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max), meanMs: ms(eld.mean), count: eld.count });
  } else if (cmd.cmd === 'exit') void exit();
});
process.stdin.on('end', () => void exit());
process.on('SIGTERM', () => void exit());
await fw.ready;
emit({ event: 'ready', pid: process.pid });
