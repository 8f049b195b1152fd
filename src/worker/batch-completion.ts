import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BatchStore } from '../shared/batch-store.js';
import type { EventData } from '../shared/events.js';
import type { JobRecord, JobRecords } from '../shared/job-record.js';
import { manifestKey } from '../shared/keys.js';
import { KeyedSweeper } from '../shared/keyed-sweeper.js';
import type { Logger } from '../shared/logger.js';
import type { JobResult } from '../shared/result.js';

/**
 * When a batch's last job becomes final: write `{S3_KEY_PREFIX}/{B}/manifest.jsonl` (one
 * line per job, streamed a page of records at a time, so a 100 000-job batch needs
 * bounded memory), then emit `batch.completed` once for that transition. The transition
 * is recorded atomically with the job's final state (job-record.ts) and put in a
 * pending set; whoever holds the batch's lease does the rest, and a sweeper in every
 * worker picks up what a dead worker left.
 */
export interface ManifestLine {
  id: string;
  state: string;
  prompt: string | undefined;
  seed?: number;
  images: { key: string; sha256: string; bytes: number; contentType: string }[];
  error?: string;
}

/** Job records read per Redis round trip while writing a manifest (a page of lines is garbage soon after). */
const MANIFEST_PAGE = 250;
/** Manifest bytes per upload part (S3's minimum is 5 MiB); at most two parts are in flight. */
const MANIFEST_PART_BYTES = 5 * 1024 * 1024;

function manifestLine(id: string, rec: JobRecord | undefined): ManifestLine {
  const line: ManifestLine = { id, state: rec?.state ?? 'waiting', prompt: rec?.prompt, images: [] };
  if (rec?.seed !== undefined) line.seed = rec.seed;
  if (rec?.state === 'completed' && rec.result) {
    line.images = (JSON.parse(rec.result) as JobResult).images.map((img) => ({ key: img.key, sha256: img.sha256, bytes: img.bytes, contentType: img.contentType }));
  }
  if (rec?.error) line.error = rec.error;
  else if (rec?.state === 'cancelled') line.error = 'cancelled';
  return line;
}

export interface BatchCompleterDeps {
  batches: BatchStore;
  records: JobRecords;
  s3: S3Client;
  bucket: string;
  keyPrefix: string;
  log: Logger;
  /** How often to look for owed completions (ms). */
  sweepMs?: number;
  onEmitted?: (batchId: string, data: EventData['batch.completed']) => void;
}

export class BatchCompleter extends KeyedSweeper {
  readonly #d: BatchCompleterDeps;

  constructor(deps: BatchCompleterDeps) {
    super({ everyMs: deps.sweepMs ?? 5000, what: 'batch completion', log: deps.log, oneAtATime: true, owed: () => deps.batches.pending() });
    this.#d = deps;
  }

  protected step(batchId: string): Promise<void> {
    return this.#complete(batchId);
  }

  /** Write the manifest and emit batch.completed, if owed and nobody else is at it. */
  complete(batchId: string): Promise<void> {
    return this.run(batchId);
  }

  /** The manifest's lines, a page of job records at a time, in id order. */
  async *manifestPages(batchId: string): AsyncGenerator<ManifestLine[]> {
    for await (const ids of this.#d.batches.memberPages(batchId, MANIFEST_PAGE)) {
      const recs = await this.#d.records.getMany(ids);
      yield ids.map((id, n) => manifestLine(id, recs[n]));
    }
  }

  /** The manifest's bytes (JSON lines, each ending in a newline), a page at a time. */
  async *manifestBytes(batchId: string): AsyncGenerator<Buffer> {
    let any = false;
    for await (const lines of this.manifestPages(batchId)) {
      any = true;
      yield Buffer.from(lines.map((l) => `${JSON.stringify(l)}\n`).join(''), 'utf8');
    }
    if (!any) yield Buffer.from('\n');
  }

  async #complete(batchId: string): Promise<void> {
    if (!(await this.#d.batches.owesCompletion(batchId))) return;
    if (!(await this.#d.batches.lease(batchId, 60_000))) return;
    try {
      const key = manifestKey(this.#d.keyPrefix, batchId);
      // Streamed: a manifest under one part goes as one PutObject, a larger one as a
      // multipart upload of Buffer parts (never aws-chunked), each with its SHA-256.
      const upload = new Upload({
        client: this.#d.s3,
        params: {
          Bucket: this.#d.bucket,
          Key: key,
          Body: Readable.from(this.manifestBytes(batchId), { objectMode: false }),
          ContentType: 'application/x-ndjson',
          ChecksumAlgorithm: 'SHA256',
          Metadata: { 'batch-id': batchId },
        },
        partSize: MANIFEST_PART_BYTES,
        queueSize: 2,
      });
      await upload.done();
      const b = await this.#d.batches.get(batchId);
      if (!b) return;
      const data: EventData['batch.completed'] = {
        batchId,
        total: b.total,
        completed: b.completed,
        failed: b.failed,
        cancelled: b.cancelled,
        expired: b.expired,
        tenant: b.tenant,
        output_mp: b.outputMp,
        input_mp: b.inputMp,
        possibly_billed: b.possiblyBilled,
        cost_usd: b.costUsd,
        manifest: key,
      };
      const sid = await this.#d.batches.emitCompleted(batchId, data);
      if (sid) {
        this.#d.log.info({ batchId, total: b.total, completed: b.completed, failed: b.failed, cancelled: b.cancelled, manifest: key }, 'batch completed');
        this.#d.onEmitted?.(batchId, data);
      }
    } finally {
      await this.#d.batches.releaseLease(batchId).catch(() => undefined);
    }
  }
}
