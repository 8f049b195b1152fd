import { z } from 'zod';
import { ValidationError, type FieldProblem } from './errors.js';
import { deadlineProblem } from './deadline.js';
import { TENANT_RE, TENANT_RULE, batchIdProblem, jobIdProblem } from './ids.js';
import { INPUT_IMAGE_FIELDS, MAX_PIXELS, type GenerationParams, type InputImageField } from './upstream.js';

/**
 * The request envelope (SPEC §2): the upstream fields plus `id`, `batch`, `metadata`,
 * `model`, `output`, and the webhook fields that fluxq delivers itself. Unknown fields
 * are refused by name. Every rule names its field in the error.
 */

/** SPEC §7 Ids: the rules live in ids.ts. */
export { BATCH_ID_RE, JOB_ID_RE, TENANT_RE, DEFAULT_TENANT, isValidJobId } from './ids.js';
const MODEL_RE = /^[A-Za-z0-9._-]{1,64}$/;
const KEY_PREFIX_RE = /^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/;
export const MAX_PROMPT_CHARS = 10_000;
export const MAX_METADATA_BYTES = 4096;
/** A base64 image of MAX_INPUT_IMAGE_BYTES' ceiling (64 MiB) as text, plus a data: prefix. */
const MAX_INPUT_VALUE_CHARS = 90_000_000;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A string that `problem` accepts; its message otherwise. */
function idString(problem: (id: string) => string | undefined) {
  return z.string({ error: 'must be a string' }).superRefine((id, ctx) => {
    const why = problem(id);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });
}

const jobId = idString(jobIdProblem);
/** A batch id as the envelope, the API's batch body and the library's options take it. */
export const batchId = idString(batchIdProblem);

const dimension = z.number({ error: 'must be an integer' }).superRefine((n, ctx) => {
  if (!Number.isInteger(n)) ctx.addIssue({ code: 'custom', message: 'must be an integer' });
  else if (n < 64 || n % 32 !== 0) ctx.addIssue({ code: 'custom', message: `must be ≥ 64 and a multiple of 32, got ${n}` });
  else if (n > MAX_PIXELS / 64) ctx.addIssue({ code: 'custom', message: `must be ≤ ${MAX_PIXELS / 64} (the other side is at least 64 and the image at most 4 MP), got ${n}` });
});

const safetyTolerance = z
  .union([z.number(), z.string()], { error: 'must be an integer 0–6 or a string "0"–"6"' })
  .transform((v, ctx) => {
    const s = typeof v === 'number' ? String(v) : v;
    if (!/^[0-6]$/.test(s)) {
      ctx.addIssue({ code: 'custom', message: 'must be 0–6 (0 strictest, 6 least strict)' });
      return z.NEVER;
    }
    return s;
  });

const outputFormat = z
  .enum(['png', 'jpeg', 'jpg'], { error: 'must be "png" or "jpeg" ("jpg" is read as "jpeg")' })
  .transform((v) => (v === 'jpg' ? 'jpeg' : v));

const inputImage = z
  .string({ error: 'must be a string: base64, a data: URL, s3://bucket/key or https:// URL' })
  .min(1, { message: 'must not be empty' })
  .max(MAX_INPUT_VALUE_CHARS, { message: 'is too long' });

/** Walk a JSON value and report keys that could pollute prototypes downstream. */
function findForbiddenKey(value: unknown, path: string[] = []): string[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return [...path, key];
    const found = findForbiddenKey((value as Record<string, unknown>)[key], [...path, key]);
    if (found) return found;
  }
  return undefined;
}

// Checked on the raw JSON value: a record schema would rebuild the object, and assigning a
// `__proto__` key rebuilds its prototype instead of refusing it.
const metadata = z
  .unknown()
  .superRefine((value, ctx) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
      return;
    }
    const bad = findForbiddenKey(value);
    if (bad) ctx.addIssue({ code: 'custom', message: `key "${bad.at(-1)}" is not allowed`, path: bad.slice(0, -1) });
    const size = Buffer.byteLength(JSON.stringify(value));
    if (size > MAX_METADATA_BYTES) ctx.addIssue({ code: 'custom', message: `must be at most ${MAX_METADATA_BYTES} bytes as JSON, got ${size}` });
  })
  .transform((value) => value as Record<string, unknown>);

const webhookUrl = z
  .string({ error: 'must be a string' })
  .max(2083, { message: 'must be at most 2083 characters' })
  .refine(
    (v) => {
      try {
        const u = new URL(v);
        return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
      } catch {
        return false;
      }
    },
    { message: 'must be an http:// or https:// URL' },
  );

const webhookSecret = z
  .string({ error: 'must be a string' })
  .min(1, { message: 'must not be empty' })
  .max(1024, { message: 'must be at most 1024 characters' });

const shape = {
  prompt: z
    .string({ error: 'is required and must be a string' })
    .refine((s) => s.trim().length > 0, { message: 'must not be empty' })
    .refine((s) => s.length <= MAX_PROMPT_CHARS, { message: `must be at most ${MAX_PROMPT_CHARS} characters` }),
  seed: z
    .number({ error: 'must be an integer' })
    .int({ message: 'must be an integer' })
    .min(0, { message: 'must be ≥ 0' })
    .max(Number.MAX_SAFE_INTEGER, { message: 'must be a safe integer' })
    .optional(),
  width: dimension.optional(),
  height: dimension.optional(),
  safety_tolerance: safetyTolerance.optional(),
  output_format: outputFormat.optional(),
  webhook_url: webhookUrl.optional(),
  webhook_secret: webhookSecret.optional(),
  id: jobId.optional(),
  batch: batchId.optional(),
  metadata: metadata.optional(),
  model: z.string({ error: 'must be a string' }).regex(MODEL_RE, { message: 'must be 1–64 characters of A–Z a–z 0–9 . _ -' }).optional(),
  deadline: z
    .string({ error: 'must be a string (an RFC 3339 time)' })
    .superRefine((v, ctx) => {
      const why = deadlineProblem(v);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    })
    .optional(),
  tenant: z.string({ error: 'must be a string' }).regex(TENANT_RE, { message: TENANT_RULE }).optional(),
  output: z
    .strictObject({
      keyPrefix: z
        .string({ error: 'must be a string' })
        .max(512, { message: 'must be at most 512 characters' })
        .regex(KEY_PREFIX_RE, { message: 'must be a key prefix without leading or trailing "/" (letters, digits, . _ ~ - /)' })
        .refine((p) => !p.split('/').some((seg) => seg === '.' || seg === '..'), { message: 'must not contain . or .. segments' }),
    })
    .optional(),
  input_image: inputImage.optional(),
  input_image_2: inputImage.optional(),
  input_image_3: inputImage.optional(),
  input_image_4: inputImage.optional(),
  input_image_5: inputImage.optional(),
  input_image_6: inputImage.optional(),
  input_image_7: inputImage.optional(),
  input_image_8: inputImage.optional(),
};

export const envelopeSchema = z
  .strictObject(shape, { error: (issue) => (issue.code === 'invalid_type' ? 'must be a JSON object' : undefined) })
  .superRefine((e, ctx) => {
    if (e.width !== undefined && e.height !== undefined && e.width * e.height > MAX_PIXELS) {
      ctx.addIssue({ code: 'custom', path: ['width'], message: `width × height must be ≤ ${MAX_PIXELS} pixels (4 MP), got ${e.width} × ${e.height}` });
    }
    if (e.webhook_url !== undefined && e.webhook_secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['webhook_secret'], message: 'is required with webhook_url (webhooks are always signed)' });
    }
    if (e.webhook_secret !== undefined && e.webhook_url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['webhook_url'], message: 'is required with webhook_secret' });
    }
  });

export type Envelope = z.output<typeof envelopeSchema>;

/** Turn zod issues into `{ path, message }` with dotted paths, unknown keys named one by one. */
export function toFieldProblems(error: z.ZodError, basePath: (string | number)[] = []): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const issue of error.issues) {
    const path = [...basePath, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: [...path, key].join('.'), message: 'is not a known field' });
    } else {
      problems.push({ path: path.join('.'), message: issue.message });
    }
  }
  return problems;
}

/** Validate one envelope; throws ValidationError with one problem per bad field. */
export function parseEnvelope(input: unknown, basePath: (string | number)[] = []): Envelope {
  const result = envelopeSchema.safeParse(input);
  if (!result.success) throw new ValidationError(toFieldProblems(result.error, basePath));
  return result.data;
}

/** The generation parameters of an envelope (what goes upstream besides inputs). */
export function generationParams(e: Envelope): GenerationParams {
  const p: GenerationParams = { prompt: e.prompt };
  if (e.seed !== undefined) p.seed = e.seed;
  if (e.width !== undefined) p.width = e.width;
  if (e.height !== undefined) p.height = e.height;
  if (e.safety_tolerance !== undefined) p.safety_tolerance = e.safety_tolerance;
  if (e.output_format !== undefined) p.output_format = e.output_format as 'png' | 'jpeg';
  return p;
}

/** The input image values of an envelope, by field, in upstream order. */
export function envelopeInputs(e: Envelope): Partial<Record<InputImageField, string>> {
  const inputs: Partial<Record<InputImageField, string>> = {};
  for (const f of INPUT_IMAGE_FIELDS) {
    const v = e[f];
    if (v !== undefined) inputs[f] = v;
  }
  return inputs;
}
