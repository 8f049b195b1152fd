import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imagesBodyToEnvelope, lineJobId, parseBatchLine } from '../../src/producer/api/openai/batch-lines.js';
import { failureError } from '../../src/producer/api/openai/images.js';
import { isValidJobId } from '../../src/shared/ids.js';

test('lineJobId: the same tenant, file and custom_id name the same job; any of them changed, another', () => {
  const id = lineJobId('default', 'a'.repeat(64), 'req-1');
  assert.equal(id, lineJobId('default', 'a'.repeat(64), 'req-1'));
  assert.ok(isValidJobId(id), id);
  assert.notEqual(id, lineJobId('default', 'b'.repeat(64), 'req-1'));
  assert.notEqual(id, lineJobId('default', 'a'.repeat(64), 'req-2'));
  assert.notEqual(id, lineJobId('acme', 'a'.repeat(64), 'req-1'));
});

test('imagesBodyToEnvelope: size → width/height, response_format and n checked, id and batch refused', () => {
  assert.deepEqual(imagesBodyToEnvelope({ prompt: 'p', size: '512x256', response_format: 'url', n: 1 }), { envelope: { prompt: 'p', width: 512, height: 256 }, problems: [] });
  assert.deepEqual(imagesBodyToEnvelope({ prompt: 'p', size: '512x256', width: 1024 }).envelope, { prompt: 'p', width: 1024, height: 256 });
  const bad = imagesBodyToEnvelope({ prompt: 'p', size: 'big', response_format: 'png', n: 3, id: 'x', batch: 'y' }, 'body.');
  assert.deepEqual(bad.problems.map((p) => p.path), ['body.response_format', 'body.n', 'body.size', 'body.id', 'body.batch']);
});

test('parseBatchLine: every problem of a line named by field', () => {
  assert.deepEqual(parseBatchLine({ custom_id: 'a', method: 'POST', url: '/v1/images/generations', body: { prompt: 'p' } }), { ok: true, value: { customId: 'a', envelope: { prompt: 'p' } } });
  const r = parseBatchLine({ custom_id: '', method: 'GET', url: '/v1/x', body: [], extra: 1 });
  assert.equal(r.ok, false);
  assert.deepEqual(!r.ok && r.problems.map((p) => p.path), ['extra', 'custom_id', 'method', 'url', 'body']);
  assert.equal(parseBatchLine('text').ok, false);
});

test('failureError: permanent → 400 (the upstream type as code), own tenant budget → 429, the rest → 502', () => {
  const moderation = failureError('j', 'permanent: HTTP 422 sensitive_check_error: refused');
  assert.deepEqual([moderation.status, moderation.code, moderation.type], [400, 'sensitive_check_error', 'invalid_request_error']);
  assert.equal(failureError('j', 'budget: tenant acme reached 10 megapixels today').status, 429);
  const transient = failureError('j', 'transient: HTTP 503: busy');
  assert.equal(transient.status, 502);
  assert.match(transient.message, /\(job j\)$/);
  assert.equal(failureError('j', 'ambiguous: timeout after 120000 ms').status, 502);
  assert.equal(failureError('j', 'budget: batch b reached 5 megapixels').status, 502);
});
