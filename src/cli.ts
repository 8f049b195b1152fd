import { Command, CommanderError } from 'commander';
import { ConfigError, QueueUnavailableError, ValidationError } from './shared/errors.js';
import { CliError, EXIT } from './shared/exit-codes.js';
import type { ServiceCommand } from './shared/service-io.js';
import { processIO } from './producer/commands/io.js';
import { enqueueCommand } from './producer/commands/enqueue.js';
import { statusCommand } from './producer/commands/status.js';
import { cancelCommand, pauseCommand, resumeCommand, tenantsCommand } from './producer/commands/control.js';

/**
 * The `fluxq` bin: argument parsing and dispatch, nothing else. Only this file reads
 * process.env, traps signals and exits. Every error is one line on stderr naming what
 * to fix (LOG_LEVEL=debug adds the stack); exit codes follow SPEC §7.
 */
// fluxq supports Node 20; the AWS SDK's notice about Node 22 (January 2027) would print
// on every command. Set AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=false to see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const io = processIO();
const debug = io.env.LOG_LEVEL === 'debug' || io.env.LOG_LEVEL === 'trace';

function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.once(sig, () => {
        // A second signal while draining means "now".
        process.once(sig, () => process.exit(EXIT.runtime));
        resolve(sig);
      });
    };
    on('SIGTERM');
    on('SIGINT');
  });
}

function report(err: unknown): number {
  const line = (msg: string) => io.stderr.write(`fluxq: ${msg}\n`);
  if (err instanceof ConfigError) {
    for (const p of err.problems) line(p);
    return EXIT.usage;
  }
  if (err instanceof CliError) {
    line(err.message);
    for (const l of err.lines) io.stderr.write(`${l}\n`);
    if (debug) io.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  if (err instanceof ValidationError) {
    line(err.message);
    return EXIT.usage;
  }
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const message = err instanceof Error ? err.message : String(err);
  line(err instanceof QueueUnavailableError ? message : message.split('\n')[0] ?? 'unknown error');
  if (debug && err instanceof Error) io.stderr.write(`${err.stack}\n`);
  return EXIT.runtime;
}

type Exitable = Command & { fluxqExit?: number };

function registerCommands(program: Command): void {
  const done = (code: number) => {
    (program as Exitable).fluxqExit = code;
  };

  /** A command that runs until SIGTERM/SIGINT; its module is loaded only when it is the one run. */
  const service = (name: string, description: string, load: () => Promise<ServiceCommand>) =>
    program
      .command(name)
      .description(description)
      .action(async () => {
        const run = await load();
        done(await run({ env: io.env, stopSignal: stopSignal() }));
      });

  service('worker', 'run a worker until SIGTERM/SIGINT, then finish in-flight jobs (bounded by SHUTDOWN_TIMEOUT_MS) and exit 0', async () => (await import('./worker/run-worker.js')).runWorker);

  program
    .command('enqueue')
    .description('enqueue a JSONL file of requests (one per line; - for stdin), all or nothing')
    .argument('<FILE>', 'JSONL file, or - for stdin')
    .option('--batch <ID>', 'batch of every line that names none (default: a new one per run)')
    .option('--wait', 'follow progress until every job has completed or failed; exit 0 only if all completed')
    .option('--json', 'print one JSON line per finished job')
    .option('--priority <N>', "BullMQ priority (1 highest)")
    .option('--max-megapixels <N>', 'stop upstream calls for the batch once its reported megapixels reach N')
    .option('--webhook-url <URL>', 'batch webhook: receives batch.completed')
    .option('--webhook-secret <S>', 'secret that signs the batch webhook (whsec_… = base64)')
    .option('--tenant <NAME>', 'tenant of every line that names none (default: default)')
    .option('--deadline <TIME>', 'deadline of every line that names none: an RFC 3339 time or a duration from now (90m, 2h)')
    .action(async (file: string, opts) => done(await enqueueCommand(file, opts, io)));

  program
    .command('status')
    .description("a job's or a batch's state")
    .argument('<ID>', 'job id or batch id')
    .option('--json', 'print one JSON object')
    .action(async (id: string, opts) => done(await statusCommand(id, opts, io)));

  program
    .command('tenants')
    .description("per tenant: jobs in flight, waiting, today's (UTC) megapixels and estimated cost")
    .option('--json', 'print one JSON object per tenant')
    .action(async (opts: { json?: boolean }) => done(await tenantsCommand(opts, io)));
  program.command('pause').description('stop upstream calls fleet-wide (in-flight calls finish)').action(async () => done(await pauseCommand(io)));
  program.command('resume').description('restart upstream calls fleet-wide').action(async () => done(await resumeCommand(io)));
  program
    .command('cancel')
    .description("remove a batch's jobs that have not started (active ones finish)")
    .argument('<BATCH>', 'batch id')
    .action(async (batch: string) => done(await cancelCommand(batch, io)));

  service(
    'api',
    'the HTTP API, the dashboard (/admin/queues), batch galleries (/batches/:id) and /metrics, on API_HOST:API_PORT',
    async () => (await import('./producer/commands/api.js')).apiCommand,
  );

  program
    .command('demo')
    .description('run the whole pipeline on this machine: a local fake flux-2-pro, a local S3-compatible store, Redis at REDIS_URL')
    .action(async () => {
      // Loaded here only: the demo's packages are development dependencies (worker/api/enqueue never load them).
      const { loadDemo } = await import('./demo/load-demo.js');
      const runDemo = await loadDemo();
      done(await runDemo({ env: io.env, stdout: io.stdout, stderr: io.stderr }));
    });
}

const program = new Command('fluxq')
  .description('Durable, rate-limited pipeline for the flux-2-pro image API (BullMQ + Redis + S3)')
  .exitOverride()
  .configureOutput({ writeErr: (s) => io.stderr.write(s.startsWith('error:') ? `fluxq: ${s.slice(7)}` : s) })
  .showHelpAfterError(false);

registerCommands(program);


try {
  await program.parseAsync(process.argv);
  const code = (program as Command & { fluxqExit?: number }).fluxqExit ?? EXIT.ok;
  await new Promise<void>((r) => io.stdout.write('', () => r()));
  process.exit(code);
} catch (err) {
  const code = report(err);
  process.exit(code);
}
