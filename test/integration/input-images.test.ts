import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { synthPng, TINY_WEBP } from '../../src/demo/synth-image.js';
import type { HostResolver } from '../../src/shared/address-policy.js';
import { ValidationError } from '../../src/shared/errors.js';
import { startHarness, waitFor } from '../helpers/harness.js';
import { startHttpsFileServer } from '../helpers/https-server.js';
import { testResolver } from '../helpers/test-resolver.js';

function png(seed: number, size = 256, entropy = 1): Buffer {
  const p = synthPng({ width: size, height: size, entropy, seed });
  return Buffer.concat([p.prefix, p.tail(`input ${seed}`)]);
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const problems = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    if (err instanceof ValidationError) return err.details;
    throw err;
  }
  return undefined;
};

test('every input form reaches the upstream byte-identical: base64, data URL, s3://, https:// (through names) and (CLI) a file path', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { INPUT_URL_ALLOW_PRIVATE: '1' } });
  const files = await startHttpsFileServer();
  t.after(() => files.close());
  const [a, b, c, d, e, f] = [png(1, 512), png(2), png(3), png(4), png(5), png(6)];
  await h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: 'uploads/c.png', Body: c }));
  files.files.set('/d.png', d);
  files.files.set('/f.png', f);
  const producer = h.producer();
  await producer.enqueue({
    id: 'forms',
    prompt: 'combine five',
    input_image: a.toString('base64'),
    input_image_2: `data:image/png;base64,${b.toString('base64')}`,
    input_image_3: `s3://${h.bucket}/uploads/c.png`,
    input_image_4: files.url('/d.png'),
    input_image_5: TINY_WEBP.toString('base64'),
    // https:// through names: input_image_4 `localhost` (the system's DNS), this one a
    // made-up name the worker's resolver answers with 127.0.0.1.
    input_image_6: files.url('/f.png', 'images.example.test'),
  });
  const raw = await h.redis.hget(`${h.prefix}:generate:forms`, 'data');
  const data = JSON.parse(raw ?? '{}') as { inputs: Record<string, string> };
  assert.deepEqual(data.inputs, {
    input_image: `s3://${h.bucket}/images/inputs/${sha(a)}.png`,
    input_image_2: `s3://${h.bucket}/images/inputs/${sha(b)}.png`,
    input_image_3: `s3://${h.bucket}/uploads/c.png`,
    input_image_4: files.url('/d.png'),
    input_image_5: `s3://${h.bucket}/images/inputs/${sha(TINY_WEBP)}.webp`,
    input_image_6: files.url('/f.png', 'images.example.test'),
  });
  assert.match(files.url('/d.png'), /^https:\/\/localhost:\d+\/d\.png$/);
  await h.worker({}, { tlsCa: files.cert, resolver: testResolver() });
  const st = await producer.waitFor('forms');
  assert.equal(st.state, 'completed', st.error);
  const call = h.fake.callsFor('combine five')[0];
  assert.deepEqual(call?.inputSha256, { input_image: sha(a), input_image_2: sha(b), input_image_3: sha(c), input_image_4: sha(d), input_image_5: sha(TINY_WEBP), input_image_6: sha(f) });
  assert.equal(st.result?.input_mp, 1, 'input megapixels (0.51 MP in all, rounded up) are recorded in the result');

  // CLI: a path relative to the JSONL file is that file.
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-inputs-'));
  await mkdir(join(dir, 'pics'));
  await writeFile(join(dir, 'pics', 'e.png'), e);
  await writeFile(join(dir, 'jobs.jsonl'), JSON.stringify({ id: 'from-file', prompt: 'from a file', input_image: 'pics/e.png', input_image_2: './pics/e.png' }));
  const run = await h.cli(['enqueue', join(dir, 'jobs.jsonl'), '--batch', 'files'], { cwd: '/' });
  assert.equal(run.code, 0, run.stderr);
  assert.equal((await producer.waitFor('from-file')).state, 'completed');
  assert.deepEqual(h.fake.callsFor('from a file')[0]?.inputSha256, { input_image: sha(e), input_image_2: sha(e) });
  assert.equal((await producer.getBatch('files'))?.input_mp, 1);
});

test('eight 5 MB inputs: the job data in Redis stays under 4 KB; the same bytes twice are one object', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 } });
  const big = Array.from({ length: 8 }, (_, i) => png(100 + i, 1292, 1)); // ~5 MB each, incompressible
  for (const img of big) assert.ok(img.length > 5_000_000, `${img.length} bytes`);
  const producer = h.producer();
  const fields = ['input_image', 'input_image_2', 'input_image_3', 'input_image_4', 'input_image_5', 'input_image_6', 'input_image_7', 'input_image_8'];
  await producer.enqueue({ id: 'eight', prompt: 'eight inputs', ...Object.fromEntries(fields.map((f, i) => [f, big[i]?.toString('base64')])) });
  const raw = (await h.redis.hget(`${h.prefix}:generate:eight`, 'data')) ?? '';
  assert.ok(Buffer.byteLength(raw) < 4096, `job data is ${Buffer.byteLength(raw)} bytes`);
  // Dedup: the same content in two fields and two jobs is one object.
  const same = png(7);
  await producer.enqueueBulk([
    { id: 'dup-1', prompt: 'dup', input_image: same.toString('base64'), input_image_2: `data:image/png;base64,${same.toString('base64')}` },
    { id: 'dup-2', prompt: 'dup 2', input_image: same.toString('base64') },
  ]);
  const inputs = await h.listObjects('images/inputs/');
  assert.equal(inputs.length, 9, 'eight distinct inputs + one shared');
  assert.ok(inputs.includes(`images/inputs/${sha(same)}.png`));
  await h.worker();
  assert.equal((await producer.waitFor('eight', { timeoutMs: 60_000 })).state, 'completed');
  assert.deepEqual(Object.values(h.fake.callsFor('eight inputs')[0]?.inputSha256 ?? {}), big.map(sha));
});

test('bad inputs are refused at enqueue with the field named when that can be decided there', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { env: { MAX_INPUT_IMAGE_BYTES: '100000' } });
  await h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: 'uploads/text.png', Body: Buffer.from('not an image at all, just text bytes here') }));
  await h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: 'uploads/huge.png', Body: png(9, 512) }));
  const producer = h.producer();
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ input_image: png(8, 512).toString('base64') }, 'input_image', /more than MAX_INPUT_IMAGE_BYTES \(100000\)/],
    [{ input_image_2: Buffer.from('plain text pretending to be an image').toString('base64') }, 'input_image_2', /is not a PNG, JPEG or WebP image/],
    [{ input_image: 'QUJD!!' }, 'input_image', /must be base64/],
    [{ input_image_3: `s3://${h.bucket}/uploads/missing.png` }, 'input_image_3', new RegExp(`^s3://${h.bucket}/uploads/missing\\.png not found$`)],
    [{ input_image: `s3://${h.bucket}/uploads/text.png` }, 'input_image', /is not a PNG, JPEG or WebP image/],
    [{ input_image: `s3://${h.bucket}/uploads/huge.png` }, 'input_image', /more than MAX_INPUT_IMAGE_BYTES/],
    [{ input_image: 'https://127.0.0.1/cat.png' }, 'input_image', /is refused: host 127\.0\.0\.1 is a private or loopback address/],
    [{ input_image: 'https://169.254.169.254/latest/meta-data' }, 'input_image', /is refused/],
    [{ input_image: 'http://169.254.169.254/latest/meta-data' }, 'input_image', /must be base64, a data:image\/…;base64, URL, s3:\/\/bucket\/key or an https:\/\/ URL/],
    [{ input_image: 'file:///etc/passwd' }, 'input_image', /must be base64/],
    [{ input_image: 'https://localhost/x.png' }, 'input_image', /is refused: host localhost/],
  ];
  for (const [fields, field, re] of cases) {
    const details = await problems(producer.enqueue({ prompt: 'refuse me', ...fields }));
    assert.ok(details, `${JSON.stringify(fields).slice(0, 80)} was accepted`);
    assert.equal(details[0]?.path, field);
    assert.match(details[0]?.message ?? '', re);
  }
  assert.deepEqual((await h.redis.keys(`${h.prefix}:*`)).filter((k) => !k.endsWith(':meta')), [], 'nothing was enqueued');
});

test('inputs that go bad after enqueue fail the job as permanent, naming the field, with no upstream call', { timeout: 90_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 10 }, env: { INPUT_URL_ALLOW_PRIVATE: '1', MAX_INPUT_IMAGE_BYTES: '200000' } });
  const files = await startHttpsFileServer();
  t.after(() => files.close());
  files.files.set('/text.png', Buffer.from('<html>this is not a picture</html>'));
  files.files.set('/huge.png', png(11, 700));
  files.files.set('/moved.png', 302);
  await h.s3.send(new PutObjectCommand({ Bucket: h.bucket, Key: 'uploads/soon-gone.png', Body: png(12) }));
  const producer = h.producer();
  await producer.enqueueBulk([
    { id: 'gone', prompt: 'gone', input_image_3: `s3://${h.bucket}/uploads/soon-gone.png` },
    { id: 'text', prompt: 'text', input_image_2: files.url('/text.png') },
    { id: 'huge', prompt: 'huge', input_image: files.url('/huge.png') },
    { id: 'nf', prompt: 'nf', input_image: files.url('/nothing-here.png') },
    { id: 'redirect', prompt: 'redirect', input_image: files.url('/moved.png') },
    { id: 'rebind', prompt: 'rebind', input_image: 'https://images.internal-corp.example/cat.png' },
    { id: 'nodns', prompt: 'nodns', input_image: 'https://nowhere.example/cat.png' },
    { id: 'named-loopback', prompt: 'named loopback', input_image: files.url('/huge.png', 'images.example.test') },
  ]);
  await h.s3.send(new DeleteObjectCommand({ Bucket: h.bucket, Key: 'uploads/soon-gone.png' }));
  const base = testResolver({ 'images.internal-corp.example': [{ address: '10.9.8.7', family: 4 }] });
  const resolver: HostResolver = async (host) => {
    if (host === 'nowhere.example') throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return base(host);
  };
  const strict = await h.worker({ INPUT_URL_ALLOW_PRIVATE: '0' }, { tlsCa: files.cert, resolver });
  const expected: Record<string, RegExp> = {
    gone: new RegExp(`^permanent: input_image_3: s3://${h.bucket}/uploads/soon-gone\\.png not found$`),
    text: /^permanent: input_image_2: https:\/\/localhost:\d+\/text\.png is refused: host localhost is a private or loopback address$/,
    // A name that resolves to loopback: refused after DNS, before any connection.
    'named-loopback': /^permanent: input_image: https:\/\/images\.example\.test:\d+\/huge\.png is refused: host images\.example\.test resolves to 127\.0\.0\.1, a private or loopback address$/,
    rebind: /^permanent: input_image: https:\/\/images\.internal-corp\.example\/cat\.png is refused: host images\.internal-corp\.example resolves to 10\.9\.8\.7, a private or loopback address$/,
    // A host that does not resolve may resolve later: retried like any transient error, not refused.
    nodns: /^transient: input_image: https:\/\/nowhere\.example\/cat\.png: .*host nowhere\.example does not resolve \(ENOTFOUND\)/,
  };
  for (const [id, re] of Object.entries(expected)) {
    const st = await producer.waitFor(id);
    assert.equal(st.state, 'failed', id);
    assert.match(st.error ?? '', re);
    assert.equal(st.attempts, 0, `${id}: no upstream call`);
    // The id record is final before BullMQ moves the job: wait for the move to count tries.
    const tries = await waitFor(async () => {
      const job = await producer.queue.getJob(id);
      return job?.finishedOn ? job.attemptsMade : undefined;
    }, { what: `${id} finished in BullMQ` });
    assert.equal(tries, id === 'nodns' ? h.config().worker.jobAttempts : 1, `${id}: tries`);
  }
  // With private URLs allowed, the content itself is checked.
  await strict.close();
  await h.worker({}, { tlsCa: files.cert, resolver });
  await producer.enqueueBulk([
    { id: 'text-2', prompt: 'text 2', input_image_2: files.url('/text.png') },
    { id: 'huge-2', prompt: 'huge 2', input_image: files.url('/huge.png') },
    { id: 'nf-2', prompt: 'nf 2', input_image: files.url('/nothing-here.png') },
    { id: 'redirect-2', prompt: 'redirect 2', input_image: files.url('/moved.png', 'images.example.test') },
  ]);
  const more: Record<string, RegExp> = {
    'text-2': /^permanent: input_image_2: https:\/\/localhost:\d+\/text\.png is not a PNG, JPEG or WebP image$/,
    'huge-2': /^permanent: input_image: https:\/\/localhost:\d+\/huge\.png is \d+ bytes, more than MAX_INPUT_IMAGE_BYTES \(200000\)$/,
    'nf-2': /^permanent: input_image: https:\/\/localhost:\d+\/nothing-here\.png not found \(HTTP 404\)$/,
    'redirect-2': /^permanent: input_image: https:\/\/images\.example\.test:\d+\/moved\.png not found \(HTTP 404\)$/,
  };
  for (const [id, re] of Object.entries(more)) {
    const st = await producer.waitFor(id);
    assert.equal(st.state, 'failed', id);
    assert.match(st.error ?? '', re);
  }
  assert.ok(files.requests.includes('/redirected.png'), 'the redirect was followed (and checked again)');
  assert.equal(h.fake.calls.length, 0, 'no bad input reached the upstream');
});
