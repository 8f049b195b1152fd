import { constants, statSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { loadConfig } from '../../shared/config.js';
import { TENANT_RE, TENANT_RULE, batchIdProblem } from '../../shared/ids.js';
import { parseDeadlineOption } from '../../shared/deadline.js';
import { InputError, ValidationError } from '../../shared/errors.js';
import { CliError, EXIT } from '../../shared/exit-codes.js';
import { createLogger } from '../../shared/logger.js';
import { startTracing } from '../../shared/tracing.js';
import type { JobRecord } from '../../shared/job-record.js';
import type { JobResult } from '../../shared/result.js';
import type { InputImageField } from '../../shared/upstream.js';
import { newBatchId } from '../batch-id.js';
import { followJobs } from '../follow.js';
import { parseJsonl, readJsonlSource } from '../jsonl.js';
import { BulkValidationError, createProducer, validateRequests } from '../producer.js';
import { writeLine, type CommandIO } from './io.js';

export interface EnqueueCommandOptions {
  batch?: string;
  wait?: boolean;
  json?: boolean;
  priority?: string;
  maxMegapixels?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  tenant?: string;
  deadline?: string;
}

function parseMaxMegapixels(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw new CliError(`--max-megapixels must be a number > 0, got "${v}"`, EXIT.usage);
  return n;
}

function parseBatchWebhook(url: string | undefined, secret: string | undefined): { url: string; secret: string } | undefined {
  if (url === undefined && secret === undefined) return undefined;
  if (url === undefined) throw new CliError('--webhook-secret needs --webhook-url', EXIT.usage);
  if (secret === undefined || secret === '') throw new CliError('--webhook-url needs --webhook-secret (webhooks are always signed)', EXIT.usage);
  return { url, secret };
}

function parsePriority(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 2_097_152) throw new CliError(`--priority must be an integer from 1 (highest) to 2097152, got "${v}"`, EXIT.usage);
  return n;
}

/** Whether an input value names an existing local file (relative to the JSONL file). */
function localFileExists(baseDir: string) {
  return (value: string): boolean => {
    if (value.length > 4096 || value.includes('\0')) return false;
    try {
      return statSync(isAbsolute(value) ? value : resolve(baseDir, value)).isFile();
    } catch {
      return false;
    }
  };
}

/** CLI only: an input value that names an existing file (relative to the JSONL file) is that file. */
function localInputReader(baseDir: string) {
  return async (field: InputImageField, value: string): Promise<Buffer | undefined> => {
    if (value.length > 4096 || value.includes('\0')) return undefined;
    const path = isAbsolute(value) ? value : resolve(baseDir, value);
    const exists = await access(path, constants.R_OK).then(() => true, () => false);
    if (exists) return readFile(path);
    if (/^(\.\/|\.\.\/|\/)/.test(value)) throw new InputError(field, `file ${value} not found (paths are relative to the JSONL file)`);
    return undefined;
  };
}

/** `fluxq enqueue FILE`: validate every line, enqueue all or nothing, optionally follow. */
export async function enqueueCommand(file: string, opts: EnqueueCommandOptions, io: CommandIO): Promise<number> {
  const config = loadConfig(io.env, 'producer');
  const logger = createLogger({ level: config.logLevel });
  const priority = parsePriority(opts.priority);
  const maxMegapixels = parseMaxMegapixels(opts.maxMegapixels);
  const batchWebhook = parseBatchWebhook(opts.webhookUrl, opts.webhookSecret);
  const badBatch = opts.batch === undefined ? undefined : batchIdProblem(opts.batch);
  if (badBatch) throw new CliError(`--batch ${badBatch}, got "${opts.batch}"`, EXIT.usage);
  if (opts.tenant !== undefined && !TENANT_RE.test(opts.tenant)) throw new CliError(`--tenant ${TENANT_RULE}, got "${opts.tenant}"`, EXIT.usage);
  let deadline: string | undefined;
  try {
    deadline = opts.deadline === undefined ? undefined : parseDeadlineOption(opts.deadline);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  let text: string;
  try {
    text = await readJsonlSource(file, io.stdin);
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
  }
  const lines = parseJsonl(text);
  if (lines.length === 0) throw new CliError(`${file} holds no requests (one JSON object per line)`, EXIT.usage);

  const runBatch = opts.batch ?? newBatchId();
  const lineNumbers: number[] = [];
  const requests: unknown[] = [];
  const problems: string[] = [];
  for (const l of lines) {
    if ('error' in l) {
      problems.push(`line ${l.line}: ${l.error}`);
      continue;
    }
    let value = l.value;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const obj = value as Record<string, unknown>;
      const batch = typeof obj.batch === 'string' ? obj.batch : runBatch;
      value = {
        ...obj,
        batch: obj.batch ?? runBatch,
        id: obj.id ?? `${batch}-${l.line}`,
        ...(opts.tenant !== undefined && obj.tenant === undefined ? { tenant: opts.tenant } : {}),
        ...(deadline !== undefined && obj.deadline === undefined ? { deadline } : {}),
      };
    }
    lineNumbers.push(l.line);
    requests.push(value);
  }
  const describe = (items: { index: number; details: { path: string; message: string }[] }[]) =>
    items.flatMap((it) => it.details.map((d) => `line ${lineNumbers[it.index]}: ${d.path ? `${d.path}: ` : ''}${d.message}`));
  const baseDir = file === '-' ? process.cwd() : dirname(resolve(file));
  problems.push(...describe(validateRequests(requests, { config, localFile: localFileExists(baseDir) }).problems));
  if (problems.length > 0) {
    problems.sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]));
    throw new CliError(`${problems.length} invalid line(s) in ${file}; nothing was enqueued`, EXIT.usage, problems);
  }

  const tracing = await startTracing(config, 'cli');
  const producer = createProducer({ config, logger, ...(tracing ? { telemetry: tracing.telemetry } : {}) });
  try {
    let result;
    try {
      result = await producer.enqueueBulk(requests, {
        batch: runBatch,
        priority,
        ...(maxMegapixels !== undefined ? { maxMegapixels } : {}),
        ...(batchWebhook ? { batchWebhook } : {}),
        readLocalInput: localInputReader(baseDir),
        localFile: localFileExists(baseDir),
      });
    } catch (err) {
      if (err instanceof BulkValidationError) throw new CliError(`${err.items.length} invalid line(s) in ${file}; nothing was enqueued`, EXIT.usage, describe(err.items));
      if (err instanceof ValidationError) {
        const d = err.details[0];
        throw new CliError(`${d?.path === 'batch' ? '--batch' : '--webhook-url'} ${d?.message ?? 'is refused'}; nothing was enqueued`, EXIT.usage);
      }
      throw err;
    }
    const summary = `batch ${runBatch}: ${result.outcomes.length} jobs (${result.created} new, ${result.existing} already enqueued or done, ${result.retried} retried)`;
    writeLine(opts.json ? io.stderr : io.stdout, summary);
    const ids = result.outcomes.map((o) => o.id);
    const jsonLine = (id: string, record: JobRecord) => {
      const images = record.result ? (JSON.parse(record.result) as JobResult).images : [];
      const status = record.state === 'completed' || record.state === 'expired' ? record.state : 'failed';
      const line: Record<string, unknown> = { id, status, images };
      if (record.state !== 'completed') line.error = record.error ?? record.state;
      writeLine(io.stdout, JSON.stringify(line));
    };
    if (!opts.wait) {
      // Without --wait only jobs that were already final (a re-run file) are finished.
      if (opts.json) {
        const records = await producer.records.getMany(ids);
        ids.forEach((id, i) => {
          const rec = records[i];
          if (rec?.state) jsonLine(id, rec);
        });
      }
      return EXIT.ok;
    }

    const bar = io.stderr.isTTY && !opts.json
      ? new cliProgress.SingleBar({ stream: io.stderr, format: 'generating {bar} {value}/{total} | failed {failed}', hideCursor: true }, cliProgress.Presets.shades_classic)
      : undefined;
    let failed = 0;
    bar?.start(ids.length, 0, { failed: 0 });
    const finished = await followJobs(producer, ids, {
      onFinished: ({ id, record }) => {
        if (record.state !== 'completed') failed++;
        bar?.increment(1, { failed });
        if (opts.json) jsonLine(id, record);
      },
    });
    bar?.stop();
    const completed = finished.filter((f) => f.record.state === 'completed').length;
    const expired = finished.filter((f) => f.record.state === 'expired').length;
    writeLine(opts.json ? io.stderr : io.stdout, `batch ${runBatch}: ${completed} completed, ${finished.length - completed - expired} failed${expired > 0 ? `, ${expired} expired` : ''}`);
    return completed === finished.length ? EXIT.ok : EXIT.runtime;
  } finally {
    await producer.close();
    await tracing?.shutdown();
  }
}
