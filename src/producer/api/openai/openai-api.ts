import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { QueueUnavailableError, ValidationError } from '../../../shared/errors.js';
import type { ApiDeps } from '../api-deps.js';
import { requestTenant } from '../auth.js';
import { OpenAiBatchRecords } from './batch-record.js';
import { BatchRunner } from './batch-runner.js';
import { batchRoutes } from './batches.js';
import { FileStore } from './file-store.js';
import { fileRoutes } from './files.js';
import { imagesRoutes } from './images.js';
import type { EventHub } from '../event-hub.js';
import { JobFinalWaiter } from './job-final-waiter.js';
import { invalidRequest, OpenAiError } from './openai-error.js';

/**
 * The OpenAI-compatible surface under `/openai/v1` (SPEC §10), as an encapsulated Fastify
 * plugin: its own error shape `{ error: { message, type, param, code } }`, its own
 * multipart parser, the images endpoint, files and batches. `hub` is the process's one
 * events reader. Tenant tokens are API keys here too: a tenant's requests and batches are its own.
 */
export interface OpenAiApi {
  register(app: FastifyInstance): Promise<void>;
  close(): Promise<void>;
}

/** The caller's tenant: a tenant token's (API_TOKENS), undefined for the operator's API_TOKEN. */
const tenantOf = (req: unknown) => requestTenant(req as FastifyRequest);

export function openAiApi(deps: ApiDeps, hub: Pick<EventHub, 'subscribe'>): OpenAiApi {
  const { config, producer, s3 } = deps;
  const log = deps.logger.child({ component: 'openai-api' });
  const files = new FileStore({ s3, bucket: config.s3.bucket ?? '', keyPrefix: config.s3.keyPrefix });
  const records = new OpenAiBatchRecords(producer.redis, producer.keys);
  const runner = new BatchRunner({ config, producer, files, records, log });
  const waiter = new JobFinalWaiter({ hub, redis: producer.redis, streamKey: producer.keys.events, getJob: (id) => producer.getJob(id) });

  return {
    async register(app) {
      await app.register(
        async (scope) => {
          scope.setErrorHandler((err: FastifyError, req, reply) => {
            let e: OpenAiError;
            if (err instanceof OpenAiError) e = err;
            else if (err instanceof ValidationError) e = invalidRequest(err.details, err.message);
            else if (err instanceof QueueUnavailableError) e = new OpenAiError(503, err.message, { code: 'queue_unavailable' });
            else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new OpenAiError(413, `request body is larger than API_BODY_LIMIT_BYTES (${config.api.bodyLimitBytes} bytes)`, { code: 'body_too_large' });
            else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') e = new OpenAiError(415, 'send JSON (Content-Type: application/json), or multipart/form-data to /files', { code: 'unsupported_media_type' });
            else if (err.statusCode === 400 || err instanceof SyntaxError) e = new OpenAiError(400, `the body is not valid JSON (${err.message})`, { code: 'invalid_json' });
            else if (err.statusCode && err.statusCode < 500) e = new OpenAiError(err.statusCode, err.message);
            else {
              log.error({ err, method: req.method, path: req.url.split('?')[0] }, 'request failed');
              e = new OpenAiError(500, 'internal error; see the API log', { code: 'internal_error' });
            }
            if (e.shouldRetry !== undefined) void reply.header('x-should-retry', String(e.shouldRetry));
            return reply.code(e.status).send(e.body());
          });
          scope.setNotFoundHandler((req, reply) => {
            const e = new OpenAiError(404, `fluxq serves no ${req.method} ${req.url.split('?')[0]}`, { code: 'unknown_route' });
            return reply.code(404).send(e.body());
          });
          imagesRoutes(scope, deps, waiter, tenantOf);
          fileRoutes(scope, files, s3, config.api.presignTtlS, tenantOf);
          batchRoutes(scope, { config, files, records, runner, tenantOf });
        },
        { prefix: '/openai/v1' },
      );
      runner.start();
    },
    async close() {
      await runner.stop();
      await waiter.close();
    },
  };
}
