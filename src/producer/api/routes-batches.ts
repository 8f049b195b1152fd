import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { batchId as batchIdSchema, toFieldProblems } from '../../shared/envelope.js';
import { ValidationError } from '../../shared/errors.js';
import { batchIdProblem } from '../../shared/ids.js';
import { newBatchId } from '../batch-id.js';
import { BulkValidationError } from '../validate.js';
import type { ApiDeps } from './api-deps.js';
import { deadlineProblem } from '../../shared/deadline.js';
import { enqueueTenant, visibleTo } from './tenant-scope.js';

const batchBody = z.strictObject({
  batch: batchIdSchema.optional(),
  requests: z.array(z.unknown(), { error: 'must be an array of requests' }).min(1, { message: 'must hold at least one request' }),
  priority: z.number({ error: 'must be an integer' }).int({ message: 'must be an integer' }).min(1, { message: 'must be ≥ 1 (1 is highest)' }).max(2_097_152, { message: 'must be ≤ 2097152' }).optional(),
  max_megapixels: z.number({ error: 'must be a number' }).positive({ message: 'must be > 0' }).optional(),
  webhook_url: z.string({ error: 'must be a string' }).optional(),
  webhook_secret: z.string({ error: 'must be a string' }).min(1, { message: 'must not be empty' }).optional(),
  /** SPEC §8: the deadline of every request that names none (RFC 3339). */
  deadline: z.string({ error: 'must be a string (an RFC 3339 time)' }).optional(),
});

export function batchRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { producer } = deps;

  app.post('/v1/batches', async (req, reply) => {
    const parsed = batchBody.safeParse(req.body);
    if (!parsed.success) throw new ValidationError(toFieldProblems(parsed.error));
    const b = parsed.data;
    if ((b.webhook_url === undefined) !== (b.webhook_secret === undefined)) {
      throw new ValidationError([{ path: b.webhook_url === undefined ? 'webhook_url' : 'webhook_secret', message: 'webhook_url and webhook_secret go together' }]);
    }
    const why = b.deadline === undefined ? undefined : deadlineProblem(b.deadline);
    if (why) throw new ValidationError([{ path: 'deadline', message: why }]);
    const batchId = b.batch ?? newBatchId();
    const tenant = enqueueTenant(req, b.requests, (i) => `requests.${i}.tenant`);
    if (tenant !== undefined) {
      // Another tenant's batch is not this token's to see or add to.
      const existing = await producer.getBatch(batchId);
      if (existing && existing.tenant !== tenant) return reply.code(409).send({ error: `batch "${batchId}" is taken: choose another batch id` });
    }
    try {
      await producer.enqueueBulk(b.requests, {
        batch: batchId,
        ...(tenant !== undefined ? { tenant } : {}),
        ...(b.deadline !== undefined ? { deadline: b.deadline } : {}),
        ...(b.priority !== undefined ? { priority: b.priority } : {}),
        ...(b.max_megapixels !== undefined ? { maxMegapixels: b.max_megapixels } : {}),
        ...(b.webhook_url && b.webhook_secret ? { batchWebhook: { url: b.webhook_url, secret: b.webhook_secret } } : {}),
      });
    } catch (err) {
      if (err instanceof BulkValidationError) {
        throw new ValidationError(
          err.items.flatMap((it) => it.details.map((d) => ({ path: `requests.${it.index}${d.path ? `.${d.path}` : ''}`, message: d.message }))),
          `${err.items.length} invalid request(s); nothing was enqueued`,
        );
      }
      throw err;
    }
    const status = await producer.getBatch(batchId);
    return reply.code(201).send({ batchId, total: status?.total ?? b.requests.length });
  });

  app.get<{ Params: { id: string } }>('/v1/batches/:id', async (req, reply) => {
    const why = batchIdProblem(req.params.id);
    if (why) throw new ValidationError([{ path: 'batch', message: why }], `batch "${req.params.id}" ${why}`);
    const st = await producer.getBatch(req.params.id);
    if (!st || !visibleTo(req, st.tenant)) return reply.code(404).send({ error: `no batch with id "${req.params.id}"` });
    return st;
  });
}
