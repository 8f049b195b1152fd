import assert from 'node:assert/strict';
import { test } from 'node:test';
import { finalizeJob } from '../../src/shared/redis-scripts/finalisation.js';
import { finalisationKeys, scriptKit, streamEntries } from './script-kit.js';

const data = JSON.stringify({ jobId: 'j1', images: ['s3://b/1.png'], note: 'ünïcode ✓' });

test('finalize-job writes state, event, webhook outbox entry and batch counts once; called again it writes nothing', async (t) => {
  const { redis, keys } = await scriptKit(t);
  await redis.sadd(keys.batchOpen('b'), 'j1', 'j2');
  await redis.hset(keys.idRecord('j1'), 'gen', '1', 'started', '1');
  const args = {
    jobId: 'j1',
    state: 'completed' as const,
    result: '{"images":1}',
    event: { type: 'job.completed', data },
    webhook: { url: 'https://hooks.example/x?token=1', secret: 'whsec_abc' },
    batchId: 'b',
    eventsMaxLen: 100,
    ttlS: 60,
    now: 1_700_000_000_123,
  };
  const first = await finalizeJob(redis, finalisationKeys(keys, 'j1', 'b'), args);
  assert.equal(first.recorded, true);
  assert.equal(first.batchFinished, false, 'j2 is still open');
  const events = await streamEntries(redis, keys.events);
  assert.deepEqual(events, [{ id: first.eventId, type: 'job.completed', data }]);
  assert.deepEqual(await redis.hgetall(keys.idRecord('j1')), {
    gen: '1', started: '1', final: '1', state: 'completed', result: '{"images":1}', error: '', finished: '1700000000123',
  });
  const outbox = (await redis.lrange(keys.webhookOutbox, 0, -1)).map((e) => JSON.parse(e) as unknown);
  assert.deepEqual(outbox, [{ id: first.eventId, url: args.webhook.url, secret: 'whsec_abc', type: 'job.completed', data, jobId: 'j1', at: 1_700_000_000_123 }]);
  assert.equal(await redis.hget(keys.stats, 'completed'), '1');
  assert.equal(await redis.hget(keys.batch('b'), 'completed'), '1');
  assert.deepEqual(await redis.smembers(keys.batchOpen('b')), ['j2']);

  // The same call again (a re-send, or a second run finishing the same generation).
  const again = await finalizeJob(redis, finalisationKeys(keys, 'j1', 'b'), { ...args, state: 'failed', error: 'late' });
  assert.deepEqual(again, { recorded: false, eventId: '', batchFinished: false });
  assert.equal((await streamEntries(redis, keys.events)).length, 1);
  assert.equal(await redis.llen(keys.webhookOutbox), 1);
  assert.deepEqual(await redis.hmget(keys.idRecord('j1'), 'state', 'error'), ['completed', '']);
  assert.deepEqual(await redis.hmget(keys.stats, 'completed', 'failed'), ['1', null]);

  // The last open job finishes the batch: pending, fin_gen, finished.
  const last = await finalizeJob(redis, finalisationKeys(keys, 'j2', 'b'), { ...args, jobId: 'j2', state: 'failed', error: 'boom', webhook: undefined, now: 5 });
  assert.equal(last.batchFinished, true);
  assert.deepEqual(await redis.hmget(keys.batch('b'), 'completed', 'failed', 'fin_gen', 'finished'), ['1', '1', '1', '5']);
  assert.deepEqual(await redis.smembers(keys.batchesPending), ['b']);
  assert.equal(await redis.llen(keys.webhookOutbox), 1, 'no webhook, no outbox entry');
});

test('finalize-job without an event or a batch records the state only', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const reply = await finalizeJob(redis, finalisationKeys(keys, 'solo'), { jobId: 'solo', state: 'failed', error: 'x', eventsMaxLen: 10, ttlS: 60, now: 7 });
  assert.deepEqual(reply, { recorded: true, eventId: '', batchFinished: false });
  assert.deepEqual(await redis.hmget(keys.idRecord('solo'), 'gen', 'final', 'state', 'error'), ['1', '1', 'failed', 'x']);
  assert.equal(await redis.exists(keys.events, keys.batch('-'), keys.batchOpen('-'), keys.batchesPending), 0);
});

test('finalize-job carries the webhook\'s trace context into the outbox entry (SPEC §9), and writes none without one', async (t) => {
  const { redis, keys } = await scriptKit(t);
  const trace = JSON.stringify({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
  const base = { state: 'completed' as const, event: { type: 'job.completed', data }, eventsMaxLen: 10, ttlS: 60, now: 9 };
  await finalizeJob(redis, finalisationKeys(keys, 'traced'), { ...base, jobId: 'traced', webhook: { url: 'https://hooks.example/t', secret: 's', trace } });
  await finalizeJob(redis, finalisationKeys(keys, 'plain'), { ...base, jobId: 'plain', webhook: { url: 'https://hooks.example/p', secret: 's' } });
  const [traced, plain] = (await redis.lrange(keys.webhookOutbox, 0, -1)).map((e) => JSON.parse(e) as Record<string, unknown>);
  assert.equal(traced?.trace, trace);
  assert.equal(traced?.jobId, 'traced');
  assert.equal(plain?.jobId, 'plain');
  assert.equal('trace' in (plain ?? {}), false);
});

test("finalize-job counts the final state under the job's tenant and takes one off its open jobs (default when none)", async (t) => {
  const { redis, keys } = await scriptKit(t);
  await redis.hset(keys.tenantStats, 'acme:open', '2');
  const base = { state: 'completed' as const, eventsMaxLen: 10, ttlS: 60, now: 1 };
  await finalizeJob(redis, finalisationKeys(keys, 't1'), { ...base, jobId: 't1', tenant: 'acme' });
  await finalizeJob(redis, finalisationKeys(keys, 't1'), { ...base, jobId: 't1', tenant: 'acme' });
  await finalizeJob(redis, finalisationKeys(keys, 't2'), { ...base, jobId: 't2', state: 'failed' });
  assert.deepEqual(await redis.hgetall(keys.tenantStats), { 'acme:open': '1', 'acme:completed': '1', 'default:failed': '1', 'default:open': '0' });
});
