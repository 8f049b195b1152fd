/**
 * The bare baseline: what a plain script does for the same work as a fluxq worker, with
 * no queue, ledger, checkpoint or retry. p-limit(C) × (undici POST to the upstream →
 * JSON.parse → base64 decode → sha256 → PutObject with a Buffer body). The S3 client is
 * fluxq's own (createS3Client with the worker's config and socket count), so the S3 side
 * is identical.
 *
 * Env: the worker's (FLUX_API_BASE_URL, FLUX_API_KEY, S3_*, WORKER_CONCURRENCY).
 * stdin commands (one JSON per line):
 *   {"cmd":"run","tag":T,"count":N,"width":W,"height":H}  → {"event":"done","tag":T,"jobs":[[i,startMs,endMs],…],"errors":n,"firstError"?}
 *   {"cmd":"exit"}                                          → closes and exits 0
 * Prints {"event":"ready"} once built. Exits when stdin closes.
 *
 * BASELINE_DECODE=stream (an experiment, `--stream-baseline`): instead of body.text() +
 * JSON.parse, base64-decode the b64_json value chunk by chunk as the body arrives, into
 * one buffer sized from content-length, so no whole-body buffer or string ever exists.
 */
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { loadConfig } from '../src/shared/config.js';
import { createS3Client } from '../src/shared/s3.js';
import { emit, onStdinCommands } from './util.js';

const config = loadConfig(process.env, 'worker');
const concurrency = config.worker.concurrency;
const bucket = config.s3.bucket ?? '';
const url = `${config.flux.baseUrl}/${encodeURIComponent(config.flux.model)}`;
const authorization = `Bearer ${config.flux.apiKey?.reveal() ?? ''}`;
const s3 = createS3Client(config, { maxSockets: concurrency * 2 });
const dispatcher = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
const STREAM = process.env.BASELINE_DECODE === 'stream';
const MARK = Buffer.from('"b64_json":"');

/** Decode the first b64_json value of a body as it streams in (4-character groups, carried over chunk ends). */
async function streamDecode(body: AsyncIterable<Buffer>, contentLength: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(Math.ceil((contentLength * 3) / 4) + 3);
  let outLen = 0;
  let state: 'before' | 'inside' | 'after' = 'before';
  let carry = Buffer.alloc(0);
  for await (const c of body) {
    if (state === 'after') continue;
    let chunk = carry.length > 0 ? Buffer.concat([carry, c]) : c;
    carry = Buffer.alloc(0);
    if (state === 'before') {
      const i = chunk.indexOf(MARK);
      if (i === -1) {
        carry = Buffer.from(chunk.subarray(Math.max(0, chunk.length - MARK.length + 1)));
        continue;
      }
      chunk = chunk.subarray(i + MARK.length);
      state = 'inside';
    }
    const q = chunk.indexOf(0x22);
    const part = q === -1 ? chunk : chunk.subarray(0, q);
    const usable = q === -1 ? part.length - (part.length % 4) : part.length;
    outLen += out.write(part.toString('latin1', 0, usable), outLen, 'base64');
    if (q === -1) carry = Buffer.from(part.subarray(usable));
    else state = 'after';
  }
  if (state !== 'after') throw new Error('no complete b64_json value in the body');
  return out.subarray(0, outLen);
}

async function one(tag: string, i: number, width: number, height: number): Promise<[number, number, number]> {
  const start = Date.now();
  const res = await request(url, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ prompt: `${tag} ${i}`, width, height }),
    dispatcher,
  });
  let bytes: Buffer;
  if (STREAM && res.statusCode === 200) {
    bytes = await streamDecode(res.body as AsyncIterable<Buffer>, Number(res.headers['content-length'] ?? 4 * 1024 * 1024));
  } else {
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    const json = JSON.parse(text) as { data: { b64_json: string }[] };
    const b64 = json.data[0]?.b64_json;
    if (!b64) throw new Error('no image in the answer');
    bytes = Buffer.from(b64, 'base64');
  }
  const sha256 = createHash('sha256').update(bytes).digest();
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: `images/${tag}/${tag}-${i}/0.png`,
      Body: bytes,
      ContentType: 'image/png',
      ContentLength: bytes.length,
      ChecksumSHA256: sha256.toString('base64'),
    }),
  );
  return [i, start, Date.now()];
}

async function run(tag: string, count: number, width: number, height: number): Promise<void> {
  const limit = pLimit(concurrency);
  let errors = 0;
  let firstError: string | undefined;
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      limit(() =>
        one(tag, i, width, height).catch((err: unknown) => {
          errors++;
          firstError ??= (err as Error).message;
          return undefined;
        }),
      ),
    ),
  );
  emit({ event: 'done', tag, jobs: results.filter((r) => r !== undefined), errors, ...(firstError ? { firstError } : {}) });
}

let exiting = false;
async function exit(): Promise<void> {
  if (exiting) return;
  exiting = true;
  await dispatcher.close().catch(() => undefined);
  s3.destroy();
  process.exit(0);
}

onStdinCommands((cmd) => {
  if (cmd.cmd === 'run') {
    void run(String(cmd.tag), Number(cmd.count), Number(cmd.width), Number(cmd.height)).catch((err: unknown) =>
      emit({ event: 'done', tag: cmd.tag, jobs: [], errors: Number(cmd.count), firstError: (err as Error).message }),
    );
  } else if (cmd.cmd === 'exit') void exit();
});
process.stdin.on('end', () => void exit());
process.on('SIGTERM', () => void exit());
emit({ event: 'ready', pid: process.pid });
