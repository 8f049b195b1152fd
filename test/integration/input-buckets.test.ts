import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { synthPng } from '../../src/demo/synth-image.js';
import { ValidationError } from '../../src/shared/errors.js';
import { startApi } from '../helpers/api.js';
import { createBucket, startHarness } from '../helpers/harness.js';

function png(seed: number): Buffer {
  const p = synthPng({ width: 128, height: 128, entropy: 1, seed });
  return Buffer.concat([p.prefix, p.tail(`other bucket ${seed}`)]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('an s3:// input naming a bucket other than S3_BUCKET is refused at enqueue (library, CLI, API) and by the worker, unless INPUT_S3_BUCKETS allows it', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const other = `fluxq-other-${randomUUID().slice(0, 8)}`;
  await createBucket(h, other);
  const cat = png(1);
  await h.s3.send(new PutObjectCommand({ Bucket: other, Key: 'in/cat.png', Body: cat }));
  const ref = `s3://${other}/in/cat.png`;
  const reason = `${ref} is not in S3_BUCKET or INPUT_S3_BUCKETS`;

  // Library: a ValidationError naming the field.
  const producer = h.producer();
  const err = await producer.enqueue({ id: 'lib', prompt: 'foreign', input_image_2: ref }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ValidationError, 'the library accepted another bucket');
  assert.deepEqual(err.details, [{ path: 'input_image_2', message: reason }]);
  // CLI: exit 2, the line and field named.
  const cli = await h.cli(['enqueue', '-', '--batch', 'foreign'], { input: JSON.stringify({ id: 'cli', prompt: 'foreign', input_image_2: ref }) });
  assert.equal(cli.code, 2, cli.stderr);
  assert.match(cli.stderr, new RegExp(`line 1: input_image_2: ${reason.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  // API: 400 naming the field, for a job and for a batch item.
  const api = await startApi(h);
  t.after(() => api.close());
  const res = await api.call('/v1/jobs', { method: 'POST', json: { id: 'api', prompt: 'foreign', input_image_2: ref } });
  assert.equal(res.status, 400);
  assert.deepEqual(((await res.json()) as { details: unknown }).details, [{ path: 'input_image_2', message: reason }]);
  const batch = await api.call('/v1/batches', { method: 'POST', json: { requests: [{ prompt: 'ok' }, { prompt: 'foreign', input_image: ref }] } });
  assert.equal(batch.status, 400);
  assert.deepEqual(((await batch.json()) as { details: unknown }).details, [{ path: 'requests.1.input_image', message: `${ref} is not in S3_BUCKET or INPUT_S3_BUCKETS` }]);
  assert.deepEqual((await h.redis.keys(`${h.prefix}:*`)).filter((k) => !k.endsWith(':meta')), [], 'nothing was enqueued');

  // Worker: jobs written straight into the queue (an old producer, another client) fail
  // as permanent naming the field, with no upstream call.
  const conn = new Redis(h.redisUrl, { maxRetriesPerRequest: null });
  t.after(() => conn.disconnect());
  const foreign = new Queue(h.queueName, { connection: conn, prefix: h.prefix });
  t.after(() => foreign.close());
  await foreign.add('generate', { v: 1, params: { prompt: 'raw foreign' }, inputs: { input_image_3: ref } }, { jobId: 'raw-foreign' });
  await foreign.add('generate', { v: 1, params: { prompt: 'raw bad ref' }, inputs: { input_image: 's3://Not_A_Bucket/k.png' } }, { jobId: 'raw-bad-ref' });
  const strict = await h.worker();
  const expected: Record<string, string> = {
    'raw-foreign': `permanent: input_image_3: ${ref} is not in S3_BUCKET or INPUT_S3_BUCKETS`,
    'raw-bad-ref': 'permanent: input_image: s3://Not_A_Bucket/k.png is not an s3://bucket/key reference (a bucket name of 3–63 a–z 0–9 . -, then a key)',
  };
  for (const [id, error] of Object.entries(expected)) {
    const st = await producer.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(st.state, 'failed', id);
    assert.equal(st.error, error);
    assert.equal(st.attempts, 0, `${id}: no upstream call`);
  }
  assert.equal(h.fake.calls.length, 0, 'no upstream call for a foreign bucket');
  await strict.close();

  // INPUT_S3_BUCKETS allows it: accepted at enqueue (library and CLI) and read from that bucket.
  const allow = { INPUT_S3_BUCKETS: ` ${other} ,another-bucket` };
  const allowing = h.producer(allow);
  await allowing.enqueue({ id: 'allowed', prompt: 'from the other bucket', input_image_2: ref });
  const cliOk = await h.cli(['enqueue', '-', '--batch', 'allowed'], { input: JSON.stringify({ id: 'allowed-cli', prompt: 'from the other bucket via cli', input_image: ref }), env: allow });
  assert.equal(cliOk.code, 0, cliOk.stderr);
  await h.worker(allow);
  for (const id of ['allowed', 'allowed-cli']) {
    const st = await allowing.waitFor(id, { timeoutMs: 30_000 });
    assert.equal(st.state, 'completed', `${id}: ${st.error}`);
  }
  assert.deepEqual(h.fake.callsFor('from the other bucket')[0]?.inputSha256, { input_image_2: sha(cat) });
  assert.deepEqual(h.fake.callsFor('from the other bucket via cli')[0]?.inputSha256, { input_image: sha(cat) });
});
