import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOutboxEntry } from '../../src/worker/webhook-outbox-entry.js';

const GOOD = { id: '1700000000000-0', url: 'https://hooks.example.com/x?token=t', secret: 'whsec_c2VjcmV0', type: 'job.completed', data: '{"jobId":"j1"}', jobId: 'j1', at: 1700000000000 };

test('a well-formed outbox entry reads as its delivery', () => {
  const e = parseOutboxEntry(JSON.stringify(GOOD));
  assert.deepEqual(e, { ok: true, delivery: GOOD });
  const batch = { ...GOOD, jobId: undefined, batchId: 'b1', type: 'batch.completed' };
  assert.deepEqual(parseOutboxEntry(JSON.stringify(batch)), { ok: true, delivery: { id: GOOD.id, url: GOOD.url, secret: GOOD.secret, type: 'batch.completed', data: GOOD.data, at: GOOD.at, batchId: 'b1' } });
});

test('an entry\'s trace context (SPEC §9) is kept when it is text, dropped otherwise; the delivery is good either way', () => {
  const trace = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}';
  assert.deepEqual(parseOutboxEntry(JSON.stringify({ ...GOOD, trace })), { ok: true, delivery: { ...GOOD, trace } });
  assert.deepEqual(parseOutboxEntry(JSON.stringify({ ...GOOD, trace: 42 })), { ok: true, delivery: GOOD });
});

test('an unusable entry says what is wrong and what of it could be read, never its secret or data', () => {
  const cases: [raw: string, problem: RegExp, known: Record<string, string>][] = [
    ['{not json', /^not valid JSON$/, {}],
    ['"a string"', /^not a JSON object$/, {}],
    ['[1,2]', /^not a JSON object$/, {}],
    ['null', /^not a JSON object$/, {}],
    [JSON.stringify({ foo: 1 }), /missing or invalid id, url, secret, type, data, at, jobId or batchId/, {}],
    [JSON.stringify({ ...GOOD, secret: undefined }), /^missing or invalid secret$/, { id: GOOD.id, url: GOOD.url, jobId: 'j1' }],
    [JSON.stringify({ ...GOOD, secret: 42 }), /^missing or invalid secret$/, { id: GOOD.id, url: GOOD.url, jobId: 'j1' }],
    [JSON.stringify({ ...GOOD, at: 'yesterday' }), /^missing or invalid at$/, { id: GOOD.id, url: GOOD.url, jobId: 'j1' }],
    [JSON.stringify({ ...GOOD, id: 'has:colon' }), /^missing or invalid id$/, { id: 'has:colon', url: GOOD.url, jobId: 'j1' }],
    [JSON.stringify({ ...GOOD, jobId: undefined }), /^missing or invalid jobId or batchId$/, { id: GOOD.id, url: GOOD.url }],
    [JSON.stringify({ ...GOOD, data: '{"cut": ' }), /^its data is not valid JSON$/, { id: GOOD.id, url: GOOD.url, jobId: 'j1' }],
  ];
  for (const [raw, problem, known] of cases) {
    const e = parseOutboxEntry(raw);
    assert.equal(e.ok, false, raw);
    if (e.ok) continue;
    assert.match(e.problem, problem, raw);
    const { ok: _ok, problem: _p, ...rest } = e;
    assert.deepEqual(rest, known, raw);
    assert.ok(!JSON.stringify(e).includes(GOOD.secret), 'the secret is not in what is reported');
  }
});
