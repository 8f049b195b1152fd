import type { RedisClient } from '../redis.js';
import { loadScript } from './load-script.js';
import { runScript } from './run-script.js';

/** Setting an unusable webhook outbox entry aside (lua/dead-letter-webhook-entry.lua). */

export const DEAD_LETTER_WEBHOOK_ENTRY = loadScript('dead-letter-webhook-entry', ['relaying', 'dead']);

export interface DeadLetterKeys {
  /** The relaying list the entry is in, and the dead-letter list. */
  relaying: string;
  dead: string;
}

export interface DeadLetterArgs {
  entry: string;
  /** How many entries the dead-letter list keeps (the newest). */
  keep: number;
}

/** False when another relay moved the entry first. */
export async function deadLetterWebhookEntry(redis: RedisClient, keys: DeadLetterKeys, args: DeadLetterArgs): Promise<boolean> {
  return (await runScript<keyof DeadLetterKeys, { moved: boolean }>(redis, DEAD_LETTER_WEBHOOK_ENTRY, keys, args)).moved;
}
