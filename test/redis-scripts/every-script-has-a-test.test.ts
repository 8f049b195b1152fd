import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LUA_DIR } from '../../src/shared/redis-scripts/load-script.js';
import { ALL_SCRIPTS } from '../../src/shared/redis-scripts/scripts.js';

/** `lua/{name}.lua` ↔ `test/redis-scripts/{name}.test.ts`: a script without its test fails here. */
const scripts = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -'.lua'.length));
const includes = readdirSync(new URL('includes/', LUA_DIR)).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -'.lua'.length));

test('every .lua script has its own test file', () => {
  assert.ok(scripts.length >= 12, `found ${scripts.length} scripts in ${LUA_DIR.pathname}`);
  const missing = scripts.filter((name) => !existsSync(new URL(`./${name}.test.ts`, import.meta.url)));
  assert.deepEqual(missing, [], 'write test/redis-scripts/{name}.test.ts for each');
});

test('every .lua script is loaded by a wrapper (listed in scripts.ts), and nothing else is', () => {
  assert.deepEqual(ALL_SCRIPTS.map((s) => s.name).sort(), [...scripts].sort());
});

test('every include is spliced into some script, directly or through another include (so the scripts that use it test it)', () => {
  const includesOf = (file: string) => [...readFileSync(new URL(file, LUA_DIR), 'utf8').matchAll(/^--- @include "includes\/([\w-]+)"/gm)].map((m) => m[1] as string);
  const used = new Set<string>();
  const visit = (file: string) => {
    for (const include of includesOf(file)) {
      if (used.has(include)) continue;
      used.add(include);
      visit(`includes/${include}.lua`);
    }
  };
  for (const name of scripts) visit(`${name}.lua`);
  for (const include of includes) assert.ok(used.has(include), `includes/${include}.lua is used by no script`);
});
