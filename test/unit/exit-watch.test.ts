import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { REPO } from '../helpers/harness.js';

/**
 * No `--test-force-exit`: a test file that leaves a handle open must fail, naming it,
 * instead of hanging the run or passing (test/helpers/exit-watch.ts, wired in test/run.ts).
 */
async function runTests(files: string[]): Promise<{ code: number | null; output: string }> {
  // A runner of its own: without this file's NODE_TEST_CONTEXT, which makes Node skip the files.
  const { NODE_TEST_CONTEXT: _inner, ...env } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/run.ts', ...files], {
    cwd: REPO,
    env: { ...env, FLUXQ_TEST_EXIT_WAIT_MS: '1000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(killer);
  return { code, output };
}

test('a file that leaks a timer and a server fails and names them; a tidy file next to it passes', async () => {
  const { code, output } = await runTests(['test/fixtures/leaky.test.ts', 'test/fixtures/tidy.test.ts']);
  assert.equal(code, 1, output);
  assert.match(output, /leaky\.test\.ts has not exited 1000 ms after its last test finished; still open: TCPServerWrap ×1, Timeout ×1\./);
  assert.match(output, /✖ .*leaky\.test\.ts/, 'the leaky file is the failed one');
  assert.doesNotMatch(output, /tidy\.test\.ts has not exited/);
  assert.match(output, /ℹ pass 2\b/, 'both tests themselves passed');
});
