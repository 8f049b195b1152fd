import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startHarness } from '../helpers/harness.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';

/**
 * S3 refusing one request (a 4xx outside the configuration errors) is that job's
 * problem, not an outage: the job fails at once as permanent with S3's code, the queue
 * goes on, and the images it paid for still count in the batch's cost.
 */
test('S3 answering 400 KeyTooLongError to a PUT fails that job as permanent at once; the queue is not paused, the others complete', { timeout: 90_000 }, async (t) => {
  const spool = await mkdtemp(join(tmpdir(), 'fluxq-spool-'));
  const h = await startHarness(t, { fake: { latencyMs: 20 }, env: { SPOOL_DIR: spool } });
  const proxy = await startS3Proxy(h.s3server.endpoint);
  t.after(() => proxy.close());
  proxy.fault = ({ method, path }) =>
    method === 'PUT' && path.endsWith('/images/kt/bad/0.png') ? { status: 400, code: 'KeyTooLongError', message: 'Your key is too long' } : undefined;
  const producer = h.producer();
  await h.worker({ WORKER_CONCURRENCY: '2', S3_ENDPOINT: proxy.endpoint });
  const ids = ['ok-0', 'ok-1', 'bad', 'ok-2'];
  await producer.enqueueBulk(ids.map((id) => ({ id, prompt: `kt ${id}`, width: 1024, height: 1024 })), { batch: 'kt' });

  const b = await producer.waitForBatch('kt', { timeoutMs: 20_000 });
  assert.deepEqual(b.counts, { waiting: 0, active: 0, delayed: 0, completed: 3, failed: 1, cancelled: 0, expired: 0 });
  const bad = await producer.getJob('bad');
  assert.equal(bad?.state, 'failed');
  assert.equal(bad?.error, 'permanent: S3 400 KeyTooLongError writing images/kt/bad/0.png: Your key is too long');
  assert.equal(bad?.attempts, 1);
  assert.equal(h.fake.callsFor('kt bad').length, 1, 'one upstream call for the refused job');
  assert.equal(proxy.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/kt/bad/0.png')).length, 1, 'the refused PUT was not sent again');

  assert.equal(await producer.queue.isPaused(), false, 'the queue is not paused');
  const events = await h.events();
  assert.equal(events.filter((e) => e.type === 'queue.paused').length, 0);
  const failed = events.filter((e) => e.type === 'job.failed');
  assert.deepEqual(failed.map((e) => (e.data as { jobId: string; error: string }).jobId), ['bad']);
  assert.match((failed[0]?.data as { error: string }).error, /^permanent: S3 400 KeyTooLongError /);

  for (const id of ['ok-0', 'ok-1', 'ok-2']) {
    assert.equal((await producer.getJob(id))?.state, 'completed', id);
    assert.equal(h.fake.callsFor(`kt ${id}`).length, 1, `${id} generated once`);
  }
  assert.deepEqual((await h.listObjects('images/kt/')).filter((k) => k.endsWith('.png')), ['images/kt/ok-0/0.png', 'images/kt/ok-1/0.png', 'images/kt/ok-2/0.png']);
  assert.equal(b.output_mp, 4, 'the refused job\'s generated megapixel counts');
  assert.equal(b.cost_usd, 0.12, 'and its cost');
  assert.deepEqual(await readdir(spool), [], 'nothing left in the spool');
});
