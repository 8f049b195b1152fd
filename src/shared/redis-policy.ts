import { ConfigError } from './errors.js';
import type { Logger } from './logger.js';
import type { RedisClient } from './redis.js';

/**
 * BullMQ needs `maxmemory-policy noeviction`: under any other policy a full Redis evicts
 * job keys and jobs vanish. A worker refuses to start on such a Redis (exit 2). Where
 * CONFIG is disabled (some managed Redis), it cannot tell, and says so loudly.
 */
export async function assertNoEviction(redis: RedisClient, log: Logger): Promise<void> {
  let policy: string | undefined;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    policy = reply[1];
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not read Redis maxmemory-policy (CONFIG disabled?): make sure it is noeviction, or jobs can be evicted');
    return;
  }
  if (policy && policy !== 'noeviction') {
    throw new ConfigError([
      `Redis maxmemory-policy is ${policy}; fluxq needs noeviction (under ${policy} a full Redis evicts job keys and jobs are lost): run CONFIG SET maxmemory-policy noeviction or set it in redis.conf`,
    ]);
  }
}
