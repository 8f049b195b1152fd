import { HeadBucketCommand } from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { waitForRedis } from '../../shared/redis.js';
import type { ApiDeps } from './api-deps.js';

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** `GET /healthz`: Redis and S3 reachability; 503 names the failing one with its error. */
export function healthRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/healthz', async (_req, reply) => {
    const describe = (err: unknown) => {
      const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      return `${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message || (e.$metadata?.httpStatusCode ? `HTTP ${e.$metadata.httpStatusCode}` : 'unreachable')}`;
    };
    const [redis, s3] = await Promise.all([
      within(waitForRedis(deps.producer.redis, 'Redis', 1500).then(() => deps.producer.redis.ping()), 2000, 'Redis').then(() => 'ok', describe),
      within(deps.s3.send(new HeadBucketCommand({ Bucket: deps.config.s3.bucket ?? '' })), 3000, 'S3').then(() => 'ok', describe),
    ]);
    return reply.code(redis === 'ok' && s3 === 'ok' ? 200 : 503).send({ redis, s3 });
  });
}
