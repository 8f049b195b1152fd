import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { InputError, storageError } from '../shared/errors.js';
import { sniffImageType } from '../shared/image-type.js';
import { redactUrl } from '../shared/redact-url.js';
import { parseS3Ref, s3RefProblem } from '../shared/s3-ref.js';
import type { InputImageField } from '../shared/upstream.js';

export interface ResolveInputsDeps {
  s3: S3Client;
  maxBytes: number;
  /** S3_BUCKET and INPUT_S3_BUCKETS: the only buckets an `s3://` input may name (s3-ref.ts). */
  allowedBuckets: readonly string[];
  /** Fetch an https:// input (fetch-input-url.ts); absent = https inputs refused. */
  fetchUrl?: (field: InputImageField, url: string, signal?: AbortSignal) => Promise<Buffer>;
}

async function readS3(deps: ResolveInputsDeps, field: InputImageField, ref: string, signal?: AbortSignal): Promise<Buffer> {
  // Checked here too, not only at enqueue: a job from an old producer or written into Redis directly.
  const why = s3RefProblem(ref, deps.allowedBuckets);
  const loc = parseS3Ref(ref);
  if (why || !loc) throw new InputError(field, why ?? `${ref} is not an s3://bucket/key reference`);
  let res;
  try {
    res = await deps.s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }), signal ? { abortSignal: signal } : {});
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket') throw new InputError(field, `${ref} not found`);
    if (name === 'AccessDenied') throw new InputError(field, `${ref} is not readable (access denied)`);
    throw storageError(`${field}: reading ${ref}`, err);
  }
  if (res.ContentLength !== undefined && res.ContentLength > deps.maxBytes) {
    res.Body?.transformToWebStream().cancel().catch(() => undefined);
    throw new InputError(field, `${ref} is ${res.ContentLength} bytes, more than MAX_INPUT_IMAGE_BYTES (${deps.maxBytes})`);
  }
  const bytes = Buffer.from((await res.Body?.transformToByteArray()) ?? new Uint8Array());
  if (bytes.length > deps.maxBytes) throw new InputError(field, `${ref} is more than MAX_INPUT_IMAGE_BYTES (${deps.maxBytes}) bytes`);
  return bytes;
}

/**
 * Turn the job's input references into the base64 the upstream wants, in the right
 * field. Each must be a real image (magic bytes) within MAX_INPUT_IMAGE_BYTES; a bad
 * one is an InputError naming the field, and nothing is sent upstream.
 */
export async function resolveInputs(
  deps: ResolveInputsDeps,
  refs: Partial<Record<InputImageField, string>> | undefined,
  signal?: AbortSignal,
): Promise<Partial<Record<InputImageField, string>>> {
  const out: Partial<Record<InputImageField, string>> = {};
  if (!refs) return out;
  const entries = Object.entries(refs) as [InputImageField, string][];
  await Promise.all(
    entries.map(async ([field, ref]) => {
      let bytes: Buffer;
      if (ref.startsWith('s3://')) bytes = await readS3(deps, field, ref, signal);
      else if (ref.startsWith('https://') && deps.fetchUrl) bytes = await deps.fetchUrl(field, ref, signal);
      else throw new InputError(field, `${redactUrl(ref).slice(0, 80)} is not an s3:// or https:// reference`);
      if (!sniffImageType(bytes)) throw new InputError(field, `${redactUrl(ref)} is not a PNG, JPEG or WebP image`);
      out[field] = bytes.toString('base64');
    }),
  );
  return out;
}
