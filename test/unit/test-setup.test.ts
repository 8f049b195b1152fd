/**
 * The README's test command does its own set-up (issue: a fresh machine with only Node and
 * redis-server failed 4 tests for a missing docker-compose and chromium). These run
 * test/setup.sh with a stub `apt-get` first on PATH, so what it would install is recorded
 * instead of installed, and as an unprivileged user, where it must stop naming the tool.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/harness.js';

const SETUP = join(REPO, 'test/setup.sh');

/** A PATH folder whose `apt-get` records its arguments, `id -u` answers `uid` and `sudo` refuses. */
function stubDir(t: { after(fn: () => void): void }, uid: number): { dir: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fluxq-setup-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'apt.log');
  const stub = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  stub('apt-get', `echo "$@" >> ${log}`);
  stub('id', `echo ${uid}`);
  stub('sudo', 'exit 1');
  return { dir, log };
}

function runSetup(dir: string) {
  return spawnSync('bash', [SETUP], {
    cwd: REPO,
    env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, CHROMIUM_PATH: join(dir, 'no-chromium'), FLUXQ_SETUP_ONLY_TOOLS: '1' },
    encoding: 'utf8',
  });
}

test('npm test runs the set-up first, and .ci/run ends with exactly the README\'s test command', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.pretest ?? '', /^bash test\/setup\.sh && /, 'npm test begins with the set-up');
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const testLine = firstBlock.split('\n').find((l) => /\bnpm test\b/.test(l));
  assert.ok(testLine, 'the README opens with the test command');
  const command = testLine.replace(/#.*$/, '').trim();
  const ci = readFileSync(join(REPO, '.ci/run'), 'utf8').trim().split('\n');
  assert.equal(ci.at(-1)?.trim(), command, '.ci/run runs exactly the README\'s test command last');
});

test('a missing chromium is installed with apt-get (update, then install of just what is missing)', (t) => {
  const { dir, log } = stubDir(t, 0);
  const r = runSetup(dir);
  assert.equal(r.status, 0, r.stderr);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.match(calls[0] ?? '', /^update\b/);
  assert.match(calls[1] ?? '', /^install -y .*\bchromium$/, 'only chromium is installed: redis-server and docker-compose are present');
  assert.match(r.stdout, /installing chromium/);
});

test('where nothing can be installed (not root, no sudo), the set-up stops naming each missing tool: no test is skipped for it', (t) => {
  const { dir, log } = stubDir(t, 1000);
  const r = runSetup(dir);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /chromium: install the Debian package chromium/);
  assert.throws(() => readFileSync(log), 'apt-get was not called');
});
