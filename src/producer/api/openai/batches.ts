import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { toFieldProblems } from '../../../shared/envelope.js';
import type { Config } from '../../../shared/config.js';
import { BATCH_ENDPOINT } from './batch-lines.js';
import { FINAL_STATUSES, type OpenAiBatchRecord, type OpenAiBatchRecords } from './batch-record.js';
import { newOpenAiBatchId, type BatchRunner, type RequestCounts } from './batch-runner.js';
import type { FileStore } from './file-store.js';
import { invalidRequest, notFound } from './openai-error.js';

/** The Batch API routes (SPEC §10): create, retrieve, list (`limit`, `after`), cancel. */
const createBody = z.strictObject({
  input_file_id: z.string({ error: 'is required: the id of a file uploaded with purpose "batch"' }),
  endpoint: z.literal(BATCH_ENDPOINT, { error: `must be "${BATCH_ENDPOINT}"` }),
  completion_window: z.literal('24h', { error: 'must be "24h"' }),
  metadata: z
    .record(z.string().max(64), z.string({ error: 'values must be strings' }).max(512))
    .refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 pairs' })
    .nullable()
    .optional(),
});

const BATCH_ID_RE = /^batch_[A-Za-z0-9]{1,64}$/;

/** The OpenAI batch object; a cancel asked for and not yet done reads `cancelling`. */
export function batchObject(rec: OpenAiBatchRecord, counts: RequestCounts): Record<string, unknown> {
  const cancelling = rec.cancellingAt !== undefined && !FINAL_STATUSES.has(rec.status);
  const ts = (v: number | undefined) => v ?? null;
  return {
    id: rec.id,
    object: 'batch',
    endpoint: BATCH_ENDPOINT,
    errors: rec.errors ? { object: 'list', data: rec.errors } : null,
    input_file_id: rec.inputFileId,
    completion_window: rec.completionWindow,
    status: cancelling ? 'cancelling' : rec.status,
    output_file_id: rec.outputFileId ?? null,
    error_file_id: rec.errorFileId ?? null,
    created_at: rec.createdAt,
    in_progress_at: ts(rec.inProgressAt),
    expires_at: rec.expiresAt,
    finalizing_at: ts(rec.finalizingAt),
    completed_at: ts(rec.completedAt),
    failed_at: ts(rec.failedAt),
    expired_at: ts(rec.expiredAt),
    cancelling_at: ts(rec.cancellingAt),
    cancelled_at: ts(rec.cancelledAt),
    request_counts: counts,
    metadata: rec.metadata,
  };
}

export interface BatchRouteDeps {
  config: Config;
  files: FileStore;
  records: OpenAiBatchRecords;
  runner: BatchRunner;
  /** The caller's tenant (undefined: the operator's token). */
  tenantOf: (req: unknown) => string | undefined;
}

export function batchRoutes(app: FastifyInstance, d: BatchRouteDeps): void {
  const view = async (rec: OpenAiBatchRecord) => batchObject(rec, await d.runner.liveCounts(rec));
  /** A batch the caller may see: its own tenant's, or any for the operator. */
  const visible = async (req: unknown, id: string) => {
    const rec = BATCH_ID_RE.test(id) ? await d.records.get(id) : undefined;
    const tenant = d.tenantOf(req);
    if (!rec || (tenant !== undefined && rec.tenant !== tenant)) throw notFound('batch', id);
    return rec;
  };

  app.post('/batches', async (req) => {
    const parsed = createBody.safeParse(req.body);
    if (!parsed.success) throw invalidRequest(toFieldProblems(parsed.error));
    const b = parsed.data;
    const tenant = d.tenantOf(req);
    const stored = await d.files.head(b.input_file_id);
    if (!stored || stored.file.purpose !== 'batch' || (tenant !== undefined && stored.tenant !== tenant)) throw invalidRequest([{ path: 'input_file_id', message: `no file "${b.input_file_id}" uploaded with purpose "batch"` }]);
    const now = Math.floor(Date.now() / 1000);
    const rec: OpenAiBatchRecord = {
      id: newOpenAiBatchId(),
      status: 'validating',
      inputFileId: b.input_file_id,
      completionWindow: b.completion_window,
      createdAt: now,
      expiresAt: now + d.config.openai.batchWindowS,
      metadata: b.metadata ?? null,
      errors: null,
      total: 0,
      completed: 0,
      failed: 0,
      preCompleted: 0,
      ...(tenant ? { tenant } : {}),
    };
    await d.records.create(rec);
    void d.runner.advance(rec.id);
    return view(rec);
  });

  app.get<{ Params: { id: string } }>('/batches/:id', async (req) => {
    const rec = await visible(req, req.params.id);
    if (!FINAL_STATUSES.has(rec.status)) void d.runner.advance(rec.id);
    return view(rec);
  });

  app.get<{ Querystring: { limit?: string; after?: string } }>('/batches', async (req) => {
    const limit = req.query.limit === undefined ? 20 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalidRequest([{ path: 'limit', message: 'must be an integer 1–100' }]);
    const tenant = d.tenantOf(req);
    const data: Record<string, unknown>[] = [];
    let after = req.query.after;
    let hasMore = false;
    // A tenant's page skips other tenants' batches: read on until it is full.
    for (let round = 0; round < 50 && data.length < limit; round++) {
      const page = await d.records.page(limit - data.length, after);
      for (const id of page.ids) {
        const rec = await d.records.get(id);
        if (rec && (tenant === undefined || rec.tenant === tenant)) data.push(await view(rec));
      }
      hasMore = page.hasMore;
      if (!page.hasMore || page.ids.length === 0) break;
      after = page.ids[page.ids.length - 1];
    }
    return { object: 'list', data, first_id: (data[0]?.id as string | undefined) ?? null, last_id: (data.at(-1)?.id as string | undefined) ?? null, has_more: hasMore };
  });

  app.post<{ Params: { id: string } }>('/batches/:id/cancel', async (req) => {
    const rec = await visible(req, req.params.id);
    if (!FINAL_STATUSES.has(rec.status) && rec.cancellingAt === undefined) {
      rec.cancellingAt = Math.floor(Date.now() / 1000);
      await d.records.requestCancel(rec.id, rec.cancellingAt);
      void d.runner.advance(rec.id);
    }
    return view(rec);
  });
}
