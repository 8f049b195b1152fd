import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { jobTenant } from '../../shared/job-data.js';

export const DASHBOARD_PATH = '/admin/queues';

/**
 * bull-board at `/admin/queues` over every queue fluxq uses, read-only: retrying or
 * removing a job there would bypass fluxq's id records (enqueue the id again instead),
 * and job data is shown without webhook secrets.
 */
export async function dashboardRoutes(app: FastifyInstance, queues: Queue[]): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: queues.map((q) => {
      const adapter = new BullMQAdapter(q, { readOnlyMode: true, description: q.name.endsWith('-webhooks') ? 'webhook deliveries' : 'flux-2-pro generation' });
      adapter.setFormatter('data', (data: Record<string, unknown> | undefined) => {
        if (!data || typeof data !== 'object') return data;
        const copy: Record<string, unknown> = { ...data };
        if (copy.secret) copy.secret = '[redacted]';
        if (copy.webhook && typeof copy.webhook === 'object') copy.webhook = { ...(copy.webhook as object), secret: '[redacted]' };
        return copy;
      });
      // SPEC §8: each generation job's name shows whose it is (`generate · acme`).
      if (!q.name.endsWith('-webhooks')) {
        adapter.setFormatter('name', (job: { name?: string; data?: unknown }) => `${job.name ?? ''} · ${jobTenant(job.data)}`);
      }
      return adapter;
    }),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'fluxq' } },
  });
  await app.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
}
