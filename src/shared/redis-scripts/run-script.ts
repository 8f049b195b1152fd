import type { RedisClient } from '../redis.js';
import type { RedisScript } from './load-script.js';

/**
 * The one way fluxq runs a Redis script: `runScript(redis, script, keys, args)` defines
 * the script on the client the first time (ioredis then sends EVALSHA, falling back to
 * EVAL once per server), passes the keys by name in the order the script declares (Redis
 * Cluster needs every key declared; they share the prefix's hash tag), the options as one
 * JSON table in ARGV[1], and decodes the JSON table the script returns.
 *
 * Numbers travel as their JavaScript string form, exactly as ARGV would carry them: Lua
 * never reformats one (`tonumber` where it counts). Lone UTF-16 surrogates become U+FFFD,
 * as ioredis would write them, because cjson refuses them. Options left `undefined` are
 * absent (nil) in Lua.
 */
const defined = new WeakMap<RedisClient, Set<string>>();

function define(redis: RedisClient, script: RedisScript<string>): void {
  let names = defined.get(redis);
  if (!names) defined.set(redis, (names = new Set()));
  if (names.has(script.command)) return;
  redis.defineCommand(script.command, { numberOfKeys: script.keyNames.length, lua: script.lua });
  names.add(script.command);
}

/** ARGV[1]: the options as one JSON object (see above). */
export function encodeScriptArgs(args: object): string {
  return JSON.stringify(args, (_key, value: unknown) => {
    if (typeof value === 'number') return String(value);
    if (typeof value === 'string') return value.replace(/\p{Cs}/gu, '\uFFFD');
    return value;
  });
}

export async function runScript<K extends string, R>(redis: RedisClient, script: RedisScript<K>, keys: Readonly<Record<K, string>>, args: object): Promise<R> {
  define(redis, script);
  const argv = [...script.keyNames.map((k) => keys[k]), encodeScriptArgs(args)];
  const command = (redis as unknown as Record<string, (...a: string[]) => Promise<string>>)[script.command] as (...a: string[]) => Promise<string>;
  const reply = await command.apply(redis, argv);
  return JSON.parse(reply) as R;
}
