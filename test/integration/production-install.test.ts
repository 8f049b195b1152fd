import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_DIR, TSX, nodeWithoutDevPackages } from '../helpers/production-install.js';

/**
 * The CLI in a production install (`npm ci --omit=dev`: no s3rver, pngjs, jpeg-js, tsx):
 * worker, api and enqueue never load the demo's packages; `fluxq demo` says in one line
 * that it needs the development install; the bin without a build says to build.
 */
const CLI = join(REPO_DIR, 'src/cli.ts');
const fluxq = (args: string[], env: Record<string, string> = {}) => nodeWithoutDevPackages(['--import', TSX, CLI, ...args], { env });

test('`fluxq demo` without the development dependencies exits 1 with one line: npm ci in a clone, then npm run demo', { timeout: 90_000 }, async () => {
  const run = await fluxq(['demo'], { REDIS_URL: 'redis://127.0.0.1:1' });
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0] ?? '', /^fluxq: `fluxq demo` needs the development install \((?:s3rver|pngjs|jpeg-js) is missing.*\); in a clone of fluxq run `npm ci`, then `npm run demo`$/);
});

test('without the development dependencies `fluxq worker`, `api`, `enqueue` and --help load and get as far as their configuration', { timeout: 120_000 }, async () => {
  const help = await fluxq(['--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /demo/);
  // Exit 2 naming the missing variable: the command's modules all loaded (a missing package would be exit 1).
  const worker = await fluxq(['worker']);
  assert.equal(worker.code, 2, worker.stderr);
  assert.match(worker.stderr, /FLUX_API_KEY/);
  const api = await fluxq(['api']);
  assert.equal(api.code, 2, api.stderr);
  assert.match(api.stderr, /API_TOKEN/);
  const enqueue = await fluxq(['enqueue', join(REPO_DIR, 'no-such-file.jsonl')]);
  assert.equal(enqueue.code, 2, enqueue.stderr);
  assert.match(enqueue.stderr, /cannot read .*no-such-file\.jsonl/);
});

test('bin/fluxq.js with no build and no tsx says in one line to run `npm run build`', { timeout: 60_000 }, async (t) => {
  // A copy of the bin with no dist/ next to it (the worktree may have a build).
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-bin-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'bin'));
  await copyFile(join(REPO_DIR, 'bin/fluxq.js'), join(dir, 'bin/fluxq.js'));
  const run = await nodeWithoutDevPackages([join(dir, 'bin/fluxq.js'), '--help'], { cwd: dir });
  assert.equal(run.code, 1, run.stderr);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0] ?? '', /^fluxq: .*no build \(dist\/cli\.js\).*tsx.*not installed.*run `npm run build`/);
});
