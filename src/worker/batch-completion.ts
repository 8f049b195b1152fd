import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { BatchStore } from '../shared/batch-store.js';
import type { EventData } from '../shared/events.js';
import type { JobRecords } from '../shared/job-record.js';
import { manifestKey } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { JobResult } from '../shared/result.js';

/**
 * When a batch's last job becomes final: write `{S3_KEY_PREFIX}/{B}/manifest.jsonl` (one
 * line per job), then emit `batch.completed` once for that transition. The transition
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

export class BatchCompleter {
  readonly #d: BatchCompleterDeps;
  #timer: NodeJS.Timeout | undefined;
  #running = new Map<string, Promise<void>>();

  constructor(deps: BatchCompleterDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#d.sweepMs ?? 5000);
    this.#timer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#running.values()]);
  }

  /** Complete every batch that owes its batch.completed. */
  async sweep(): Promise<void> {
    try {
      for (const id of await this.#d.batches.pending()) await this.complete(id);
    } catch (err) {
      this.#d.log.warn({ err: (err as Error).message }, 'batch completion sweep failed; will retry');
    }
  }

  /** Write the manifest and emit batch.completed, if owed and nobody else is at it. */
  complete(batchId: string): Promise<void> {
    const running = this.#running.get(batchId);
    if (running) return running;
    const p = this.#complete(batchId)
      .catch((err: unknown) => this.#d.log.warn({ batchId, err: (err as Error).message }, 'batch completion failed; the sweeper retries it'))
      .finally(() => this.#running.delete(batchId));
    this.#running.set(batchId, p);
    return p;
  }

  async manifest(batchId: string): Promise<ManifestLine[]> {
    const ids = (await this.#d.batches.members(batchId)).sort();
    const lines: ManifestLine[] = [];
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      const recs = await this.#d.records.getMany(chunk);
      chunk.forEach((id, n) => {
        const rec = recs[n];
        const line: ManifestLine = { id, state: rec?.state ?? 'waiting', prompt: rec?.prompt, images: [] };
        if (rec?.seed !== undefined) line.seed = rec.seed;
        if (rec?.state === 'completed' && rec.result) {
          line.images = (JSON.parse(rec.result) as JobResult).images.map((img) => ({ key: img.key, sha256: img.sha256, bytes: img.bytes, contentType: img.contentType }));
        }
        if (rec?.error) line.error = rec.error;
        else if (rec?.state === 'cancelled') line.error = 'cancelled';
        lines.push(line);
      });
    }
    return lines;
  }

  async #complete(batchId: string): Promise<void> {
    if (!(await this.#d.batches.owesCompletion(batchId))) return;
    if (!(await this.#d.batches.lease(batchId, 60_000))) return;
    try {
      const key = manifestKey(this.#d.keyPrefix, batchId);
      const body = Buffer.from(
        (await this.manifest(batchId)).map((l) => JSON.stringify(l)).join('\n') + '\n',
        'utf8',
      );
      await this.#d.s3.send(
        new PutObjectCommand({
          Bucket: this.#d.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/x-ndjson',
          ContentLength: body.length,
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          Metadata: { 'batch-id': batchId },
        }),
      );
      const b = await this.#d.batches.get(batchId);
      if (!b) return;
      const data: EventData['batch.completed'] = {
        batchId,
        total: b.total,
        completed: b.completed,
        failed: b.failed,
        cancelled: b.cancelled,
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
