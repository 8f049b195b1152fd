import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../shared/errors.js';
import { jobIdProblem } from '../../shared/ids.js';
import type { JobResult } from '../../shared/result.js';
import type { JobStatus } from '../job-status.js';
import type { ApiDeps } from './api-deps.js';
import { enqueueTenant, visibleTo } from './tenant-scope.js';
import { withUrls } from './presign.js';

/** `GET /v1/jobs/:id`'s body: the status, each result image with a presigned `url`. */
export async function jobBody(deps: ApiDeps, st: JobStatus): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = { id: st.id, state: st.state };
  if (st.batchId) body.batchId = st.batchId;
  body.tenant = st.tenant;
  body.attempts = st.attempts;
  body.possibly_billed = st.possibly_billed;
  if (st.error) body.error = st.error;
  if (st.result) {
    const r = st.result as JobResult;
    body.result = { ...r, images: await withUrls(deps.s3, r.images, deps.config.api.presignTtlS) };
  }
  return body;
}

/** A path id no job can have is a 400 naming `id`: as a key it would name one of the queue's own keys. */
function checkJobId(id: string): void {
  const why = jobIdProblem(id);
  if (why) throw new ValidationError([{ path: 'id', message: why }], `id "${id}" ${why}`);
}

export function jobRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { producer } = deps;

  app.post('/v1/jobs', async (req, reply) => {
    const tenant = enqueueTenant(req, [req.body], () => 'tenant');
    if (tenant !== undefined) {
      // An id of another tenant's job is not this token's to see, retry or overwrite.
      const id = req.body !== null && typeof req.body === 'object' ? (req.body as { id?: unknown }).id : undefined;
      const existing = typeof id === 'string' && !jobIdProblem(id) ? await producer.getJob(id) : undefined;
      if (existing && existing.tenant !== tenant) return reply.code(409).send({ error: `id "${id}" is taken: choose another id` });
    }
    const outcome = await producer.enqueue(req.body, tenant !== undefined ? { tenant } : {});
    const st = await producer.getJob(outcome.id);
    return reply.code(outcome.status === 'exists' ? 200 : 201).send({ id: outcome.id, state: st?.state ?? 'waiting' });
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (req, reply) => {
    checkJobId(req.params.id);
    const st = await producer.getJob(req.params.id);
    if (!st || !visibleTo(req, st.tenant)) return reply.code(404).send({ error: `no job with id "${req.params.id}"` });
    return jobBody(deps, st);
  });

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', async (req, reply) => {
    const id = req.params.id;
    checkJobId(id);
    const own = await producer.getJob(id);
    if (own && !visibleTo(req, own.tenant)) return reply.code(404).send({ error: `no job with id "${id}"` });
    const outcome = await producer.cancelJob(id);
    if (outcome === 'unknown') return reply.code(404).send({ error: `no job with id "${id}"` });
    if (outcome === 'cancelled') return { id, state: 'cancelled' };
    const st = await producer.getJob(id);
    return reply.code(409).send({ error: `job "${id}" is ${st?.state ?? outcome}: only a job that has not started can be cancelled`, state: st?.state });
  });
}
