import assert from 'node:assert/strict';
import { test } from 'node:test';
import { declaredKeys, loadScript, ScriptFileError } from '../../src/shared/redis-scripts/load-script.js';
import { encodeScriptArgs } from '../../src/shared/redis-scripts/run-script.js';
import { ALL_SCRIPTS } from '../../src/shared/redis-scripts/scripts.js';

test('includes are spliced in once and no include line is left', () => {
  for (const script of ALL_SCRIPTS) {
    assert.doesNotMatch(script.lua, /^--- @include/m, script.name);
    assert.ok(script.keyNames.length > 0, script.name);
  }
  const start = ALL_SCRIPTS.find((s) => s.name === 'start-call');
  assert.equal(start?.lua.match(/local function nowMs\(\)/g)?.length, 1);
  assert.equal(start?.lua.match(/local function callGate\(/g)?.length, 1);
});

test('a wrapper whose key names differ from the header is refused when the script loads', () => {
  assert.deepEqual(declaredKeys('--[[\n  KEYS[1] a  first\n  KEYS[2] b  second\n]]'), ['a', 'b']);
  assert.throws(() => declaredKeys('--[[\n  KEYS[1] a\n  KEYS[1] b\n]]'), /KEYS\[1\] is declared twice: a and b/);
  assert.throws(() => loadScript('renew-call', ['callz']), (err: unknown) => err instanceof ScriptFileError && /declares KEYS \[calls, tenantCalls\]/.test(err.message));
  assert.throws(() => loadScript('no-such-script', []), (err: unknown) => err instanceof ScriptFileError && /no-such-script\.lua not found.*npm run build/.test(err.message));
});

test('options travel as one JSON table: numbers as their JS strings, undefined left out, lone surrogates replaced', () => {
  assert.equal(encodeScriptArgs({ a: 0.1 + 0.2, b: 1_700_000_000_123, c: undefined, d: true, e: ['x'] }), '{"a":"0.30000000000000004","b":"1700000000123","d":true,"e":["x"]}');
  assert.equal(encodeScriptArgs({ s: 'ok \ud83d\ude00 lone \ud800' }), JSON.stringify({ s: 'ok \ud83d\ude00 lone \ufffd' }));
});
