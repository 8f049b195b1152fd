import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Config } from '../../../shared/config.js';
import { DEFAULT_TENANT } from '../../../shared/ids.js';
import type { JobRecord } from '../../../shared/job-record.js';
import { KeyedSweeper } from '../../../shared/keyed-sweeper.js';
import type { Logger } from '../../../shared/logger.js';
import type { JobResult } from '../../../shared/result.js';
import type { Producer } from '../../producer.js';
import { BulkValidationError, validateRequests } from '../../validate.js';
import { lineJobId, parseBatchLine, type BatchLine } from './batch-lines.js';
import { FINAL_STATUSES, type BatchError, type OpenAiBatchRecord } from './batch-record.js';
import type { OpenAiBatchRecords } from './batch-record.js';
import type { FileStore } from './file-store.js';

/**
 * Moves OpenAI batches (SPEC §10) through their statuses: validating (every line checked
 * with `fluxq enqueue`'s rules, nothing enqueued when one is bad) → in_progress (the
 * lines are jobs of the fluxq batch of the same id) → finalizing (output and error files
 * streamed to S3 a page at a time) → completed; a cancel or the completion window passing
 * cancels the jobs not started and ends cancelled or expired once the rest are final.
 * One API process at a time works on a batch (a lease in Redis); every process sweeps.
 */
const LEASE_MS = 30_000;
/** Lines per validation and enqueue chunk, and job records per read when writing results. */
const CHUNK = 500;
const RESULT_PAGE = 250;
/** Errors kept in the batch object of a failed batch. */
const MAX_ERRORS = 1000;
/** After the window: how long the workers' deadline sweep has to expire the jobs not started, before they are cancelled. */
const EXPIRY_GRACE_S = 30;

export const outputFileId = (batchId: string) => `file-${batchId}-output`;
export const errorFileId = (batchId: string) => `file-${batchId}-errors`;
export const newOpenAiBatchId = () => `batch_${randomBytes(12).toString('hex')}`;

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface BatchRunnerDeps {
  config: Config;
  producer: Producer;
  files: FileStore;
  records: OpenAiBatchRecords;
  log: Logger;
}

const nowS = () => Math.floor(Date.now() / 1000);

/** The lines of a stored input file, parsed, a chunk at a time; blank lines skipped. */
async function* lineChunks(files: FileStore, fileId: string, onText?: (text: string) => void): AsyncGenerator<{ line: number; parsed: ReturnType<typeof parseBatchLine> | { ok: false; json: string } }[]> {
  let chunk: { line: number; parsed: ReturnType<typeof parseBatchLine> | { ok: false; json: string } }[] = [];
  for await (const { line, text } of files.lines(fileId)) {
    onText?.(text);
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      chunk.push({ line, parsed: { ok: false, json: `not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})` } });
      continue;
    }
    chunk.push({ line, parsed: parseBatchLine(value) });
    if (chunk.length >= CHUNK) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** Write to a stream, waiting for it to drain (or for its consumer to fail). */
async function write(stream: PassThrough, text: string, failed: Promise<unknown>): Promise<void> {
  if (!stream.write(text)) await Promise.race([once(stream, 'drain'), failed]);
}

export class BatchRunner extends KeyedSweeper {
  readonly #d: BatchRunnerDeps;

  /** Move one batch along as far as it can go now (no-op when another process is at it). */
  advance(id: string): Promise<void> {
    return this.run(id);
  }

  constructor(deps: BatchRunnerDeps) {
    super({ everyMs: deps.config.openai.batchSweepMs, what: 'OpenAI batch step', log: deps.log, owed: () => deps.records.open() });
    this.#d = deps;
  }

  protected step(id: string): Promise<void> {
    return this.#advance(id);
  }

  /** Live request counts of a batch that is not final yet. */
  async liveCounts(rec: OpenAiBatchRecord): Promise<RequestCounts> {
    if (FINAL_STATUSES.has(rec.status) || rec.status === 'validating') return { total: rec.total, completed: rec.completed, failed: rec.failed };
    const [b, foreign] = await Promise.all([this.#d.producer.batches.get(rec.id), this.#foreignRecords(rec.id)]);
    const fc = foreign.filter((r) => r?.state === 'completed').length;
    const ff = foreign.filter((r) => r?.state === 'failed' || r?.state === 'cancelled' || r?.state === 'expired').length;
    return { total: rec.total, completed: rec.preCompleted + (b?.completed ?? 0) + fc, failed: (b?.failed ?? 0) + (b?.cancelled ?? 0) + (b?.expired ?? 0) + ff };
  }

  async #foreignRecords(id: string): Promise<(JobRecord | undefined)[]> {
    const ids = await this.#d.records.foreign(id);
    return ids.length === 0 ? [] : this.#d.producer.records.getMany(ids);
  }

  async #allFinal(id: string): Promise<boolean> {
    const p = this.#d.producer;
    if ((await p.redis.scard(p.keys.batchOpen(id))) > 0) return false;
    return (await this.#foreignRecords(id)).every((r) => r?.state !== undefined);
  }

  async #advance(id: string): Promise<void> {
    const { records } = this.#d;
    if (!(await records.lease(id, LEASE_MS))) return;
    const renew = setInterval(() => void records.lease(id, LEASE_MS, true).catch(() => undefined), LEASE_MS / 3);
    renew.unref();
    try {
      let rec = await records.get(id);
      if (!rec || FINAL_STATUSES.has(rec.status)) return;
      if (rec.status === 'validating') {
        if (rec.cancellingAt || nowS() >= rec.expiresAt) {
          await records.update(id, { status: 'finalizing', finalizingAt: nowS(), ending: rec.cancellingAt ? 'cancelled' : 'expired' });
        } else {
          const errors = await this.#validate(rec);
          if (errors.length > 0) {
            await records.update(id, { status: 'failed', failedAt: nowS(), errors });
            return;
          }
          const enqueueErrors = await this.#enqueue(rec);
          if (enqueueErrors.length > 0) {
            // A check only the enqueue can make (an s3:// input that is missing): undo.
            await this.#d.producer.cancelBatch(id);
            await records.update(id, { status: 'failed', failedAt: nowS(), errors: enqueueErrors });
            return;
          }
          await records.update(id, { status: 'in_progress', inProgressAt: nowS() });
        }
        rec = (await records.get(id)) as OpenAiBatchRecord;
      }
      if (rec.status === 'in_progress') {
        const ending = rec.cancellingAt ? 'cancelled' : nowS() >= rec.expiresAt ? 'expired' : undefined;
        if (ending) {
          if (rec.ending !== ending) await records.update(id, { ending });
          rec.ending = ending;
          // Jobs not started are cancelled (a cancel), or expire at their deadline — the
          // window's end — through the workers' deadline sweep; should no worker sweep, they
          // are cancelled a grace period later. Running ones finish (they are paid).
          if (ending === 'cancelled' || nowS() >= rec.expiresAt + EXPIRY_GRACE_S) await this.#d.producer.cancelBatch(id);
        }
        if (!(await this.#allFinal(id))) return;
        await records.update(id, { status: 'finalizing', finalizingAt: nowS() });
        rec.status = 'finalizing';
      }
      if (rec.status === 'finalizing') {
        const counts = await this.#writeResults(rec);
        const end = rec.ending === 'cancelled' ? { status: 'cancelled' as const, cancelledAt: nowS() } : rec.ending === 'expired' ? { status: 'expired' as const, expiredAt: nowS() } : { status: 'completed' as const, completedAt: nowS() };
        await records.update(id, {
          ...end,
          ...counts,
          ...(counts.completed > 0 ? { outputFileId: outputFileId(id) } : {}),
          ...(counts.failed > 0 ? { errorFileId: errorFileId(id) } : {}),
        });
        this.#d.log.info({ batchId: id, status: end.status, ...counts }, 'OpenAI batch finished');
      }
    } finally {
      clearInterval(renew);
      await records.releaseLease(id).catch(() => undefined);
    }
  }

  /** Every line checked with the enqueue rules; custom_ids unique. Also the file's sha256 and line count. */
  async #validate(rec: OpenAiBatchRecord): Promise<BatchError[]> {
    const errors: BatchError[] = [];
    let more = 0;
    const add = (e: BatchError) => (errors.length < MAX_ERRORS ? errors.push(e) : more++);
    const seen = new Map<string, number>();
    const hash = createHash('sha256');
    let total = 0;
    for await (const chunk of lineChunks(this.#d.files, rec.inputFileId, (t) => hash.update(`${t}\n`))) {
      const good: { line: number; value: BatchLine }[] = [];
      for (const { line, parsed } of chunk) {
        total++;
        if ('json' in parsed) add({ code: 'invalid_json', message: `line ${line}: ${parsed.json}`, param: null, line });
        const customId = 'customId' in parsed ? parsed.customId : parsed.ok ? parsed.value.customId : undefined;
        if (customId !== undefined) {
          const first = seen.get(customId);
          if (first !== undefined) add({ code: 'duplicate_custom_id', message: `line ${line}: custom_id "${customId.slice(0, 100)}" is used twice (first at line ${first})`, param: 'custom_id', line });
          else seen.set(customId, line);
        }
        const named = parsed.ok ? parsed.value.envelope.tenant : undefined;
        if (rec.tenant !== undefined && named !== undefined && named !== rec.tenant) {
          add({ code: 'invalid_request', message: `line ${line}: body.tenant: this API key is tenant "${rec.tenant}"'s and cannot act for "${String(named)}"`, param: 'body.tenant', line });
        } else if (parsed.ok) good.push({ line, value: parsed.value });
        else if (!('json' in parsed)) for (const p of parsed.problems) add({ code: 'invalid_request', message: `line ${line}: ${p.path ? `${p.path}: ` : ''}${p.message}`, param: p.path || null, line });
      }
      const { problems } = validateRequests(good.map((g) => g.value.envelope), { config: this.#d.config });
      for (const item of problems) {
        const line = good[item.index]?.line ?? 0;
        for (const p of item.details) add({ code: 'invalid_request', message: `line ${line}: body.${p.path}: ${p.message}`, param: `body.${p.path}`, line });
      }
    }
    if (total === 0) add({ code: 'empty_file', message: 'the input file holds no request line', param: null, line: null });
    if (more > 0) errors.push({ code: 'too_many_errors', message: `${more} more errors not listed`, param: null, line: null });
    errors.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    if (errors.length === 0) await this.#d.records.update(rec.id, { fileSha256: hash.digest('hex'), total });
    return errors;
  }

  /**
   * Enqueue every line as a job of the fluxq batch `rec.id`, its id derived from the file
   * and the custom_id. A line whose job completed in an earlier batch is counted and not
   * run; one whose job is still open or failed there is enqueued in that batch (retried
   * when it failed) and waited for.
   */
  async #enqueue(rec: OpenAiBatchRecord): Promise<BatchError[]> {
    const fresh = (await this.#d.records.get(rec.id)) as OpenAiBatchRecord;
    const sha = fresh.fileSha256 as string;
    const { producer } = this.#d;
    let preCompleted = 0;
    for await (const chunk of lineChunks(this.#d.files, rec.inputFileId)) {
      const lines = chunk.flatMap((c) => (c.parsed.ok ? [{ line: c.line, value: c.parsed.value }] : []));
      const ids = lines.map((l) => lineJobId(rec.tenant ?? DEFAULT_TENANT, sha, l.value.customId));
      const existing = await producer.records.getMany(ids);
      const envelopes: Record<string, unknown>[] = [];
      const envLines: number[] = [];
      const foreign: string[] = [];
      lines.forEach((l, n) => {
        const jobId = ids[n] as string;
        const r = existing[n];
        const elsewhere = r?.batchId !== undefined && r.batchId !== rec.id ? r.batchId : undefined;
        if (elsewhere && r?.state === 'completed') {
          preCompleted++;
          return;
        }
        if (elsewhere) foreign.push(jobId);
        envelopes.push({ ...l.value.envelope, id: jobId, ...(elsewhere ? { batch: elsewhere } : {}) });
        envLines.push(l.line);
      });
      await this.#d.records.addForeign(rec.id, foreign);
      if (envelopes.length === 0) continue;
      try {
        // The window's end is each job's deadline (SPEC §8): what has not started by then expires.
        await producer.enqueueBulk(envelopes, { batch: rec.id, deadline: new Date(rec.expiresAt * 1000).toISOString(), ...(rec.tenant ? { tenant: rec.tenant } : {}) });
      } catch (err) {
        if (!(err instanceof BulkValidationError)) throw err;
        return err.items.flatMap((it) => it.details.map((d) => ({ code: 'invalid_request', message: `line ${envLines[it.index]}: body.${d.path}: ${d.message}`, param: `body.${d.path}`, line: envLines[it.index] ?? null })));
      }
    }
    await this.#d.records.update(rec.id, { preCompleted });
    return [];
  }

  /**
   * The output file (one line per completed request, image URLs as `s3://` references that
   * downloads presign) and the error file (failed, cancelled, expired), both streamed: a
   * page of job records at a time, two upload parts at most in memory per file.
   */
  async #writeResults(rec: OpenAiBatchRecord): Promise<RequestCounts> {
    const { files, producer } = this.#d;
    const sha = rec.fileSha256;
    const out = new PassThrough();
    const err = new PassThrough();
    const uploads = Promise.all([files.putStream(outputFileId(rec.id), out, `${rec.id}_output.jsonl`, 'batch_output', rec.tenant), files.putStream(errorFileId(rec.id), err, `${rec.id}_errors.jsonl`, 'batch_output', rec.tenant)]);
    const failed = uploads.then(() => new Promise<never>(() => undefined));
    failed.catch(() => undefined);
    const counts: RequestCounts = { total: 0, completed: 0, failed: 0 };
    const endedWhy = rec.ending === 'expired' ? { code: 'batch_expired', message: 'the completion window passed before this request started' } : { code: 'batch_cancelled', message: 'the batch was cancelled before this request started' };
    try {
      for await (const chunk of lineChunks(files, rec.inputFileId)) {
        for (let i = 0; i < chunk.length; i += RESULT_PAGE) {
          const page = chunk.slice(i, i + RESULT_PAGE).flatMap((c) => (c.parsed.ok ? [c.parsed.value.customId] : []));
          const ids = sha ? page.map((c) => lineJobId(rec.tenant ?? DEFAULT_TENANT, sha, c)) : [];
          const recs = sha ? await producer.records.getMany(ids) : [];
          for (const [n, customId] of page.entries()) {
            counts.total++;
            const jobId = ids[n] ?? '';
            const r = recs[n];
            const reqId = `batch_req_${jobId || customId}`;
            if (r?.state === 'completed' && r.result) {
              counts.completed++;
              const res = JSON.parse(r.result) as JobResult;
              const body = { created: res.created, data: res.images.map((img) => ({ url: `s3://${img.bucket}/${img.key}` })), output_mp: res.output_mp, input_mp: res.input_mp };
              await write(out, `${JSON.stringify({ id: reqId, custom_id: customId, response: { status_code: 200, request_id: jobId, body }, error: null })}\n`, failed);
            } else {
              counts.failed++;
              const error =
                r?.state === 'failed'
                  ? { code: 'job_failed', message: r.error ?? 'failed' }
                  : r?.state === 'expired'
                    ? { code: 'batch_expired', message: r.error ?? endedWhy.message }
                    : r?.state === 'cancelled' && !rec.ending
                      ? { code: 'job_cancelled', message: 'the job was cancelled' }
                      : endedWhy;
              await write(err, `${JSON.stringify({ id: reqId, custom_id: customId, response: null, error })}\n`, failed);
            }
          }
        }
      }
    } finally {
      out.end();
      err.end();
    }
    await uploads;
    return counts;
  }
}
