import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EVENT, emitEvent } from '../../src/shared/events.js';
import { startHarness } from '../helpers/harness.js';

test('a consumer-group reader stopped mid-stream and restarted receives every event once', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const producer = h.producer();
  const key = producer.keys.events;
  for (let i = 0; i < 30; i++) await emitEvent(h.redis, key, 1000, EVENT.queueResumed, { by: `e${i}` });

  const seen: string[] = [];
  for await (const ev of producer.events({ group: 'billing', consumer: 'billing-1', blockMs: 100 })) {
    seen.push((ev.data as { by: string }).by);
    if (seen.length === 12) break; // stop mid-stream
  }
  // Events arrive while the reader is down.
  for (let i = 30; i < 40; i++) await emitEvent(h.redis, key, 1000, EVENT.queueResumed, { by: `e${i}` });
  const again = h.producer();
  const ac = new AbortController();
  for await (const ev of again.events({ group: 'billing', consumer: 'billing-1', blockMs: 100, signal: ac.signal })) {
    seen.push((ev.data as { by: string }).by);
    if (seen.length === 40) ac.abort();
  }
  assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => `e${i}`), 'every event once, in order');
  const pending = (await h.redis.xpending(key, 'billing')) as [number, ...unknown[]];
  assert.equal(pending[0], 0, 'nothing left unacknowledged');

  // Another group reads the whole stream independently; autoAck: false keeps what is not acked.
  const other: string[] = [];
  for await (const ev of producer.events({ group: 'audit', consumer: 'a1', blockMs: 100, autoAck: false })) {
    other.push(ev.id);
    if (other.length <= 5) await ev.ack();
    if (other.length === 40) break;
  }
  const auditPending = (await h.redis.xpending(key, 'audit')) as [number, ...unknown[]];
  assert.equal(auditPending[0], 35);
  const redelivered: string[] = [];
  for await (const ev of producer.events({ group: 'audit', consumer: 'a1', blockMs: 100 })) {
    redelivered.push(ev.id);
    if (redelivered.length === 35) break;
  }
  assert.deepEqual(redelivered, other.slice(5), 'unacknowledged events come back after a restart');
});
