/**
 * Run a TypeScript helper in its own Node process (tsx, `--expose-gc` and any extra Node
 * flags) and return the one JSON object it prints. A child that does not exit 0 within
 * `timeoutMs` is killed and fails the test with what it printed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { REPO } from './harness.js';

const TSX = import.meta.resolve('tsx');

export async function runJsonChild<T>(script: string, args: string[], opts: { nodeFlags?: string[]; env?: Record<string, string>; timeoutMs: number }): Promise<T> {
  const child = spawn(process.execPath, ['--import', TSX, '--expose-gc', ...(opts.nodeFlags ?? []), script, ...args], {
    cwd: REPO,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 0, out);
  return JSON.parse(out) as T;
}
