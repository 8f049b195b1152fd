import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReason, UpstreamError } from '../../src/shared/errors.js';
import { classifyHttpError, classifyTransportError, kindForStatus, parseRetryAfter, readErrorBody } from '../../src/worker/classify.js';

test('every status of SPEC §1 maps to its class', () => {
  const table: [number, string][] = [
    [400, 'permanent'], [404, 'permanent'], [413, 'permanent'], [422, 'permanent'],
    [401, 'account'], [402, 'account'], [403, 'account'],
    [429, 'rate_limited'],
    [409, 'transient'], [425, 'transient'], [500, 'transient'], [502, 'transient'], [503, 'transient'],
    [408, 'ambiguous'], [504, 'ambiguous'],
    [418, 'permanent'], [507, 'transient'], [301, 'permanent'],
  ];
  for (const [status, kind] of table) assert.equal(kindForStatus(status), kind, String(status));
  assert.equal(kindForStatus(400, 'sensitive_check_error'), 'permanent');
});

test('Retry-After in seconds, as an HTTP date, or missing (5 s)', () => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  assert.equal(parseRetryAfter('2', now), 2000);
  assert.equal(parseRetryAfter('1.5', now), 1500);
  assert.equal(parseRetryAfter('Wed, 02 Dec 2026 12:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 02 Dec 2026 11:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter(undefined, now), 5000);
  assert.equal(parseRetryAfter('soon', now), 5000);
  assert.equal(parseRetryAfter(['3', '9'], now), 3000);
  assert.equal(parseRetryAfter('999999', now), 3_600_000, 'clamped to an hour');
});

test('error bodies give the upstream type and own message; the reason is one line', () => {
  assert.deepEqual(readErrorBody('{"error":{"message":"prompt refused by moderation","type":"sensitive_check_error"}}'), { type: 'sensitive_check_error', message: 'prompt refused by moderation' });
  assert.deepEqual(readErrorBody('<html>\n<b>Bad gateway</b>\n</html>'), { message: '<html> <b>Bad gateway</b> </html>' });
  assert.deepEqual(readErrorBody(''), { message: 'empty body' });
  const err = classifyHttpError(422, '{"error":{"message":"prompt refused by moderation","type":"sensitive_check_error"}}');
  assert.ok(err instanceof UpstreamError);
  assert.equal(err.message, 'permanent: HTTP 422 sensitive_check_error: prompt refused by moderation');
  assert.equal(err.retryable, false);
  const limited = classifyHttpError(429, '{"error":{"message":"slow","type":"rate_limit"}}', { retryAfter: '7' });
  assert.equal(limited.kind, 'rate_limited');
  assert.equal(limited.retryAfterMs, 7000);
  assert.equal(limited.retryable, true);
  assert.equal(classifyHttpError(402, '{"error":{"message":"no credits"}}').message, 'account: HTTP 402: no credits (out of credits: top up, then run `fluxq resume`)');
  assert.equal(formatReason('ambiguous', undefined, undefined, 'no answer'), 'ambiguous: no answer');
});

test('transport errors: refused before sending is transient; timeouts and resets are ambiguous', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  assert.equal(classifyTransportError(refused, { timedOut: false, timeoutMs: 1 }).kind, 'transient');
  const wrapped = Object.assign(new TypeError('fetch failed'), { cause: refused });
  assert.equal(classifyTransportError(wrapped, { timedOut: false, timeoutMs: 1 }).kind, 'transient');
  const reset = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET', cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });
  const r = classifyTransportError(reset, { timedOut: false, timeoutMs: 1 });
  assert.equal(r.kind, 'ambiguous');
  assert.equal(r.possiblyBilled, true);
  const t = classifyTransportError(new Error('aborted'), { timedOut: true, timeoutMs: 120000 });
  assert.equal(t.message, 'ambiguous: no answer within FLUX_TIMEOUT_MS (120000 ms)');
});
