import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import { enqueueCommand } from '../../src/producer/commands/enqueue.js';
import { startHarness } from '../helpers/harness.js';

class Capture extends Writable {
  text = '';
  isTTY: boolean;
  columns = 120;
  constructor(isTTY: boolean) {
    super();
    this.isTTY = isTTY;
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
  cursorTo() {
    return true;
  }
  clearLine() {
    return true;
  }
  moveCursor() {
    return true;
  }
}

test('`enqueue --wait` shows a progress bar on a TTY and none otherwise; exit 1 when a job failed', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  h.fake.inject({ prompt: 'refuse me', fault: { type: 'moderation' } });
  await h.worker();
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-tty-'));
  const file = join(dir, 'f.jsonl');
  await writeFile(file, [...Array.from({ length: 4 }, (_, i) => JSON.stringify({ prompt: `tty ${i}` })), JSON.stringify({ prompt: 'refuse me' })].join('\n'));
  const tty = { stdout: new Capture(false), stderr: new Capture(true) };
  const code = await enqueueCommand(file, { batch: 'tty', wait: true }, { env: h.env, stdin: new PassThrough(), ...tty });
  assert.equal(code, 1, 'one job failed');
  assert.match(tty.stderr.text, /generating .*5\/5 \| failed 1/);
  assert.match(tty.stdout.text, /batch tty: 4 completed, 1 failed/);
  const plain = { stdout: new Capture(false), stderr: new Capture(false) };
  const again = await enqueueCommand(file, { batch: 'tty', wait: true, json: true }, { env: h.env, stdin: new PassThrough(), ...plain });
  assert.equal(again, 1);
  assert.doesNotMatch(plain.stderr.text, /generating/);
  const lines = plain.stdout.text.trim().split('\n').map((l) => JSON.parse(l) as { id: string; status: string; error?: string });
  assert.equal(lines.length, 5);
  assert.deepEqual(lines.find((l) => l.id === 'tty-5'), { id: 'tty-5', status: 'failed', images: [], error: 'permanent: HTTP 400 sensitive_check_error: prompt refused by moderation' });
});
