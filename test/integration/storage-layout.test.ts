import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHarness } from '../helpers/harness.js';

test('object keys, Content-Type from the bytes, several images in data[] order, output.keyPrefix and the envelope model', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 5 } });
  h.fake.inject({ prompt: 'three', fault: { type: 'images', count: 3 } });
  h.fake.inject({ prompt: 'webp', fault: { type: 'webp' } });
  const producer = h.producer();
  // BullMQ's own QueueEvents keep working next to fluxq's stream (SPEC §5).
  const { QueueEvents } = await import('bullmq');
  const { Redis } = await import('ioredis');
  const qeConn = new Redis(h.redisUrl, { maxRetriesPerRequest: null });
  const qe = new QueueEvents(h.queueName, { connection: qeConn, prefix: h.prefix });
  t.after(async () => {
    await qe.close();
    qeConn.disconnect();
  });
  await qe.waitUntilReady();
  const bullCompleted = new Set<string>();
  qe.on('completed', ({ jobId }) => bullCompleted.add(jobId));
  await h.worker();
  await producer.enqueueBulk([
    { id: 'lone', prompt: 'no batch' },
    { id: 'multi', prompt: 'three', batch: 'b1' },
    { id: 'asked-png-got-webp', prompt: 'webp', batch: 'b1', output_format: 'png' },
    { id: 'jpeg', prompt: 'a jpeg', batch: 'b1', output_format: 'jpeg' },
    { id: 'steered', prompt: 'steered', batch: 'b1', output: { keyPrefix: 'custom/place' } },
    { id: 'flex', prompt: 'other model', model: 'flux-2-flex' },
  ]);
  const result = async (id: string) => {
    const st = await producer.waitFor(id);
    assert.equal(st.state, 'completed', `${id}: ${st.error}`);
    return st.result!;
  };
  assert.deepEqual((await result('lone')).images.map((i) => i.key), ['images/lone/0.png']);
  const multi = await result('multi');
  assert.deepEqual(multi.images.map((i) => i.key), ['images/b1/multi/0.png', 'images/b1/multi/1.png', 'images/b1/multi/2.png']);
  assert.deepEqual(multi.images.map((i) => i.sha256), h.fake.callsFor('three')[0]?.servedSha256, 'data[] order kept');
  const webp = await result('asked-png-got-webp');
  assert.deepEqual(webp.images.map((i) => [i.key, i.contentType]), [['images/b1/asked-png-got-webp/0.webp', 'image/webp']]);
  assert.equal((await h.getObject('images/b1/asked-png-got-webp/0.webp')).contentType, 'image/webp');
  assert.deepEqual((await result('jpeg')).images.map((i) => [i.key, i.contentType]), [['images/b1/jpeg/0.jpg', 'image/jpeg']]);
  assert.deepEqual((await result('steered')).images.map((i) => i.key), ['custom/place/steered/0.png']);
  const flex = await result('flex');
  assert.equal(flex.model, 'flux-2-flex');
  assert.equal(h.fake.callsFor('other model')[0]?.model, 'flux-2-flex');
  assert.equal((await result('lone')).model, 'flux-2-pro');
  const meta = (await h.getObject('images/b1/multi/1.png')).metadata;
  assert.equal(meta['job-id'], 'multi');
  assert.equal(meta['batch-id'], 'b1');
  assert.equal((await h.getObject('images/lone/0.png')).metadata['batch-id'], undefined);
  assert.equal(multi.output_mp, 3);
  const { waitFor } = await import('../helpers/wait-for.js');
  await waitFor(() => bullCompleted.size === 6, { what: 'QueueEvents completed for every job' });
  assert.equal(multi.total_pixels, 3 * 1024 * 1024);
});
