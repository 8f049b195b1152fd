import { randomUUID } from 'node:crypto';
import { resolveAllowed, type AddressPolicy } from '../shared/address-policy.js';
import type { Config } from '../shared/config.js';
import { envelopeInputs, generationParams, type Envelope } from '../shared/envelope.js';
import { InputError } from '../shared/errors.js';
import { DEFAULT_TENANT } from '../shared/ids.js';
import { parseRfc3339 } from '../shared/deadline.js';
import type { JobData } from '../shared/job-data.js';
import { redactUrl } from '../shared/redact-url.js';
import type { InputImageField } from '../shared/upstream.js';
import { allowedInputBuckets, s3RefProblem } from '../shared/s3-ref.js';
import { checkImageBytes, checkS3Input, decodeInlineImage, inputForm, storeInputImage, type InputStoreDeps } from './inputs.js';
import { BulkValidationError, validateRequests, type ItemProblems } from './validate.js';

export { refuseWebhookUrl } from './validate.js';

/** A validated request, ready for Redis: its id, batch and reference-only job data. */
export interface PreparedRequest {
  id: string;
  batchId: string | undefined;
  data: JobData;
  /** Who the job is for (SPEC §8). */
  tenant: string;
  /** The latest start of its first upstream call (ms), if any. */
  deadline: number | undefined;
}

export interface PrepareContext {
  config: Config;
  inputStore: () => InputStoreDeps;
  /** Batch of every request that names none. */
  batch?: string | undefined;
  /** Tenant of every request that names none (default `default`). */
  tenant?: string | undefined;
  /** Deadline (RFC 3339) of every request that names none. */
  deadline?: string | undefined;
  /** CLI only: the bytes of an input value that names a local file, or undefined. */
  readLocalInput?: ((field: InputImageField, value: string) => Promise<Buffer | undefined>) | undefined;
  /** CLI only: whether a value names an existing local file (checked during validation). */
  localFile?: ((value: string) => boolean) | undefined;
  /** DNS for input URL hosts (default: the system's). */
  resolver?: AddressPolicy['resolver'];
}

/**
 * What can be decided at enqueue about an `https://` input: the URL parses, and its host
 * is not (and does not resolve to) a private or loopback address unless
 * INPUT_URL_ALLOW_PRIVATE=1. A host that does not resolve now is left to the worker.
 */
async function checkUrlInput(field: InputImageField, value: string, ctx: PrepareContext): Promise<void> {
  // The URL's shape and any private IP literal were checked during validation.
  const policy: AddressPolicy = { allowPrivate: ctx.config.inputs.allowPrivateUrls, ...(ctx.resolver ? { resolver: ctx.resolver } : {}) };
  const resolved = await resolveAllowed(new URL(value), policy, ['https:']);
  if ('refused' in resolved) throw new InputError(field, `${redactUrl(value)} is refused: ${resolved.refused}`);
}

/** Inline inputs → S3 references; s3:// and https:// references are kept. */
async function prepareInputs(env: Envelope, ctx: PrepareContext, known: Set<string>, decoded: Partial<Record<InputImageField, Buffer>> = {}): Promise<JobData['inputs']> {
  const out: Partial<Record<InputImageField, string>> = {};
  const maxBytes = ctx.config.inputs.maxBytes;
  for (const [field, value] of Object.entries(envelopeInputs(env)) as [InputImageField, string][]) {
    const form = inputForm(value);
    if (form === 's3') {
      const why = s3RefProblem(value, allowedInputBuckets(ctx.config));
      if (why) throw new InputError(field, why);
      const store = ctx.inputStore();
      if (store.s3 && !known.has(value)) await checkS3Input(store.s3, field, value, maxBytes);
      known.add(value);
      out[field] = value;
    } else if (form === 'https') {
      await checkUrlInput(field, value, ctx);
      out[field] = value;
    } else if (form === 'data-url' || form === 'base64') {
      out[field] = await storeInputImage(ctx.inputStore(), field, decoded[field] ?? decodeInlineImage(field, value, maxBytes), known);
    } else {
      const bytes = ctx.readLocalInput ? await ctx.readLocalInput(field, value) : undefined;
      if (!bytes) {
        throw new InputError(field, `must be base64, a data:image/…;base64, URL, s3://bucket/key or an https:// URL${ctx.readLocalInput ? ', or an existing file' : ''}`);
      }
      out[field] = await storeInputImage(ctx.inputStore(), field, checkImageBytes(field, bytes, maxBytes), known);
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function toJobData(env: Envelope, batchId: string | undefined, inputs: JobData['inputs']): JobData {
  const data: JobData = { v: 1, params: generationParams(env) };
  if (inputs) data.inputs = inputs;
  if (batchId) data.batch = batchId;
  if (env.metadata) data.metadata = env.metadata;
  if (env.model) data.model = env.model;
  if (env.tenant && env.tenant !== DEFAULT_TENANT) data.tenant = env.tenant;
  if (env.output?.keyPrefix) data.outputKeyPrefix = env.output.keyPrefix;
  if (env.webhook_url && env.webhook_secret) data.webhook = { url: env.webhook_url, secret: env.webhook_secret };
  return data;
}

/**
 * Validate every request, check webhook URLs, store inline inputs; any problem →
 * BulkValidationError naming each bad item, and nothing is enqueued.
 */
export async function prepareRequests(requests: readonly unknown[], ctx: PrepareContext): Promise<PreparedRequest[]> {
  const { envelopes, problems, decoded } = validateRequests(requests, { config: ctx.config, ...(ctx.localFile ? { localFile: ctx.localFile } : {}) });
  const bad: ItemProblems[] = [...problems];
  if (bad.length > 0) throw new BulkValidationError(bad);

  const known = new Set<string>();
  const prepared: PreparedRequest[] = [];
  for (const [index, env] of (envelopes as Envelope[]).entries()) {
    const batchId = env.batch ?? ctx.batch;
    try {
      const inputs = await prepareInputs(env, ctx, known, decoded.get(index));
      const withTerms = { ...env, tenant: env.tenant ?? ctx.tenant, deadline: env.deadline ?? ctx.deadline };
      const deadline = withTerms.deadline === undefined ? undefined : parseRfc3339(withTerms.deadline);
      prepared.push({ id: env.id ?? randomUUID(), batchId, data: toJobData(withTerms, batchId, inputs), tenant: withTerms.tenant ?? DEFAULT_TENANT, deadline });
    } catch (err) {
      if (err instanceof InputError) bad.push({ index, details: [{ path: err.field, message: err.message.slice(err.field.length + 2) }] });
      else throw err;
    }
  }
  if (bad.length > 0) throw new BulkValidationError(bad);
  return prepared;
}
