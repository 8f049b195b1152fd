import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { startFakeFlux } from '../../src/demo/fake-flux.js';
import { INPUT_IMAGE_FIELDS } from '../../src/shared/upstream.js';
import { startHarness } from '../helpers/harness.js';
import { runJsonChild } from '../helpers/json-child.js';

/**
 * SPEC §7: input images are bounded in memory. The request body used to be
 * JSON.stringify(body) — a third copy of every base64 input, made a Buffer by undici on
 * top — and is now made piece by piece while the socket takes it (request-body.ts).
 */

const MB = 1024 * 1024;
const CHILD = new URL('../helpers/upstream-body-child.ts', import.meta.url).pathname;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a call with 8 × 8 MB inputs costs the client far less than the base64 it sends, and the fake receives every input byte-identical', { timeout: 120_000 }, async (t) => {
  const fake = await startFakeFlux({ latencyMs: 0 });
  t.after(() => fake.close());
  const r = await runJsonChild<{ before: number; after: number; base64Bytes: number; sha256: Record<string, string>; status: number }>(CHILD, [fake.url, fake.apiKey, '8'], { timeoutMs: 100_000 });
  assert.equal(r.status, 200);
  const call = fake.calls[0];
  assert.equal(call?.status, 200, call?.outcome);
  assert.deepEqual(call?.inputSha256, r.sha256, 'every input decoded by the fake has the sha256 of the bytes sent');
  assert.deepEqual(call?.fields, ['prompt', ...INPUT_IMAGE_FIELDS, 'width', 'height']);
  assert.equal(call?.prompt, 'eight large inputs "quoted" ünïcode');
  const growth = r.after - r.before;
  console.log(`client peak RSS ${(r.before / MB).toFixed(0)} → ${(r.after / MB).toFixed(0)} MiB sending ${(r.base64Bytes / MB).toFixed(0)} MiB of base64`);
  // JSON.stringify plus undici's Buffer of it cost twice the base64; pieces cost a few slices.
  assert.ok(growth < r.base64Bytes / 2, `peak RSS grew ${(growth / MB).toFixed(1)} MiB sending ${(r.base64Bytes / MB).toFixed(0)} MiB of base64`);
});

test('a job with 8 large s3:// inputs reaches the upstream with each input byte-identical', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 } });
  const inputs = INPUT_IMAGE_FIELDS.map((_, i) => {
    const b = Buffer.alloc(4 * MB + i * 4099, i + 7);
    Buffer.from('89504e470d0a1a0a0000000d49484452000000400000004008060000001f15c489', 'hex').copy(b);
    for (let at = 64; at < b.length; at += 997) b[at] = (at * 31 + i) & 0xff;
    return b;
  });
  await Promise.all(inputs.map((b, i) => h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: `uploads/in-${i}.png`, Body: b }))));
  const producer = h.producer();
  const envelope: Record<string, string> = { id: 'eight', prompt: 'eight inputs' };
  INPUT_IMAGE_FIELDS.forEach((field, i) => (envelope[field] = `s3://${h.bucket}/uploads/in-${i}.png`));
  await producer.enqueue(envelope as { id: string; prompt: string });
  await h.worker();
  const st = await producer.waitFor('eight', { timeoutMs: 60_000 });
  assert.equal(st.state, 'completed', st.error);
  const call = h.fake.callsFor('eight inputs')[0];
  assert.deepEqual(call?.inputSha256, Object.fromEntries(INPUT_IMAGE_FIELDS.map((f, i) => [f, sha(inputs[i] as Buffer)])));
});
