import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchStore } from '../../src/shared/batch-store.js';
import { JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { startHarness } from '../helpers/harness.js';
import { runJsonChild } from '../helpers/json-child.js';

/**
 * SPEC §7: a batch's manifest is bounded in memory. It used to be built whole (lines,
 * their JSON, the joined text and a Buffer of it); now it is streamed to S3 a page of
 * job records at a time (a multipart upload once it passes one 5 MiB part).
 */

const MB = 1024 * 1024;
const CHILD = new URL('../helpers/manifest-child.ts', import.meta.url).pathname;
const JOBS = 20_000;

interface Line {
  id: string;
  state: string;
  prompt: string;
  seed?: number;
  images: { key: string; sha256: string; bytes: number; contentType: string }[];
  error?: string;
}

test(`a ${JOBS}-job, ~40 MB manifest is streamed by a writer with a 64 MiB heap: every line once, in id order, byte-correct`, { timeout: 300_000 }, async (t) => {
  const h = await startHarness(t);
  const cfg = h.config();
  const keys = redisKeys(cfg.queue.prefix, cfg.queue.name);
  const records = new JobRecords(h.redis, keys, { ttlS: cfg.idempotencyTtlS, eventsMaxLen: cfg.events.maxLen });
  const batches = new BatchStore(h.redis, keys, { eventsMaxLen: cfg.events.maxLen });
  const batch = 'huge';
  const ids = Array.from({ length: JOBS }, (_, i) => `job-${String(i).padStart(6, '0')}`);
  // A long prompt per job (with characters JSON escapes) makes a ~40 MB manifest.
  const prompt = (i: number) => `prompt ${i} "quoted" ünïcode 🦊 \\ ${'x'.repeat(1800)}`;
  const now = Date.now();
  for (let i = 0; i < JOBS; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const p = h.redis.pipeline();
    chunk.forEach((id, n) => records.register(p, { id, batchId: batch, prompt: prompt(i + n), seed: i + n, width: 64, height: 64 }, now));
    await p.exec();
    await batches.addJobs(batch, chunk);
  }
  // Finalize every job as the worker does: most completed with one image, some failed.
  for (let i = 0; i < JOBS; i += 500) {
    await Promise.all(
      ids.slice(i, i + 500).map((id, n) => {
        const k = i + n;
        if (k % 10 === 9) return records.finalize(id, { state: 'failed', batchId: batch, error: `transient: HTTP 502: bad gateway ${k}` });
        const image = { key: `images/${batch}/${id}/0.png`, sha256: k.toString(16).padStart(64, '0'), bytes: 1000 + k, contentType: 'image/png' };
        return records.finalize(id, { state: 'completed', batchId: batch, result: JSON.stringify({ images: [image] }) });
      }),
    );
  }
  assert.deepEqual(await batches.pending(), [batch], 'the last finalize left the batch owing its completion');

  const r = await runJsonChild<{ before: number; after: number; emitted: boolean }>(CHILD, [batch], { nodeFlags: ['--max-old-space-size=64'], env: h.env, timeoutMs: 200_000 });
  assert.equal(r.emitted, true, 'batch.completed was emitted after the manifest');

  const body = (await h.getObject(`images/${batch}/manifest.jsonl`)).bytes;
  assert.ok(body.length > 32 * MB, `the manifest is ${body.length} bytes`);
  assert.equal(body[body.length - 1], 0x0a, 'it ends with a newline');
  const text = body.toString('utf8');
  const lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as Line);
  assert.equal(lines.length, JOBS);
  assert.deepEqual(lines.map((l) => l.id), ids, 'every job once, in id order');
  lines.forEach((l, k) => {
    assert.equal(l.prompt, prompt(k));
    assert.equal(l.seed, k);
    if (k % 10 === 9) assert.deepEqual(l, { id: ids[k], state: 'failed', prompt: prompt(k), seed: k, images: [], error: `transient: HTTP 502: bad gateway ${k}` });
    else assert.deepEqual(l, { id: ids[k], state: 'completed', prompt: prompt(k), seed: k, images: [{ key: `images/${batch}/${ids[k]}/0.png`, sha256: k.toString(16).padStart(64, '0'), bytes: 1000 + k, contentType: 'image/png' }] });
  });
  assert.equal(text, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`, 'byte for byte what JSON.stringify gives');
  assert.deepEqual(await h.redis.keys(`${h.prefix}:batch:${batch}:jobs-snapshot:*`), [], 'the id snapshot is dropped');

  // The heap cap is the sharp check (the whole-manifest writer runs out of heap); peak RSS
  // also counts garbage V8 has not collected yet, so its bound is loose.
  const growth = r.after - r.before;
  console.log(`manifest ${(body.length / MB).toFixed(1)} MiB; writer peak RSS ${(r.before / MB).toFixed(0)} → ${(r.after / MB).toFixed(0)} MiB`);
  assert.ok(growth < body.length * 2, `peak RSS grew ${(growth / MB).toFixed(1)} MiB writing a ${(body.length / MB).toFixed(1)} MiB manifest`);
});
