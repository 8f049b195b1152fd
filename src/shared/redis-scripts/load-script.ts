import { readFileSync } from 'node:fs';

/**
 * A Redis script read from its `.lua` file in `lua/` (next to this module in `src/` and,
 * copied by `npm run build`, in `dist/`). A line `--- @include "includes/name"` is replaced
 * by `lua/includes/name.lua` (each include at most once per script, nested includes
 * allowed), as BullMQ does with its commands. A header comment names the keys in KEYS
 * order (`KEYS[1] idRecord  …`: the script's own, or an include's that several scripts
 * share); they must be the `keyNames` the TypeScript wrapper declares, so a wrapper
 * passes a keys object by name and never an order kept by hand.
 */
export interface RedisScript<K extends string> {
  /** The file name without `.lua`, e.g. `start-call`. */
  name: string;
  /** The ioredis command it is defined as, e.g. `fluxqStartCall`. */
  command: string;
  /** KEYS in order, as the header declares them. */
  keyNames: readonly K[];
  /** The source with its includes spliced in. */
  lua: string;
}

/** Where the `.lua` files are, relative to this module. */
export const LUA_DIR = new URL('./lua/', import.meta.url);

const INCLUDE = /^--- @include "([\w/-]+)"\s*$/gm;
const KEY_LINE = /^\s*(?:--)?\s*KEYS\[(\d+)\]\s+(\w+)/gm;

export class ScriptFileError extends Error {
  override readonly name = 'ScriptFileError';
  readonly retryable = false;
}

function readLua(relative: string): string {
  try {
    return readFileSync(new URL(`${relative}.lua`, LUA_DIR), 'utf8');
  } catch (err) {
    throw new ScriptFileError(
      `Redis script ${relative}.lua not found under ${LUA_DIR.pathname} (${(err as Error).message}): ` +
        'a build must copy src/shared/redis-scripts/lua to dist/shared/redis-scripts/lua (`npm run build` does)',
    );
  }
}

function splice(source: string, from: string, seen: Set<string>): string {
  return source.replace(INCLUDE, (_line, include: string) => {
    if (seen.has(include)) return `-- (${include} already included)`;
    seen.add(include);
    if (!include.startsWith('includes/')) throw new ScriptFileError(`${from}.lua includes "${include}": includes live in lua/includes/`);
    return splice(readLua(include), include, seen);
  });
}

/** The KEYS names a script's header comments declare, in order. */
export function declaredKeys(source: string): string[] {
  const names: string[] = [];
  for (const m of source.matchAll(KEY_LINE)) {
    const i = Number(m[1]) - 1;
    if (names[i] !== undefined && names[i] !== m[2]) throw new ScriptFileError(`KEYS[${i + 1}] is declared twice: ${names[i]} and ${m[2]}`);
    names[i] = m[2] as string;
  }
  return names;
}

function commandName(name: string): string {
  return `fluxq${name.replace(/(^|-)(\w)/g, (_m, _dash, c: string) => c.toUpperCase())}`;
}

export function loadScript<K extends string>(name: string, keyNames: readonly K[]): RedisScript<K> {
  const lua = splice(readLua(name), name, new Set());
  const declared = declaredKeys(lua);
  if (declared.length !== keyNames.length || declared.some((k, i) => k !== keyNames[i])) {
    throw new ScriptFileError(`${name}.lua declares KEYS [${declared.join(', ')}] but its wrapper passes [${keyNames.join(', ')}]: make them the same, in order`);
  }
  return { name, command: commandName(name), keyNames, lua };
}
