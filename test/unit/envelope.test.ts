import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envelopeInputs, generationParams, isValidJobId, parseEnvelope } from '../../src/shared/envelope.js';
import { ValidationError, type FieldProblem } from '../../src/shared/errors.js';
import { isValidBatchId, RESERVED_JOB_IDS } from '../../src/shared/ids.js';
import { QueueKeys } from 'bullmq';
import { toUpstreamBody, UPSTREAM_FIELDS } from '../../src/shared/upstream.js';
import { jobDataSchema, jobTenant } from '../../src/shared/job-data.js';

function problemsOf(input: unknown): FieldProblem[] {
  try {
    parseEnvelope(input);
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    return err.details;
  }
  return [];
}

test('width and height: ≥ 64, multiples of 32, at most 4 MP together', () => {
  assert.deepEqual(problemsOf({ prompt: 'p', width: 63 }), [{ path: 'width', message: 'must be ≥ 64 and a multiple of 32, got 63' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', width: 65 }), [{ path: 'width', message: 'must be ≥ 64 and a multiple of 32, got 65' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', width: 32 }), [{ path: 'width', message: 'must be ≥ 64 and a multiple of 32, got 32' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', height: 100000 }), [{ path: 'height', message: 'must be ≤ 65536 (the other side is at least 64 and the image at most 4 MP), got 100000' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', width: 64.5 }), [{ path: 'width', message: 'must be an integer' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', width: '1024' }), [{ path: 'width', message: 'must be an integer' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', width: 2048, height: 2048 }), []);
  assert.deepEqual(problemsOf({ prompt: 'p', width: 2080, height: 2048 }), [{ path: 'width', message: 'width × height must be ≤ 4194304 pixels (4 MP), got 2080 × 2048' }]);
});

test('safety_tolerance 0–6 as a string (the integer is accepted); output_format png|jpeg, jpg read as jpeg', () => {
  assert.equal(parseEnvelope({ prompt: 'p', safety_tolerance: 6 }).safety_tolerance, '6');
  assert.equal(parseEnvelope({ prompt: 'p', safety_tolerance: '0' }).safety_tolerance, '0');
  assert.deepEqual(problemsOf({ prompt: 'p', safety_tolerance: 7 }), [{ path: 'safety_tolerance', message: 'must be 0–6 (0 strictest, 6 least strict)' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', safety_tolerance: '1.5' }), [{ path: 'safety_tolerance', message: 'must be 0–6 (0 strictest, 6 least strict)' }]);
  assert.equal(parseEnvelope({ prompt: 'p', output_format: 'jpg' }).output_format, 'jpeg');
  assert.deepEqual(problemsOf({ prompt: 'p', output_format: 'gif' }), [{ path: 'output_format', message: 'must be "png" or "jpeg" ("jpg" is read as "jpeg")' }]);
});

test('prompt required and non-empty; seed an integer; unknown fields named', () => {
  assert.deepEqual(problemsOf({}), [{ path: 'prompt', message: 'is required and must be a string' }]);
  assert.deepEqual(problemsOf({ prompt: '   ' }), [{ path: 'prompt', message: 'must not be empty' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', seed: 1.5 }), [{ path: 'seed', message: 'must be an integer' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', seed: -1 }), [{ path: 'seed', message: 'must be ≥ 0' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', colour: 1, size: 2 }), [
    { path: 'colour', message: 'is not a known field' },
    { path: 'size', message: 'is not a known field' },
  ]);
  assert.deepEqual(problemsOf('a string'), [{ path: '', message: 'must be a JSON object' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', input_image_9: 'x' }), [{ path: 'input_image_9', message: 'is not a known field' }]);
});

test('ids: 1–128 of A–Z a–z 0–9 . _ ~ -, not all digits', () => {
  for (const ok of ['a', 'job-1', 'A.b_c~d-e', '0x1', 'x'.repeat(128)]) assert.ok(isValidJobId(ok), ok);
  for (const bad of ['', '123', 'a:b', 'a/b', 'a b', 'x'.repeat(129), 'é']) assert.ok(!isValidJobId(bad), bad);
  assert.equal(problemsOf({ prompt: 'p', id: 123 })[0]?.path, 'id');
});

/** SPEC §7's explicit list of names BullMQ keeps under the queue's own key. */
const SPEC_RESERVED = ['meta', 'events', 'id', 'wait', 'active', 'paused', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children', 'limiter', 'marker', 'stalled', 'stalled-check', 'pc', 'de', 'repeat'];

test('ids: not "." or "..", and not a name BullMQ keeps under the queue key (each one refused naming id)', () => {
  const fromBullmq = Object.keys(new QueueKeys().getKeys('q')).filter((k) => k !== '');
  assert.ok(fromBullmq.includes('marker') && fromBullmq.length >= 18, `the pinned BullMQ's key names: ${fromBullmq.join(', ')}`);
  for (const name of [...SPEC_RESERVED, ...fromBullmq, 'metrics', 'priority', 'dn']) {
    assert.ok(RESERVED_JOB_IDS.has(name), name);
    assert.ok(!isValidJobId(name), name);
    const problems = problemsOf({ prompt: 'p', id: name });
    assert.equal(problems.length, 1, name);
    assert.equal(problems[0]?.path, 'id');
    assert.match(problems[0]?.message ?? '', new RegExp(`^must not be "${name}": BullMQ keeps a key of that name under the queue's key \\(reserved: .*marker.*\\); ids are 1–128 characters of A–Z a–z 0–9 \\. _ ~ -`));
  }
  for (const dots of ['.', '..']) {
    assert.ok(!isValidJobId(dots), dots);
    assert.deepEqual(problemsOf({ prompt: 'p', id: dots }).map((p) => p.path), ['id']);
    assert.match(problemsOf({ prompt: 'p', id: dots })[0]?.message ?? '', new RegExp(`^must not be "\\${dots === '.' ? '.' : '.\\.'}"`));
  }
  assert.match(problemsOf({ prompt: 'p', id: '123' })[0]?.message ?? '', /^must not be all digits/);
  // Redis keys are case-sensitive: `Marker` is no key of BullMQ's, and names that merely contain one are fine.
  for (const ok of ['Marker', 'META', 'marker-1', 'my.events', '...', '.a', 'a..b', 'ids']) assert.ok(isValidJobId(ok), ok);
});

test('batch ids: 1–100 of A–Z a–z 0–9 . _ ~ -, not "." or ".." (they form S3 keys), refused naming batch', () => {
  for (const ok of ['b', 'marker', '123', 'x'.repeat(100), '...']) assert.ok(isValidBatchId(ok), ok);
  for (const bad of ['.', '..', '', 'a:b', 'a/b', 'x'.repeat(101)]) {
    assert.ok(!isValidBatchId(bad), bad);
    const problems = problemsOf({ prompt: 'p', batch: bad });
    assert.deepEqual(problems.map((p) => p.path), ['batch'], bad);
    assert.match(problems[0]?.message ?? '', /1–100 characters of A–Z a–z 0–9 \. _ ~ -, not "\." or "\.\."/);
  }
});

test('metadata is a small JSON object without prototype keys', () => {
  assert.deepEqual(problemsOf({ prompt: 'p', metadata: [1] }), [{ path: 'metadata', message: 'must be a JSON object' }]);
  assert.deepEqual(problemsOf(JSON.parse('{"prompt":"p","metadata":{"a":{"__proto__":{"x":1}}}}')), [{ path: 'metadata.a', message: 'key "__proto__" is not allowed' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', metadata: { big: 'x'.repeat(5000) } })[0]?.path, 'metadata');
  assert.deepEqual(problemsOf(JSON.parse('{"prompt":"p","__proto__":{"polluted":true}}')), [{ path: '__proto__', message: 'is not a known field' }]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('webhook fields go together and must be http(s); output.keyPrefix is a safe prefix', () => {
  assert.deepEqual(problemsOf({ prompt: 'p', webhook_url: 'https://example.com/h' }), [{ path: 'webhook_secret', message: 'is required with webhook_url (webhooks are always signed)' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', webhook_url: 'file:///etc/passwd', webhook_secret: 's' }), [{ path: 'webhook_url', message: 'must be an http:// or https:// URL' }]);
  assert.deepEqual(problemsOf({ prompt: 'p', output: { keyPrefix: '/abs' } })[0]?.path, 'output.keyPrefix');
  assert.deepEqual(problemsOf({ prompt: 'p', output: { keyPrefix: 'a/../b' } })[0]?.path, 'output.keyPrefix');
  assert.deepEqual(problemsOf({ prompt: 'p', output: { keyPrefix: 'ok/x', other: 1 } }), [{ path: 'output.other', message: 'is not a known field' }]);
});

test('the upstream body is an allow-list: envelope and webhook fields never go upstream', () => {
  const env = parseEnvelope({
    prompt: 'p',
    seed: 7,
    width: 512,
    height: 512,
    safety_tolerance: 2,
    output_format: 'jpg',
    id: 'j1',
    batch: 'b',
    metadata: { a: 1 },
    model: 'flux-2-pro',
    output: { keyPrefix: 'x' },
    webhook_url: 'https://example.com/h',
    webhook_secret: 'whsec_x',
    input_image: 's3://b/k',
  });
  const body = toUpstreamBody(generationParams(env), { input_image: 'QUJD' });
  assert.deepEqual(body, { prompt: 'p', input_image: 'QUJD', seed: 7, width: 512, height: 512, safety_tolerance: '2', output_format: 'jpeg' });
  for (const f of Object.keys(body)) assert.ok((UPSTREAM_FIELDS as readonly string[]).includes(f));
  assert.deepEqual(envelopeInputs(env), { input_image: 's3://b/k' });
});

test('tenant: 1–64 of A–Z a–z 0–9 . _ -, absent means "default" in the job data accessor (SPEC §8)', () => {
  assert.equal(parseEnvelope({ prompt: 'p', tenant: 'team-a.prod_1' }).tenant, 'team-a.prod_1');
  assert.equal(parseEnvelope({ prompt: 'p', tenant: 'x'.repeat(64) }).tenant, 'x'.repeat(64));
  const rule = 'must be 1–64 characters of A–Z a–z 0–9 . _ -';
  assert.deepEqual(problemsOf({ prompt: 'p', tenant: '' }), [{ path: 'tenant', message: rule }]);
  assert.deepEqual(problemsOf({ prompt: 'p', tenant: 'x'.repeat(65) }), [{ path: 'tenant', message: rule }]);
  assert.deepEqual(problemsOf({ prompt: 'p', tenant: 'a b' }), [{ path: 'tenant', message: rule }]);
  assert.deepEqual(problemsOf({ prompt: 'p', tenant: 'a~b' }), [{ path: 'tenant', message: rule }]);
  assert.deepEqual(problemsOf({ prompt: 'p', tenant: 7 }), [{ path: 'tenant', message: 'must be a string' }]);
  assert.equal(jobTenant({ v: 1, params: { prompt: 'p' } }), 'default');
  assert.equal(jobTenant({ v: 1, params: { prompt: 'p' }, tenant: 'acme' }), 'acme');
  assert.equal(jobTenant(undefined), 'default');
  assert.equal(jobDataSchema.safeParse({ v: 1, params: { prompt: 'p' }, tenant: 'acme' }).success, true);
  assert.equal(jobDataSchema.safeParse({ v: 1, params: { prompt: 'p' }, tenant: 'a b' }).success, false);
});
