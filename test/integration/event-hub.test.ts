import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { startLocalRedis } from '../../src/demo/local-redis.js';
import { createEventHub, type StreamEntry } from '../../src/producer/api/event-hub.js';
import { testRedisUrl } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait-for.js';

async function rig(t: TestContext, url?: string) {
  const redis = new Redis(url ?? (await testRedisUrl()));
  redis.on('error', () => undefined);
  const key = `t-hub-${randomUUID().slice(0, 8)}:events`;
  t.after(async () => {
    await redis.del(key).catch(() => undefined);
    redis.disconnect();
  });
  let n = 0;
  const add = async (k = 1, data: Record<string, unknown> = {}): Promise<string[]> => {
    const p = redis.pipeline();
    for (let i = 0; i < k; i++) {
      n++;
      p.xadd(key, '*', 'type', n % 2 ? 'job.completed' : 'job.failed', 'data', JSON.stringify({ jobId: `j${n}`, n, ...data }));
    }
    return ((await p.exec()) ?? []).map(([, id]) => id as string);
  };
  return { redis, key, add };
}

/** Redis calls by command since the server started (`INFO commandstats`). */
async function commandCalls(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const calls = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]));
  return calls;
}

test('event hub: a live subscriber gets the entries added after it subscribed, in order, parsed; filter and unsubscribe hold', { timeout: 30_000 }, async (t) => {
  const { redis, key, add } = await rig(t);
  await add(3); // before: never seen by a live subscriber
  const hub = createEventHub({ redis, streamKey: key }, { blockMs: 200 });
  t.after(() => hub.close());
  const all: StreamEntry[] = [];
  const failed: StreamEntry[] = [];
  const stopAll = hub.subscribe((e) => all.push(e));
  hub.subscribe((e) => failed.push(e), { filter: (e) => e.type === 'job.failed' });
  // The loop has its start position once a marker added now is seen.
  await waitFor(async () => {
    await add(1);
    return all.length > 0;
  }, { what: 'the hub to be live', intervalMs: 200 });
  const ids = await add(6);
  await waitFor(() => all.some((e) => e.id === ids[5]), { what: 'the six entries' });
  assert.ok(all.every((e) => (e.data.n as number) > 3), 'nothing from before the subscription');
  const tail = all.slice(-6);
  assert.deepEqual(tail.map((e) => e.id), ids);
  assert.deepEqual(tail[0]?.data, { jobId: `j${tail[0]?.data.n}`, n: tail[0]?.data.n });
  assert.ok(failed.length > 0 && failed.every((e) => e.type === 'job.failed'));
  stopAll();
  const count = all.length;
  const more = await add(2);
  await waitFor(() => failed.some((e) => e.id === more[1] || e.id === more[0]), { what: 'the filtered subscriber still live' });
  assert.equal(all.length, count, 'an unsubscribed one gets nothing more');
});

test('event hub: `after` replays what the stream holds after that id, then joins the live feed with no gap and no duplicate while entries keep coming', { timeout: 60_000 }, async (t) => {
  const { redis, key, add } = await rig(t);
  const before = await add(300);
  const hub = createEventHub({ redis, streamKey: key }, { blockMs: 100, count: 7, replayPage: 13 });
  t.after(() => hub.close());
  const live: StreamEntry[] = [];
  hub.subscribe((e) => live.push(e)); // starts the loop
  await waitFor(async () => {
    await add(1);
    return live.length > 0;
  }, { what: 'the hub to be live', intervalMs: 200 });
  // Subscribers join at different moments while a writer adds 400 entries in small bursts.
  const got = new Map<string, StreamEntry[]>();
  const afterIds = [before[9] as string, '0', before[299] as string, before[150] as string];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; i < 80 && writing; i++) {
      await add(5);
      if (i % 20 === 0) {
        const after = afterIds[i / 20] as string;
        const list: StreamEntry[] = [];
        got.set(after, list);
        hub.subscribe((e) => list.push(e), { after, onDropped: (why) => assert.fail(`dropped: ${why}`) });
      }
    }
  })();
  await writer;
  writing = false;
  const everything = (await redis.xrange(key, '-', '+')).map(([id]) => id);
  const last = everything[everything.length - 1] as string;
  for (const [after, list] of got) {
    await waitFor(() => list[list.length - 1]?.id === last, { what: `subscriber after ${after} to reach the end`, timeoutMs: 20_000 });
    const from = after === '0' ? 0 : everything.indexOf(after) + 1;
    assert.deepEqual(list.map((e) => e.id), everything.slice(from), `after ${after}: every entry once, in order`);
  }
});

test('event hub: live entries piling up behind a long replay past the bound drop that subscriber (onDropped), not the others', { timeout: 60_000 }, async (t) => {
  const { redis, key, add } = await rig(t);
  await add(400);
  const hub = createEventHub({ redis, streamKey: key }, { blockMs: 100, replayPage: 1, maxBuffered: 10 });
  t.after(() => hub.close());
  const live: StreamEntry[] = [];
  hub.subscribe((e) => live.push(e));
  await waitFor(async () => {
    await add(1);
    return live.length > 0;
  }, { what: 'the hub to be live', intervalMs: 200 });
  const slow: StreamEntry[] = [];
  let dropped: string | undefined;
  hub.subscribe((e) => slow.push(e), { after: '0', onDropped: (why) => (dropped = why) });
  const burst = await add(50); // arrives while the replay reads its 400 entries one by one
  await waitFor(() => dropped, { what: 'the slow subscriber to be dropped' });
  assert.match(dropped as string, /more than 10 live entries waited/);
  await waitFor(() => live.some((e) => e.id === burst[49]), { what: 'the other subscriber to get the burst' });
  const n = slow.length;
  await add(3);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(slow.length, n, 'nothing more after the drop');
  assert.ok(n < 401, 'the replay stopped');
});

test('event hub: one blocking reader however many subscribers (XREAD count with 100 subscribers = with 1); close() tells each subscriber', { timeout: 60_000 }, async (t) => {
  // A private redis-server: INFO commandstats counts only this test's commands.
  const server = await startLocalRedis();
  const { redis, key, add } = await rig(t, server.url);
  t.after(() => server.stop()); // after the rig's own clean-up (hooks run in order)
  const measure = async (subscribers: number) => {
    const hub = createEventHub({ redis, streamKey: key }, { blockMs: 200 });
    const counts = Array.from({ length: subscribers }, () => 0);
    const drops: string[] = [];
    for (let i = 0; i < subscribers; i++) hub.subscribe(() => counts[i]!++, { onDropped: (why) => drops.push(why) });
    await waitFor(async () => {
      await add(1);
      return counts.every((c) => c > 0);
    }, { what: 'every subscriber live', intervalMs: 200 });
    const start = await commandCalls(redis);
    const marks = counts.slice();
    for (let i = 0; i < 20; i++) {
      await add(1);
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor(() => counts.every((c, i) => c - (marks[i] as number) === 20), { what: 'all 20 entries at every subscriber' });
    const end = await commandCalls(redis);
    await hub.close();
    assert.equal(drops.length, subscribers, 'close() tells every subscriber');
    return (end.get('xread') ?? 0) - (start.get('xread') ?? 0);
  };
  const one = await measure(1);
  const hundred = await measure(100);
  assert.ok(one >= 1 && one <= 25, `one subscriber: ${one} XREADs for 20 entries`);
  assert.ok(hundred <= one + 5, `100 subscribers: ${hundred} XREADs, 1 subscriber: ${one}`);
});
