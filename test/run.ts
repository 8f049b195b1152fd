/**
 * `npm test`: one redis-server for the whole run on a free 127.0.0.1 port, then Node's
 * own test runner over every test file (its summary counts show), then the server is
 * stopped. `npm test -- test/unit` runs a folder; files run two at a time. A file whose
 * process does not exit after its last test fails, naming the handle it leaked
 * (test/helpers/exit-watch.ts): there is no `--test-force-exit` to hide it.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startLocalRedis } from '../src/demo/local-redis.js';

/** Fails a file whose process outlives its tests, naming what it left open. */
const EXIT_WATCH = new URL('./helpers/exit-watch.ts', import.meta.url).href;

function collect(path: string, out: string[]): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const entry of readdirSync(path).sort()) collect(join(path, entry), out);
  } else if (/\.test\.ts$/.test(path)) out.push(path);
}

const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ['test/unit', 'test/redis-scripts', 'test/integration', 'test/faults'];
const files: string[] = [];
for (const root of roots) {
  try {
    collect(resolve(root), files);
  } catch {
    if (args.length > 0) throw new Error(`no such test path: ${root}`);
  }
}
if (files.length === 0) throw new Error('no test files found');

const redis = await startLocalRedis();
const started = Date.now();
const concurrency = process.env.FLUXQ_TEST_CONCURRENCY ?? '2';
const child = spawn(process.execPath, ['--import', 'tsx', '--import', EXIT_WATCH, '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, FLUXQ_TEST_REDIS_URL: redis.url, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
});
let code: number = await new Promise((r) => child.on('exit', (c, sig) => r(c ?? (sig ? 1 : 0))));
await redis.stop();
console.log(`\nfluxq test run: ${files.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s, exit ${code}`);
// A full run also proves the field tests on the other Node majors the README claims.
if (args.length === 0 && process.env.FLUXQ_SKIP_OTHER_NODES !== '1') {
  const other = spawn('sh', ['test/node-versions.sh'], { stdio: 'inherit' });
  const otherCode: number = await new Promise((r) => other.on('exit', (c, sig) => r(c ?? (sig ? 1 : 0))));
  console.log(`fluxq test run on the other Node versions: exit ${otherCode}`);
  code ||= otherCode;
}
process.exit(code);
