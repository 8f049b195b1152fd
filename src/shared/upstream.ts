import { z } from 'zod';

/**
 * The flux-2-pro upstream contract (SPEC §1): the request body fluxq sends and the
 * response it accepts. The body is built from an allow-list, never by spreading the
 * envelope, so envelope and webhook fields can never leak upstream.
 */

export const MAX_INPUT_IMAGES = 8;
export const MAX_PIXELS = 4_194_304;
/** `input_image`, `input_image_2` … `input_image_8`, in upstream order. */
export const INPUT_IMAGE_FIELDS = [
  'input_image',
  'input_image_2',
  'input_image_3',
  'input_image_4',
  'input_image_5',
  'input_image_6',
  'input_image_7',
  'input_image_8',
] as const;
export type InputImageField = (typeof INPUT_IMAGE_FIELDS)[number];

export type OutputFormat = 'png' | 'jpeg';

/** The generation parameters of a request (inputs held separately, as references). */
export interface GenerationParams {
  prompt: string;
  seed?: number;
  width?: number;
  height?: number;
  /** Sent as a string "0"–"6" (the Modelverse doc types it so). */
  safety_tolerance?: string;
  output_format?: OutputFormat;
}

/** What is POSTed upstream: exactly these fields and no others. */
export type UpstreamBody = GenerationParams & Partial<Record<InputImageField, string>>;

/** The upstream field names, in the order they are written. */
export const UPSTREAM_FIELDS = ['prompt', ...INPUT_IMAGE_FIELDS, 'seed', 'width', 'height', 'safety_tolerance', 'output_format'] as const;

/**
 * Build the upstream body by explicit allow-list. `inputs` maps each input field to its
 * base64 (resolved by the worker from the reference the producer stored).
 */
export function toUpstreamBody(params: GenerationParams, inputs: Partial<Record<InputImageField, string>> = {}): UpstreamBody {
  const body: UpstreamBody = { prompt: params.prompt };
  for (const field of INPUT_IMAGE_FIELDS) {
    const value = inputs[field];
    if (value !== undefined) body[field] = value;
  }
  if (params.seed !== undefined) body.seed = params.seed;
  if (params.width !== undefined) body.width = params.width;
  if (params.height !== undefined) body.height = params.height;
  if (params.safety_tolerance !== undefined) body.safety_tolerance = params.safety_tolerance;
  if (params.output_format !== undefined) body.output_format = params.output_format;
  return body;
}

/**
 * The 200 response, apart from `data[].b64_json` which the decoder reads without zod
 * (multi-megabyte strings). Some gateways spell `created` as `createed`; both are read.
 */
export const upstreamResponseMetaSchema = z
  .object({
    created: z.number().optional(),
    createed: z.number().optional(),
    input_mp: z.number().nonnegative().optional(),
    output_mp: z.number().nonnegative().optional(),
    total_pixels: z.number().nonnegative().optional(),
  })
  .passthrough();

export interface UpstreamResponseMeta {
  created: number;
  input_mp: number;
  output_mp: number;
  total_pixels: number;
}

/** Modelverse error bodies: `{ "error": { "message", "type" } }`; sometimes flatter. */
export const upstreamErrorBodySchema = z.union([
  z.object({ error: z.object({ message: z.string().optional(), type: z.string().optional(), code: z.union([z.string(), z.number()]).optional() }).passthrough() }).passthrough(),
  z.object({ error: z.string(), type: z.string().optional() }).passthrough(),
  z.object({ message: z.string(), type: z.string().optional() }).passthrough(),
  z.object({ detail: z.string() }).passthrough(),
]);
