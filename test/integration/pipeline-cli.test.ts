import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UPSTREAM_FIELDS } from '../../src/shared/upstream.js';
import { startHarness } from '../helpers/harness.js';

test('a JSONL of 20 prompts through `fluxq enqueue --wait --json` and a `fluxq worker` ends with every image stored, byte-identical, with its event', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 150 } });
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-jsonl-'));
  const file = join(dir, 'prompts.jsonl');
  const lines = Array.from({ length: 20 }, (_, i) =>
    JSON.stringify({
      prompt: `pipeline prompt ${i + 1}`,
      seed: i,
      width: i % 2 ? 512 : 1024,
      height: 512,
      ...(i % 5 === 0 ? { output_format: 'jpeg' } : {}),
      safety_tolerance: 2,
      metadata: { row: i + 1 },
    }),
  );
  await writeFile(file, `${lines.join('\n')}\n`);

  const worker = await h.spawnWorker({ WORKER_CONCURRENCY: '4' });
  const run = await h.cli(['enqueue', file, '--batch', 'b20', '--wait', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const out = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; status: string; images: { key: string; sha256: string; contentType: string; bytes: number; bucket: string }[] });
  assert.equal(out.length, 20);
  assert.deepEqual(out.map((o) => o.id).sort(), Array.from({ length: 20 }, (_, i) => `b20-${i + 1}`).sort());
  assert.ok(out.every((o) => o.status === 'completed' && o.images.length === 1));

  // The upstream saw only allowed fields, with Authorization: Bearer.
  assert.equal(h.fake.calls.length, 20);
  for (const call of h.fake.calls) {
    assert.equal(call.authorization, `Bearer ${h.fake.apiKey}`);
    for (const f of call.fields) assert.ok((UPSTREAM_FIELDS as readonly string[]).includes(f), `field ${f} went upstream`);
    assert.equal(typeof call.safety_tolerance, 'string');
  }

  // Every image is in S3 at its key, byte-identical to what the fake served, with the right Content-Type.
  const events = await h.events();
  const completed = events.filter((e) => e.type === 'job.completed');
  assert.equal(completed.length, 20, 'one job.completed each');
  for (let i = 0; i < 20; i++) {
    const id = `b20-${i + 1}`;
    const line = out.find((o) => o.id === id);
    const img = line?.images[0];
    assert.ok(img);
    const jpeg = i % 5 === 0;
    assert.equal(img.key, `images/b20/${id}/0.${jpeg ? 'jpg' : 'png'}`);
    const obj = await h.getObject(img.key);
    assert.equal(obj.contentType, jpeg ? 'image/jpeg' : 'image/png');
    assert.equal(obj.metadata['job-id'], id);
    assert.equal(obj.metadata['batch-id'], 'b20');
    const sha = createHash('sha256').update(obj.bytes).digest('hex');
    const calls = h.fake.callsFor(`pipeline prompt ${i + 1}`);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]?.servedSha256, [sha]);
    assert.equal(img.sha256, sha);
    const ev = completed.filter((e) => (e.data as { jobId: string }).jobId === id);
    assert.equal(ev.length, 1);
    assert.deepEqual((ev[0]?.data as { metadata?: unknown }).metadata, { row: i + 1 });
  }
  worker.kill('SIGTERM');
  assert.equal(await worker.exited, 0);
});
