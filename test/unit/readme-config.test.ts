import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIG_VARIABLES } from '../../src/shared/config.js';
import { README, renderConfigTables, rewriteConfigTables } from '../../scripts/docs-config.js';

test('README configuration tables are what npm run docs:config writes from the variable table', () => {
  const readme = readFileSync(README, 'utf8');
  assert.equal(rewriteConfigTables(readme), readme, 'README.md differs from src/shared/config-table.ts: run npm run docs:config');
});

test('the generated tables have one row per variable, with its default', () => {
  const rows = renderConfigTables().split('\n').filter((line) => line.startsWith('| `'));
  assert.deepEqual(rows.map((row) => /^\| `([A-Z0-9_]+)`/.exec(row)?.[1]).sort(), [...CONFIG_VARIABLES].sort());
  assert.ok(rows.includes('| `WORKER_CONCURRENCY` | 4 | an integer from 1 to 1024 | in-flight upstream calls per worker process |'));
  const edited = readFileSync(README, 'utf8').replace('| `WORKER_CONCURRENCY` | 4 |', '| `WORKER_CONCURRENCY` | 8 |');
  assert.notEqual(rewriteConfigTables(edited), edited, 'a hand edit inside the markers is caught');
});
