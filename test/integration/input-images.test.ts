import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { synthPng } from '../../src/demo/synth-image.js';
import { startHarness } from '../helpers/harness.js';

function png(seed: number, size = 256): Buffer {
  const p = synthPng({ width: size, height: size, entropy: 1, seed });
  return Buffer.concat([p.prefix, p.tail(`input ${seed}`)]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('inline input images are stored in S3 by the producer, travel as references, and reach the upstream byte-identical', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const a = png(1, 1024);
  const b = png(2);
  const producer = h.producer();
  await producer.enqueue({ id: 'edit-1', prompt: 'combine', input_image: a.toString('base64'), input_image_2: `data:image/png;base64,${b.toString('base64')}` });
  const raw = await h.redis.hget(`${h.prefix}:generate:edit-1`, 'data');
  assert.ok(raw && Buffer.byteLength(raw) < 4096, `job data is ${raw?.length} bytes`);
  const data = JSON.parse(raw) as { inputs: Record<string, string> };
  assert.deepEqual(data.inputs, {
    input_image: `s3://${h.bucket}/images/inputs/${sha(a)}.png`,
    input_image_2: `s3://${h.bucket}/images/inputs/${sha(b)}.png`,
  });
  await h.worker();
  assert.equal((await producer.waitFor('edit-1')).state, 'completed');
  const call = h.fake.callsFor('combine')[0];
  assert.deepEqual(call?.inputSha256, { input_image: sha(a), input_image_2: sha(b) });
  assert.deepEqual(call?.fields, ['prompt', 'input_image', 'input_image_2']);
});
