import { loadConfig } from '../../shared/config.js';
import { CliError, EXIT } from '../../shared/exit-codes.js';
import { createLogger } from '../../shared/logger.js';
import { pauseQueue, resumeQueue } from '../../shared/queue-control.js';
import { waitForRedis, describeRedis } from '../../shared/redis.js';
import { createProducer } from '../producer.js';
import { formatTenantReport, tenantReport } from '../tenant-report.js';
import { writeLine, type CommandIO } from './io.js';

async function withProducer<T>(io: CommandIO, fn: (p: ReturnType<typeof createProducer>, config: ReturnType<typeof loadConfig>) => Promise<T>): Promise<T> {
  const config = loadConfig(io.env, 'producer');
  const producer = createProducer({ config, logger: createLogger({ level: config.logLevel }) });
  try {
    await waitForRedis(producer.redis, describeRedis(config));
    return await fn(producer, config);
  } finally {
    await producer.close();
  }
}

/** `fluxq tenants [--json]`: per tenant, in flight, waiting, today's megapixels and cost (SPEC §8). */
export function tenantsCommand(opts: { json?: boolean }, io: CommandIO): Promise<number> {
  return withProducer(io, async (p) => {
    const lines = await tenantReport(p);
    if (opts.json) for (const l of lines) writeLine(io.stdout, JSON.stringify(l));
    else writeLine(io.stdout, formatTenantReport(lines));
    return EXIT.ok;
  });
}

/** `fluxq pause`: every worker stops starting upstream calls; in-flight ones finish. */
export function pauseCommand(io: CommandIO): Promise<number> {
  return withProducer(io, async (p, config) => {
    const first = await pauseQueue(p.control, 'paused by operator (fluxq pause)');
    writeLine(io.stdout, `${first ? 'paused' : 'already paused'}: queue ${config.queue.name} (prefix ${config.queue.prefix}); no worker starts an upstream call until \`fluxq resume\``);
    return EXIT.ok;
  });
}

/** `fluxq resume`: workers start taking jobs again. */
export function resumeCommand(io: CommandIO): Promise<number> {
  return withProducer(io, async (p, config) => {
    const was = await resumeQueue(p.control, 'fluxq resume');
    writeLine(io.stdout, `${was ? 'resumed' : 'was not paused'}: queue ${config.queue.name} (prefix ${config.queue.prefix})`);
    return EXIT.ok;
  });
}

/** `fluxq cancel BATCH`: remove the batch's jobs that have not started; active ones finish. */
export function cancelCommand(batchId: string, io: CommandIO): Promise<number> {
  return withProducer(io, async (p) => {
    const r = await p.cancelBatch(batchId);
    if (!r) throw new CliError(`no batch with id "${batchId}"`, EXIT.runtime);
    writeLine(io.stdout, `cancelled ${r.cancelled} job(s) of batch ${batchId}${r.active > 0 ? `; ${r.active} active job(s) will finish` : ''}`);
    return EXIT.ok;
  });
}
