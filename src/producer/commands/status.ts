import { loadConfig } from '../../shared/config.js';
import { CliError, EXIT } from '../../shared/exit-codes.js';
import { DEFAULT_TENANT } from '../../shared/ids.js';
import { createLogger } from '../../shared/logger.js';
import { createProducer } from '../producer.js';
import { writeLine, type CommandIO } from './io.js';

/** `fluxq status ID [--json]`: a job's state (one line), or a batch's. */
export async function statusCommand(id: string, opts: { json?: boolean }, io: CommandIO): Promise<number> {
  const config = loadConfig(io.env, 'producer');
  const producer = createProducer({ config, logger: createLogger({ level: config.logLevel }) });
  try {
    const job = await producer.getJob(id);
    if (job) {
      if (opts.json) writeLine(io.stdout, JSON.stringify(job));
      else {
        writeLine(io.stdout, job.state);
        // The state stays alone on the first line (scripts read it); a named tenant follows.
        if (job.tenant !== DEFAULT_TENANT) writeLine(io.stdout, `tenant: ${job.tenant}`);
        if (job.error) writeLine(io.stdout, `error: ${job.error}`);
      }
      return EXIT.ok;
    }
    const batch = await producer.getBatch(id);
    if (batch) {
      if (opts.json) writeLine(io.stdout, JSON.stringify(batch));
      else {
        const c = batch.counts;
        writeLine(
          io.stdout,
          `${batch.state} total=${batch.total} waiting=${c.waiting} active=${c.active} delayed=${c.delayed} completed=${c.completed} failed=${c.failed} cancelled=${c.cancelled} expired=${c.expired} tenant=${batch.tenant}` +
            ` output_mp=${batch.output_mp} input_mp=${batch.input_mp} possibly_billed=${batch.possibly_billed} cost_usd=${batch.cost_usd}`,
        );
      }
      return EXIT.ok;
    }
    throw new CliError(`no job or batch with id "${id}"`, EXIT.runtime);
  } finally {
    await producer.close();
  }
}
