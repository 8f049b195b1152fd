import { loadConfig } from '../shared/config.js';
import { EXIT } from '../shared/exit-codes.js';
import { createLogger } from '../shared/logger.js';
import { createRedis, describeRedis } from '../shared/redis.js';
import { assertNoEviction } from '../shared/redis-policy.js';
import { createS3Client } from '../shared/s3.js';
import type { ServiceIO } from '../shared/service-io.js';
import { startTracing } from '../shared/tracing.js';
import { FluxClient } from './flux-client.js';
import { WorkerMetrics, serveMetrics } from './metrics.js';
import { createWorker } from './worker.js';

/**
 * `fluxq worker`: build a worker from the environment, run it until asked to stop,
 * then drain within SHUTDOWN_TIMEOUT_MS and release every connection. Exit 0.
 */
export async function runWorker(io: ServiceIO): Promise<number> {
  const config = loadConfig(io.env, 'worker');
  const logger = createLogger({ level: config.logLevel, name: 'fluxq-worker' });
  const redis = createRedis(config, { role: 'worker', connectionName: 'fluxq-worker' });
  let lastRedisError = '';
  redis.on('error', (err) => {
    if (err.message !== lastRedisError) logger.warn({ err: err.message, redis: describeRedis(config) }, 'redis connection problem; reconnecting');
    lastRedisError = err.message;
  });
  redis.on('ready', () => {
    if (lastRedisError) logger.info('redis connection is back');
    lastRedisError = '';
  });
  // Before BullMQ connects (and prints its own warnings): refuse an evicting Redis.
  try {
    await assertNoEviction(redis, logger);
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const s3 = createS3Client(config, { maxSockets: config.worker.concurrency * 2 });
  const flux = FluxClient.fromConfig(config);
  const metrics = config.worker.metricsPort !== undefined ? new WorkerMetrics() : undefined;
  const tracing = await startTracing(config, 'worker');
  const fw = createWorker({ config, redis, s3, flux, logger, ...(metrics ? { metrics } : {}), ...(tracing ? { tracing } : {}) });
  try {
    await fw.ready;
  } catch (err) {
    // Cannot start (e.g. an evicting Redis): release everything, then let the CLI report it.
    await fw.close().catch(() => undefined);
    s3.destroy();
    redis.disconnect();
    throw err;
  }
  const served = metrics && config.worker.metricsPort !== undefined ? await serveMetrics(metrics.registry, config.worker.metricsPort, config.api.host) : undefined;
  if (served) logger.info({ port: served.port }, 'worker metrics at /metrics');
  const signal = await io.stopSignal;
  logger.info({ signal }, 'stop requested');
  await fw.close();
  await new Promise((r) => (served ? served.server.close(r) : r(undefined)));
  s3.destroy();
  await redis.quit().catch(() => redis.disconnect());
  logger.flush();
  return EXIT.ok;
}
