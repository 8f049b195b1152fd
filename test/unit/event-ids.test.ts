import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareEventIds, trimmedAfter, type StreamPosition } from '../../src/shared/events.js';

test('stream ids compare by time, then sequence, as numbers', () => {
  assert.equal(compareEventIds('1700000000000-0', '1700000000000-0'), 0);
  assert.ok(compareEventIds('1700000000000-2', '1700000000000-10') < 0);
  assert.ok(compareEventIds('999-5', '1000-0') < 0);
  assert.ok(compareEventIds('0-0', '1-0') < 0);
});

test('trimmedAfter: yes when the oldest entry held is newer than the reader, or entries were XDELed past it', () => {
  const pos = (p: Partial<StreamPosition>): StreamPosition => ({ lastId: '50-0', firstId: '10-0', length: 41, entriesAdded: 50, maxDeletedId: '0-0', ...p });
  assert.equal(trimmedAfter(pos({}), '20-0'), false, 'the reader is inside what the stream holds');
  assert.equal(trimmedAfter(pos({}), '10-0'), false, 'its last entry is the oldest held');
  assert.equal(trimmedAfter(pos({}), '5-0'), true, 'what came after 5-0 and before 10-0 may be gone');
  assert.equal(trimmedAfter(pos({ maxDeletedId: '30-0' }), '20-0'), true, 'an XDEL after the reader');
  assert.equal(trimmedAfter(pos({ length: 50 }), '0-0'), false, 'from a stream that did not exist: all held');
  assert.equal(trimmedAfter(pos({}), '0-0'), true, 'from a stream that did not exist: 9 gone');
  // Redis 6.2 tells neither entries-added nor max-deleted-entry-id.
  assert.equal(trimmedAfter(pos({ entriesAdded: undefined, maxDeletedId: undefined }), '20-0'), false);
  assert.equal(trimmedAfter(pos({ entriesAdded: undefined, maxDeletedId: undefined }), '5-0'), true);
  assert.equal(trimmedAfter({ lastId: '0-0', firstId: undefined, length: 0, entriesAdded: 0, maxDeletedId: undefined }, '0-0'), false);
});
