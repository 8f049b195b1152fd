import cookie from '@fastify/cookie';
import { Queue } from 'bullmq';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { QueueUnavailableError, ValidationError } from '../../shared/errors.js';
import type { ApiDeps } from './api-deps.js';
import { authHook } from './auth.js';
import { batchRoutes } from './routes-batches.js';
import { startEventHub, type EventHub, type EventHubOptions } from './event-hub.js';
import { eventRoutes, type EventStreamOptions } from './routes-events.js';
import { dashboardRoutes } from './dashboard.js';
import { fleetMetricsRoute } from './fleet-metrics.js';
import { galleryRoutes } from './gallery.js';
import { healthRoutes } from './health.js';
import { jobRoutes } from './routes-jobs.js';
import { openAiApi } from './openai/openai-api.js';

export interface Api {
  app: FastifyInstance;
  /** The process's one reader of the events stream: subscribe to wait on jobs without polling. */
  hub: EventHub;
  close(): Promise<void>;
}

export interface ApiOptions {
  /** The SSE routes (keep-alive interval, slow-client bound). */
  events?: EventStreamOptions;
  /** The event hub (block time, buffers). */
  hub?: EventHubOptions;
}

/**
 * The HTTP API (SPEC §6) on Fastify: JSON in and out, Bearer auth on every route but
 * `/healthz`, errors as `{ error, details? }`. Built from plain parameters; `fluxq api`
 * wires it to the environment and a port.
 */
export async function buildApi(deps: ApiDeps, opts: ApiOptions = {}): Promise<Api> {
  const { config, producer, logger } = deps;
  const log = logger.child({ component: 'api' });
  // Prototype keys are parsed as plain own properties (JSON.parse pollutes nothing) so
  // that validation refuses them naming their path, like the library and the CLI do.
  const app = Fastify({ bodyLimit: config.api.bodyLimitBytes, logger: false, trustProxy: false, onProtoPoisoning: 'ignore', onConstructorPoisoning: 'ignore' });
  const webhookQueue = new Queue(producer.keys.webhookQueueName, { connection: producer.redis, prefix: config.queue.prefix });
  webhookQueue.on('error', () => undefined);
  // Positioned before the first client can connect: a live client misses nothing after its request.
  const hub = await startEventHub({ redis: producer.redis, streamKey: producer.keys.events, logger }, opts.hub, 2000);

  await app.register(cookie);
  app.addHook(
    'onRequest',
    authHook({ token: config.api.insecure && !config.api.token ? undefined : config.api.token, tenantTokens: config.api.tenantTokens, secureCookie: false }),
  );

  app.addHook('onResponse', async (req, reply) => {
    // The path only: queries can carry the page login token.
    log.debug({ method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ValidationError) return reply.code(400).send({ error: err.message, details: err.details });
    if (err instanceof QueueUnavailableError) return reply.code(503).send({ error: err.message });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ error: `request body is larger than API_BODY_LIMIT_BYTES (${config.api.bodyLimitBytes} bytes)` });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.code(415).send({ error: 'send JSON: Content-Type: application/json' });
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return reply.code(400).send({ error: 'the body is empty; send a JSON object' });
    if (err.statusCode === 400 || err instanceof SyntaxError) return reply.code(400).send({ error: `the body is not valid JSON (${err.message})` });
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ error: err.message });
    log.error({ err, method: req.method, path: req.url.split('?')[0] }, 'request failed');
    return reply.code(500).send({ error: 'internal error; see the API log' });
  });
  // Open event streams end before the server waits for its requests to finish.
  app.addHook('preClose', async () => hub.close());
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` }));

  healthRoutes(app, deps);
  jobRoutes(app, deps);
  batchRoutes(app, deps);
  eventRoutes(app, hub, logger, opts.events);
  fleetMetricsRoute(app, deps, [webhookQueue]);
  galleryRoutes(app, deps);
  const openai = openAiApi(deps, hub);
  await openai.register(app);
  await dashboardRoutes(app, [producer.queue as Queue, webhookQueue]);
  await app.ready();
  return {
    app,
    hub,
    close: async () => {
      await app.close();
      await openai.close();
      await hub.close();
      await webhookQueue.close().catch(() => undefined);
    },
  };
}
