import type { z } from 'zod';
import { ConfigError } from './errors.js';
import type { Config, ConfigRole } from './config-shape.js';
import type { ConfigValues, VariableName } from './config-table.js';
import { CONFIG_TABLE } from './config-table.js';
import { crossChecks } from './config-checks.js';
import { shown } from './config-values.js';

/**
 * SPEC §3: `loadConfig(env, role)` reads an env object (never `process.env` itself) against the
 * variable table (config-table.ts) and fails with a ConfigError that lists one line per bad or
 * missing variable. An empty or blank value counts as unset.
 */

export type { Config, ConfigRole, LogLevel } from './config-shape.js';
export { DEFAULT_LOCK_DURATION_MS, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_STALLED_INTERVAL_MS, RESERVED_QUEUE_NAMES } from './config-table.js';

type Env = Record<string, string | undefined>;

/** The table's rows as the loader walks them (their types were checked against Config in the table). */
const VARIABLES = Object.entries(CONFIG_TABLE) as [VariableName, { at: string; parse: z.ZodType<unknown, string>; rule: string; default?: unknown }][];

/** The variable names the table knows, e.g. for checking docker-compose.yml. */
export const CONFIG_VARIABLES: readonly string[] = VARIABLES.map(([name]) => name);

/**
 * Parse and validate the environment for a role. Throws ConfigError naming every bad
 * variable, one line each (`WORKER_CONCURRENCY must be an integer from 1 to 1024, got "abc"`).
 */
export function loadConfig(env: Env, role: ConfigRole): Config {
  // Each variable is parsed on its own so one bad value never hides another, and the
  // cross-checks (required-by-role, pairs) still run on what did parse (defaults elsewhere).
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, variable] of VARIABLES) {
    const given = env[name];
    values[name] = variable.default;
    if (given === undefined || given.trim() === '') continue;
    const result = variable.parse.safeParse(given, { reportInput: true });
    if (result.success) values[name] = result.data;
    else {
      const input = result.error.issues[0]?.input;
      problems.push(`${name} must be ${variable.rule}, got ${shown(typeof input === 'string' ? input : given)}`);
    }
  }
  problems.push(...crossChecks(values as ConfigValues, role));
  if (problems.length > 0) throw new ConfigError(problems);
  return assemble(values);
}

/**
 * Puts every value where its row says. Where several variables land at one path the first one
 * set wins (FLUX_API_KEY before MODELVERSE_API_KEY); an object none of whose variables is set
 * is undefined (`worker.rateLimit`), the type allows it there only (config-shape.ts).
 */
function assemble(values: Record<string, unknown>): Config {
  const config: Record<string, unknown> = {};
  const unset: string[][] = [];
  for (const [name, { at }] of VARIABLES) {
    const path = at.split('.');
    if (values[name] === undefined) unset.push(path);
    else place(config, path, values[name]);
  }
  for (const path of unset) place(config, path, undefined);
  return config as unknown as Config;
}

/** Sets `path` in `target` unless it is set; an undefined value creates no objects on the way. */
function place(target: Record<string, unknown>, path: string[], value: unknown): void {
  let at = target;
  for (const key of path.slice(0, -1)) {
    if (at[key] === undefined && value === undefined) {
      at[key] = undefined;
      return;
    }
    at = (at[key] ??= {}) as Record<string, unknown>;
  }
  const leaf = path[path.length - 1] as string;
  if (at[leaf] === undefined) at[leaf] = value;
}
