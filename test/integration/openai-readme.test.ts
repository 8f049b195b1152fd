/**
 * README "Using the openai client": its TypeScript snippet runs as written against a real
 * API and worker, and so does its Python snippet (with the `openai` package from the venv
 * test/setup.sh makes, or FLUXQ_TEST_PYTHON).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { API_TOKEN, startApi } from '../helpers/api.js';
import { REPO, startHarness } from '../helpers/harness.js';

const TSX = import.meta.resolve('tsx');
const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Using the openai client'), readme.indexOf('\n## ', readme.indexOf('## Using the openai client') + 5));

function snippet(lang: string): string {
  const code = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section)?.[1];
  assert.ok(code, `the section holds a ${lang} snippet`);
  return code;
}

const python = process.env.FLUXQ_TEST_PYTHON ?? join(process.env.FLUXQ_PY_VENV ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fluxq-py-openai'), 'bin', 'python');
const pythonHasOpenai = spawnSync(python, ['-c', 'import openai'], { stdio: 'ignore' }).status === 0;

function run(cmd: string, args: string[], cwd: string, env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function checkSnippet(t: TestContext, lang: 'ts' | 'python'): Promise<void> {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const api = await startApi(h, { OPENAI_BATCH_SWEEP_MS: '200' });
  t.after(() => api.close());
  await h.worker();
  // Inside the repository, so `import 'openai'` resolves from its node_modules.
  const dir = join(REPO, 'test-artifacts', `readme-openai-${randomUUID().slice(0, 8)}`);
  mkdirSync(dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, lang === 'ts' ? 'snippet.ts' : 'snippet.py');
  writeFileSync(file, snippet(lang));
  const env = { FLUXQ_URL: api.url, API_TOKEN };
  const res = lang === 'ts' ? await run(process.execPath, ['--import', TSX, file], dir, env, 90_000) : await run(python, [file], dir, env, 90_000);
  assert.equal(res.code, 0, `${lang} snippet: ${res.stderr.slice(-2000)}`);
  assert.ok(existsSync(join(dir, 'lighthouse.png')), 'the image was written');
  assert.equal(readFileSync(join(dir, 'lighthouse.png')).subarray(1, 4).toString(), 'PNG');
  const printed = res.stdout.trim().split('\n');
  assert.deepEqual(printed.map((l) => l.split(' ')[0]).sort(), ['req-0', 'req-1']);
  for (const l of printed) assert.match(l, /^req-\d http:\/\/127\.0\.0\.1:\d+\/.*X-Amz-Signature=/);
}

test('README: the TypeScript openai snippet runs as written', { timeout: 120_000 }, (t) => checkSnippet(t, 'ts'));

test('README: the Python openai snippet runs as written', { timeout: 120_000 }, async (t) => {
  assert.ok(pythonHasOpenai, `no Python with the openai package at ${python}: test/setup.sh makes one (or set FLUXQ_TEST_PYTHON)`);
  await checkSnippet(t, 'python');
});
