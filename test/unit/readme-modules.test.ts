/**
 * README "How it is built" names every module, one line each, and the files its "Where
 * does … live?" table points a newcomer to exist: a file added without a line, or a
 * behaviour moved without the table following, fails here.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/harness.js';

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files(path, out);
    else if (/\.(ts|lua)$/.test(name)) out.push(path);
  }
  return out;
}

const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## How it is built'));

test('README "How it is built" has one line for every module under src/', () => {
  const tree = /```\n(src\/[\s\S]*?)```/.exec(section)?.[1] ?? '';
  assert.ok(tree, 'the section holds the module tree');
  // Rebuild each line's path from the tree's folder headings (`  shared/redis-scripts/`).
  const listed = new Set<string>();
  let folder = '';
  for (const line of tree.split('\n')) {
    const m = /^( *)(\S+)/.exec(line);
    if (!m) continue;
    const [, indent, name] = m as unknown as [string, string, string];
    if (name.endsWith('/') && indent.length <= 2) {
      folder = indent.length === 0 ? '' : name;
      continue;
    }
    listed.add(`${folder}${name}`);
  }
  const missing = files(join(REPO, 'src')).map((f) => relative(join(REPO, 'src'), f)).filter((f) => !listed.has(f));
  assert.deepEqual(missing, [], 'every file under src/ has its line');
});

test('every file the "Where does … live?" table names exists', () => {
  const table = section.slice(section.indexOf('**Where does'), section.indexOf('```'));
  const named = [...table.matchAll(/`(src\/[^`]+)`/g)].map((m) => m[1] as string);
  assert.ok(named.length >= 8, `the table names files (${named.length})`);
  for (const f of named) assert.ok(existsSync(join(REPO, f)), `${f} exists`);
});
