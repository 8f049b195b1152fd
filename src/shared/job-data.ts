import { z } from 'zod';
import { envelopeSchema } from './envelope.js';
import { DEFAULT_TENANT } from './ids.js';
import { INPUT_IMAGE_FIELDS, type GenerationParams, type InputImageField } from './upstream.js';

/**
 * What a generation job carries in Redis: small and reference-only. Inline input
 * images were stored in S3 by the producer, so `inputs` holds `s3://` or `https://`
 * references and the data stays under 4 KB whatever the inputs (SPEC §7).
 */
export interface JobData {
  v: 1;
  params: GenerationParams;
  inputs?: Partial<Record<InputImageField, string>>;
  batch?: string;
  metadata?: Record<string, unknown>;
  model?: string;
  /** SPEC §8: absent means `default` (jobs enqueued before tenants existed too). */
  tenant?: string;
  outputKeyPrefix?: string;
  webhook?: { url: string; secret: string };
}

const env = envelopeSchema.shape;
const inputRef = z.string().regex(/^(s3:\/\/[^/\s]+\/\S+|https:\/\/\S+)$/, { message: 'must be an s3:// or https:// reference' });

/** The worker checks every job against this before doing anything (poison input). */
export const jobDataSchema = z.strictObject({
  v: z.literal(1),
  params: z.strictObject({
    prompt: env.prompt,
    seed: env.seed,
    width: env.width,
    height: env.height,
    safety_tolerance: z.string().regex(/^[0-6]$/).optional(),
    output_format: z.enum(['png', 'jpeg']).optional(),
  }),
  inputs: z.partialRecord(z.enum(INPUT_IMAGE_FIELDS), inputRef).optional(),
  batch: env.batch,
  metadata: env.metadata,
  model: env.model,
  tenant: env.tenant,
  outputKeyPrefix: z.string().optional(),
  webhook: z.strictObject({ url: z.string(), secret: z.string() }).optional(),
});

/** The tenant a job is for (SPEC §8); `default` when its data names none or is unreadable. */
export function jobTenant(data: unknown): string {
  const t = typeof data === 'object' && data !== null ? (data as { tenant?: unknown }).tenant : undefined;
  return typeof t === 'string' && t !== '' ? t : DEFAULT_TENANT;
}
