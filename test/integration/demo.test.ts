import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sniffImageType } from '../../src/shared/image-type.js';
import { startHarness } from '../helpers/harness.js';

test('`fluxq demo` runs the whole pipeline locally and prints where each image landed', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t);
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-demo-'));
  const run = await h.cli(['demo'], { env: { FLUXQ_DEMO_DIR: dir, QUEUE_PREFIX: `${h.prefix}-demo` } });
  assert.equal(run.code, 0, run.stderr);
  const keys = [...run.stdout.matchAll(/^ {2}s3:\/\/fluxq-demo\/(images\/demo-[a-z0-9]+\/demo-[a-z0-9]+-\d\/0\.png) {2}image\/png/gm)].map((m) => m[1]);
  assert.equal(keys.length, 6, run.stdout);
  const copies = [...run.stdout.matchAll(/^ {6}copy: (.+)$/gm)].map((m) => m[1] as string);
  assert.equal(copies.length, 6);
  for (const file of copies) assert.equal(sniffImageType(await readFile(file))?.ext, 'png');
  assert.match(run.stdout, /6 of 6 jobs completed/);
});

test('`fluxq demo` starts a private redis-server when nothing answers at REDIS_URL', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t);
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-demo-'));
  const run = await h.cli(['demo'], { env: { FLUXQ_DEMO_DIR: dir, REDIS_URL: 'redis://127.0.0.1:1' } });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /started a private redis-server at redis:\/\/127\.0\.0\.1:\d+/);
  assert.match(run.stdout, /6 of 6 jobs completed/);
});
