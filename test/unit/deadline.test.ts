import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadlineProblem, expiredReason, parseDeadlineOption, parseRfc3339 } from '../../src/shared/deadline.js';
import { eventVisibleTo } from '../../src/shared/events.js';

const NOW = Date.parse('2026-12-05T22:00:00.000Z');

test('RFC 3339 times: Z or an offset, fractions; not a date alone, not a day the month lacks', () => {
  assert.equal(parseRfc3339('2026-12-05T23:00:00Z'), Date.parse('2026-12-05T23:00:00Z'));
  assert.equal(parseRfc3339('2026-12-05T23:00:00.250+01:00'), Date.parse('2026-12-05T22:00:00.250Z'));
  assert.equal(parseRfc3339('2026-12-05t23:00:00z'), Date.parse('2026-12-05T23:00:00Z'));
  for (const bad of ['2026-12-05', '2026-12-05T23:00Z', '2026-02-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-12-05T24:00:00Z', 'tomorrow', '1733439600']) {
    assert.equal(parseRfc3339(bad), undefined, bad);
  }
});

test('an envelope deadline must be RFC 3339 and not past', () => {
  assert.equal(deadlineProblem('2026-12-05T22:00:01Z', NOW), undefined);
  assert.equal(deadlineProblem('2026-12-05T22:00:00Z', NOW), '2026-12-05T22:00:00.000Z has already passed');
  assert.equal(deadlineProblem('next week', NOW), 'must be an RFC 3339 time such as 2026-12-05T23:00:00Z');
});

test('--deadline: a duration from now (45s, 90m, 2h, 1d) or an RFC 3339 time, as UTC', () => {
  assert.equal(parseDeadlineOption('2h', NOW), '2026-12-06T00:00:00.000Z');
  assert.equal(parseDeadlineOption('90m', NOW), '2026-12-05T23:30:00.000Z');
  assert.equal(parseDeadlineOption('45s', NOW), '2026-12-05T22:00:45.000Z');
  assert.equal(parseDeadlineOption('1d', NOW), '2026-12-06T22:00:00.000Z');
  assert.equal(parseDeadlineOption('2026-12-06T01:30:00+02:00', NOW), '2026-12-05T23:30:00.000Z');
});

test('--deadline refuses 0, units it does not know, garbage and the past, naming the option', () => {
  assert.throws(() => parseDeadlineOption('0m', NOW), /--deadline: a duration must be more than 0/);
  for (const bad of ['2w', '1.5h', 'h', '-2h', 'soon']) assert.throws(() => parseDeadlineOption(bad, NOW), /--deadline: must be an RFC 3339 time .* or a duration like 90m, 2h/, bad);
  assert.throws(() => parseDeadlineOption('2026-12-05T21:00:00Z', NOW), /--deadline: 2026-12-05T21:00:00.000Z has already passed/);
});

test('the expired reason names the deadline in UTC', () => {
  assert.equal(expiredReason(Date.parse('2026-12-05T23:00:00+02:00')), 'expired: deadline 2026-12-05T21:00:00.000Z passed before the job started');
});

test('eventVisibleTo: the operator sees all; a tenant its own job and batch events (no tenant = default) and queue events only', () => {
  const ev = (type: string, data: Record<string, unknown>) => ({ type, data }) as never;
  const events = [
    ev('job.completed', { jobId: 'a', tenant: 'acme' }),
    ev('job.expired', { jobId: 'b', tenant: 'beta' }),
    ev('job.failed', { jobId: 'old' }),
    ev('batch.completed', { batchId: 'x', tenant: 'acme' }),
    ev('queue.paused', { reason: 'r' }),
    ev('webhook.failed', { jobId: 'a', url: 'u', attempts: 1, error: 'e' }),
  ];
  const ids = (t: string | undefined) => events.filter(eventVisibleTo(t)).map((e: { type: string }) => e.type);
  assert.equal(ids(undefined).length, 6);
  assert.deepEqual(ids('acme'), ['job.completed', 'batch.completed', 'queue.paused']);
  assert.deepEqual(ids('default'), ['job.failed', 'queue.paused']);
});
