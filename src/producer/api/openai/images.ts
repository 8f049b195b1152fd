import { GetObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../../shared/errors.js';
import { jobIdProblem } from '../../../shared/ids.js';
import type { JobStatus } from '../../job-status.js';
import type { ApiDeps } from '../api-deps.js';
import { presignGet } from '../presign.js';
import { imagesBodyToEnvelope } from './batch-lines.js';
import type { JobFinalWaiter } from './job-final-waiter.js';
import { invalidRequest, OpenAiError } from './openai-error.js';

/**
 * `POST /openai/v1/images/generations` (SPEC §10): the request becomes a job (priority 1,
 * the `Idempotency-Key` header as its id), and the answer waits for it to be final, up to
 * OPENAI_SYNC_TIMEOUT_S: the upstream's shape with `b64_json` or a presigned `url`; a
 * failure as the status its class implies; 504 naming the job past the timeout.
 */

/** A failed job's reason → the status the caller gets (400 permanent, 429 own tenant budget, 502 the rest). */
export function failureError(jobId: string, reason: string): OpenAiError {
  const upstreamType = /^\w+: HTTP \d+ ([a-z_]+):/.exec(reason)?.[1];
  if (reason.startsWith('permanent:')) return new OpenAiError(400, reason, { code: upstreamType ?? 'permanent' });
  if (/^budget: tenant /.test(reason)) return new OpenAiError(429, reason, { code: 'tenant_budget' });
  return new OpenAiError(502, `${reason} (job ${jobId})`, { code: upstreamType ?? reason.split(':')[0] ?? 'failed' });
}

async function readObject(deps: ApiDeps, bucket: string, key: string): Promise<Buffer> {
  const got = await deps.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

export function imagesRoutes(app: FastifyInstance, deps: ApiDeps, waiter: JobFinalWaiter, tenantOf: (req: unknown) => string | undefined): void {
  const { producer, config } = deps;

  app.post('/images/generations', async (req) => {
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest([{ path: '', message: 'the body must be a JSON object { prompt, … }' }]);
    const b = body as Record<string, unknown>;
    const { envelope, problems } = imagesBodyToEnvelope(b);
    if (problems.length > 0) throw invalidRequest(problems);
    const key = req.headers['idempotency-key'];
    if (Array.isArray(key)) throw invalidRequest([{ path: 'Idempotency-Key', message: 'must be sent once' }]);
    if (key !== undefined) {
      const why = jobIdProblem(key);
      if (why) throw invalidRequest([{ path: 'Idempotency-Key', message: `becomes the job id, so it ${why}` }]);
    }
    const id = key ?? `img-${randomUUID()}`;
    const tenant = tenantOf(req);
    if (tenant !== undefined) {
      if (typeof envelope.tenant === 'string' && envelope.tenant !== tenant) {
        throw new OpenAiError(403, `this API key is tenant "${tenant}"'s and cannot act for tenant "${envelope.tenant}" (leave tenant out)`, { type: 'invalid_request_error', param: 'tenant', code: 'other_tenant' });
      }
      // Another tenant's job by that key is not this key's to see or to wait for.
      const existing = key !== undefined ? await producer.getJob(key) : undefined;
      if (existing && existing.tenant !== tenant) throw new OpenAiError(409, `Idempotency-Key "${key}" is taken: choose another`, { param: 'Idempotency-Key', code: 'idempotency_key_taken', shouldRetry: false });
    }
    try {
      await producer.enqueue({ ...envelope, id }, { priority: 1, ...(tenant !== undefined ? { tenant } : {}) });
    } catch (err) {
      if (err instanceof ValidationError) throw invalidRequest(err.details);
      throw err;
    }
    const st = await waiter.wait(id, config.openai.syncTimeoutS * 1000);
    try {
      return await answer(deps, id, st, b.response_format === 'url' ? 'url' : 'b64_json');
    } catch (err) {
      // The clients retry 408, 409, 429 and 5xx by themselves. Without an Idempotency-Key a
      // retry is a new job that may be paid again (the first goes on, or ended for good):
      // tell them not to.
      if (err instanceof OpenAiError && key === undefined) err.shouldRetry = false;
      throw err;
    }
  });
}

async function answer(deps: ApiDeps, id: string, st: JobStatus | undefined, format: 'url' | 'b64_json'): Promise<Record<string, unknown>> {
  if (!st) throw new OpenAiError(502, `job ${id} is gone (it was removed while the request waited)`, { code: 'job_gone' });
  if (st.state === 'completed' && st.result) {
    const r = st.result;
    const data = await Promise.all(
      r.images.map(async (img) => (format === 'url' ? { url: await presignGet(deps.s3, img, deps.config.api.presignTtlS) } : { b64_json: (await readObject(deps, img.bucket, img.key)).toString('base64') })),
    );
    return { created: r.created, data, output_mp: r.output_mp, input_mp: r.input_mp };
  }
  if (st.state === 'failed') throw failureError(id, st.error ?? 'failed');
  if (st.state === 'cancelled') throw new OpenAiError(409, `job ${id} was cancelled before it ran`, { code: 'job_cancelled' });
  if (st.state === 'expired') throw new OpenAiError(504, st.error ?? `job ${id} expired before it started`, { type: 'timeout_error', code: 'job_expired' });
  throw new OpenAiError(
    504,
    `job ${id} is not finished after OPENAI_SYNC_TIMEOUT_S=${deps.config.openai.syncTimeoutS} s (it is ${st.state}); it goes on: post again with the header Idempotency-Key: ${id} to get its result`,
    { type: 'timeout_error', code: 'timeout' },
  );
}
