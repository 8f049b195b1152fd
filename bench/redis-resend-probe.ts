/**
 * A reproduction for a finding of `npm run soak` (see bench/SOAK.md): does a worker-role
 * Redis connection (src/shared/redis.ts createRedis, role 'worker') apply a
 * non-idempotent Lua script twice when Redis is restarted (SIGTERM, AOF
 * appendfsync always) while the script is in flight?
 *
 * 16 loops run a one-line HINCRBY script back to back while the private redis-server is
 * restarted three times. Every reply received is counted. If the counter in Redis ends
 * higher than the replies, scripts that Redis executed (and persisted) but whose reply
 * was lost were executed again: ioredis re-sends unanswered commands after a reconnect
 * (autoResendUnfulfilledCommands, on by default).
 *
 *   npx tsx bench/redis-resend-probe.ts      # prints {"repliesReceived","counterInRedis","appliedTwice"}
 */
import type { Redis } from 'ioredis';
import { startLocalRedis } from '../src/demo/local-redis.js';
import { loadConfig } from '../src/shared/config.js';
import { createRedis } from '../src/shared/redis.js';
import { sleep, withTimeout } from './util.js';

const redis = await startLocalRedis({ appendonly: true });
const client = createRedis(loadConfig({ REDIS_URL: redis.url }, 'producer'), { role: 'worker' }) as Redis;
client.on('error', () => undefined);
client.defineCommand('probeIncr', { numberOfKeys: 1, lua: "return redis.call('HINCRBY', KEYS[1], 'started', 1)" });
const scripted = client as Redis & { probeIncr(key: string): Promise<number> };
let replies = 0;
let stop = false;
try {
  const loops = Array.from({ length: 16 }, async () => {
    while (!stop) {
      await scripted.probeIncr('probe:record');
      replies++;
    }
  });
  await sleep(500);
  for (let i = 0; i < 3; i++) {
    await redis.restart();
    await sleep(500);
  }
  stop = true;
  await withTimeout(Promise.all(loops), 20_000, 'the loops to finish');
  const counter = Number(await client.hget('probe:record', 'started'));
  console.log(JSON.stringify({ restarts: 3, repliesReceived: replies, counterInRedis: counter, appliedTwice: counter - replies }));
} finally {
  client.disconnect();
  await redis.stop();
}
