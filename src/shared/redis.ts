import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';
import { QueueUnavailableError } from './errors.js';

export type RedisClient = Redis | Cluster;

/**
 * What the connection is for. Workers (BullMQ Worker, QueueEvents) need
 * `maxRetriesPerRequest: null` and keep commands while reconnecting. Producers (CLI,
 * library, API) fail fast: no offline queue, so an enqueue while Redis is down throws
 * at once instead of buffering silently.
 */
export type RedisRole = 'worker' | 'producer';

export interface CreateRedisOptions {
  role: RedisRole;
  /** CLIENT SETNAME, to see who is connected in `CLIENT LIST`. */
  connectionName?: string;
}

function baseOptions(role: RedisRole, connectionName?: string): RedisOptions {
  return {
    connectionName,
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    connectTimeout: 5000,
    // Reconnect forever with a capped backoff: a Redis restart is an outage, not an end.
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 6), 5000),
    // rediss:// URLs turn TLS on by themselves; passwords come from the URL.
  };
}

export function createRedis(config: Config, opts: CreateRedisOptions): RedisClient {
  const base = baseOptions(opts.role, opts.connectionName);
  if (config.redis.cluster) {
    const nodes = config.redis.urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    const first = new URL(config.redis.urls[0] ?? 'redis://127.0.0.1:6379');
    return new Cluster(nodes, {
      enableOfflineQueue: base.enableOfflineQueue,
      maxRedirections: 16,
      clusterRetryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 6), 5000),
      redisOptions: {
        ...base,
        username: first.username ? decodeURIComponent(first.username) : undefined,
        password: first.password ? decodeURIComponent(first.password) : undefined,
        tls: first.protocol === 'rediss:' ? {} : undefined,
      },
    });
  }
  return new Redis(config.redis.urls[0] ?? 'redis://127.0.0.1:6379', base);
}

/** Where Redis is, for error messages: the URL without its password. */
export function describeRedis(config: Config): string {
  return config.redis.urls
    .map((u) => {
      try {
        const url = new URL(u);
        url.password = url.password ? '***' : '';
        return url.toString().replace(/\/$/, '');
      } catch {
        return 'redis';
      }
    })
    .join(',');
}

/**
 * Wait until the client is connected, or throw QueueUnavailableError after `timeoutMs`
 * naming where Redis was expected. Producers call this before their first command.
 */
export async function waitForRedis(client: RedisClient, where: string, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return;
  let onError: ((err: Error) => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err?: Error) => {
        cleanup();
        const why = err ? ` (${(err as NodeJS.ErrnoException).code ?? err.message})` : '';
        reject(new QueueUnavailableError(`Redis at ${where} is unreachable${why}; nothing was enqueued. Check REDIS_URL and that Redis is running.`));
      };
      // Fail on the first connection error: a producer does not wait, nor buffer.
      onError = (err: Error) => fail(err);
      client.on('error', onError);
      const timer = setTimeout(() => fail(), timeoutMs);
      const onReady = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearTimeout(timer);
        client.off('ready', onReady);
      };
      client.once('ready', onReady);
      if (client.status === 'ready') onReady();
    });
  } finally {
    if (onError) client.off('error', onError);
  }
}
