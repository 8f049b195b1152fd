import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { test } from 'node:test';
import { lineJobId } from '../../src/producer/api/openai/batch-lines.js';
import { OpenAiBatchRecords, type OpenAiBatchRecord } from '../../src/producer/api/openai/batch-record.js';
import { errorFileId, outputFileId } from '../../src/producer/api/openai/batch-runner.js';
import { FileStore } from '../../src/producer/api/openai/file-store.js';
import { BatchStore } from '../../src/shared/batch-store.js';
import { JobRecords } from '../../src/shared/job-record.js';
import { openaiFileKey, redisKeys } from '../../src/shared/keys.js';
import { startHarness } from '../helpers/harness.js';
import { runJsonChild } from '../helpers/json-child.js';

/**
 * SPEC §10: a batch's output and error files are streamed to S3 (a page of job records at
 * a time), never built whole: a 50 000-line batch with ~40 MB of result files is written
 * by a process whose heap is capped at 64 MiB.
 */
const MB = 1024 * 1024;
const CHILD = new URL('../helpers/openai-results-child.ts', import.meta.url).pathname;
const LINES = 50_000;

async function readLines(body: Readable): Promise<string[]> {
  const out: string[] = [];
  for await (const l of createInterface({ input: body, crlfDelay: Infinity })) if (l) out.push(l);
  return out;
}

test(`a ${LINES}-line OpenAI batch's output and error files (~40 MB) are streamed by a writer with a 64 MiB heap: every custom_id once`, { timeout: 400_000 }, async (t) => {
  const h = await startHarness(t);
  const cfg = h.config('api', { API_INSECURE: '1' });
  const keys = redisKeys(cfg.queue.prefix, cfg.queue.name);
  const records = new JobRecords(h.redis, keys, { ttlS: cfg.idempotencyTtlS, eventsMaxLen: cfg.events.maxLen });
  const batches = new BatchStore(h.redis, keys, { eventsMaxLen: cfg.events.maxLen });
  const files = new FileStore({ s3: h.s3, bucket: h.bucket, keyPrefix: cfg.s3.keyPrefix });
  const batchId = 'batch_memory0test';
  const sha = 'f'.repeat(64);
  // Long custom_ids make long output lines (~800 bytes each).
  const customId = (i: number) => `line-${i}-${'x'.repeat(500)}`;
  const input = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: customId(i), method: 'POST', url: '/v1/images/generations', body: { prompt: `p ${i}` } })).join('\n');
  const file = await files.put(Buffer.from(input), 'big.jsonl', 'batch', undefined);
  const ids = Array.from({ length: LINES }, (_, i) => lineJobId('default', sha, customId(i)));
  const now = Date.now();
  for (let i = 0; i < LINES; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const p = h.redis.pipeline();
    chunk.forEach((id, n) => records.register(p, { id, batchId, prompt: `p ${i + n}` }, now));
    await p.exec();
    await batches.addJobs(batchId, chunk);
  }
  for (let i = 0; i < LINES; i += 500) {
    await Promise.all(
      ids.slice(i, i + 500).map((id, n) => {
        const k = i + n;
        if (k % 10 === 9) return records.finalize(id, { state: 'failed', batchId, error: `transient: HTTP 502: bad gateway ${k}` });
        const image = { bucket: h.bucket, key: `images/${batchId}/${id}/0.png`, sha256: k.toString(16).padStart(64, '0'), bytes: 1000 + k, contentType: 'image/png' };
        return records.finalize(id, { state: 'completed', batchId, result: JSON.stringify({ images: [image], created: 1, output_mp: 1, input_mp: 0 }) });
      }),
    );
  }
  const rec: OpenAiBatchRecord = {
    id: batchId,
    status: 'finalizing',
    inputFileId: file.id,
    completionWindow: '24h',
    createdAt: Math.floor(now / 1000),
    expiresAt: Math.floor(now / 1000) + 86_400,
    finalizingAt: Math.floor(now / 1000),
    metadata: null,
    errors: null,
    fileSha256: sha,
    total: LINES,
    completed: 0,
    failed: 0,
    preCompleted: 0,
  };
  await new OpenAiBatchRecords(h.redis, keys).create(rec);

  const r = await runJsonChild<{ rec: OpenAiBatchRecord; heapMax: number }>(CHILD, [batchId], {
    nodeFlags: ['--max-old-space-size=64'],
    env: { ...h.env, API_INSECURE: '1' },
    timeoutMs: 300_000,
  });
  t.diagnostic(`writer's peak heap: ${(r.heapMax / MB).toFixed(1)} MB`);
  assert.equal(r.rec.status, 'completed');
  assert.deepEqual([r.rec.total, r.rec.completed, r.rec.failed], [LINES, LINES - LINES / 10, LINES / 10]);
  assert.equal(r.rec.outputFileId, outputFileId(batchId));
  assert.equal(r.rec.errorFileId, errorFileId(batchId));

  const get = async (id: string) => (await h.s3.send(new GetObjectCommand({ Bucket: h.bucket, Key: openaiFileKey(cfg.s3.keyPrefix, id) }))).Body as Readable;
  const out = await readLines(await get(outputFileId(batchId)));
  const errs = await readLines(await get(errorFileId(batchId)));
  const bytes = out.reduce((a, l) => a + l.length + 1, 0) + errs.reduce((a, l) => a + l.length + 1, 0);
  t.diagnostic(`result files: ${(bytes / MB).toFixed(1)} MB`);
  assert.ok(bytes > 35 * MB, `the files are larger than the writer's heap could hold twice (${bytes} bytes)`);
  const seen = new Set<string>();
  for (const l of [...out, ...errs]) {
    const o = JSON.parse(l) as { custom_id: string; response: { body: { data: { url: string }[] } } | null; error: { code: string } | null };
    assert.ok(!seen.has(o.custom_id), `${o.custom_id.slice(0, 20)} once`);
    seen.add(o.custom_id);
    const i = Number(o.custom_id.split('-')[1]);
    if (i % 10 === 9) assert.equal(o.error?.code, 'job_failed');
    else assert.equal(o.response?.body.data[0]?.url, `s3://${h.bucket}/images/${batchId}/${ids[i]}/0.png`);
  }
  assert.equal(seen.size, LINES);
});
