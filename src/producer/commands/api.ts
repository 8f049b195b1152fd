import { loadConfig } from '../../shared/config.js';
import { EXIT } from '../../shared/exit-codes.js';
import { createLogger } from '../../shared/logger.js';
import { createS3Client } from '../../shared/s3.js';
import type { ServiceIO } from '../../shared/service-io.js';
import { startTracing } from '../../shared/tracing.js';
import { buildApi } from '../api/server.js';
import { createProducer } from '../producer.js';

/** `fluxq api`: the HTTP API until SIGTERM/SIGINT. Without API_TOKEN it refuses to start (exit 2) unless API_INSECURE=1. */
export async function apiCommand(io: ServiceIO): Promise<number> {
  const config = loadConfig(io.env, 'api');
  const logger = createLogger({ level: config.logLevel, name: 'fluxq-api' });
  const s3 = createS3Client(config);
  const tracing = await startTracing(config, 'api');
  const producer = createProducer({ config, logger, s3, ...(tracing ? { telemetry: tracing.telemetry } : {}) });
  const api = await buildApi({ config, producer, s3, logger });
  const address = await api.app.listen({ host: config.api.host, port: config.api.port });
  if (!config.api.token) logger.warn('API_INSECURE=1: the API runs WITHOUT authentication');
  logger.info({ address, dashboard: `${address}/admin/queues` }, 'fluxq api listening');
  const signal = await io.stopSignal;
  logger.info({ signal }, 'stop requested');
  await api.close();
  await producer.close();
  s3.destroy();
  await tracing?.shutdown();
  logger.flush();
  return EXIT.ok;
}
