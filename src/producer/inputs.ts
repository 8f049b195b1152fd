import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { decodeBase64Strict } from '../shared/base64.js';
import { InputError } from '../shared/errors.js';
import { sniffImageType } from '../shared/image-type.js';
import { inputImageKey } from '../shared/keys.js';
import { parseS3Ref } from '../shared/s3-ref.js';
import type { InputImageField } from '../shared/upstream.js';

/**
 * Inline input images (base64, data: URLs, CLI files) → S3 objects at
 * `{S3_KEY_PREFIX}/inputs/{sha256}.{ext}`, one per distinct content, so jobs carry
 * only references and image bytes never travel through Redis (SPEC §7 Input images).
 */
export interface InputStoreDeps {
  s3: S3Client | undefined;
  bucket: string | undefined;
  keyPrefix: string;
  maxBytes: number;
}

export type InputForm = 's3' | 'https' | 'data-url' | 'base64' | 'other';

const DATA_URL_RE = /^data:image\/[a-z0-9.+-]+;base64,/i;

/** What kind of value an `input_image*` field holds. */
export function inputForm(value: string): InputForm {
  if (value.startsWith('s3://')) return 's3';
  if (value.startsWith('https://')) return 'https';
  if (DATA_URL_RE.test(value)) return 'data-url';
  if (value.length >= 16 && value.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(value.slice(0, 4096)) && /^[A-Za-z0-9+/]*={0,2}$/.test(value.slice(-4096))) {
    return 'base64';
  }
  return 'other';
}

/** Decode an inline value (base64 or data: URL) strictly, and check it is an image within the size cap. */
export function decodeInlineImage(field: InputImageField, value: string, maxBytes: number): Buffer {
  const text = DATA_URL_RE.test(value) ? value.slice(value.indexOf(',') + 1) : value;
  if (Math.floor((text.length * 3) / 4) > maxBytes + 3) {
    throw new InputError(field, `image is more than MAX_INPUT_IMAGE_BYTES (${maxBytes}) bytes`);
  }
  const bytes = decodeBase64Strict(text);
  if (!bytes) throw new InputError(field, 'is not valid base64');
  return checkImageBytes(field, bytes, maxBytes);
}

export function checkImageBytes(field: InputImageField, bytes: Buffer, maxBytes: number): Buffer {
  if (bytes.length > maxBytes) throw new InputError(field, `image is ${bytes.length} bytes, more than MAX_INPUT_IMAGE_BYTES (${maxBytes})`);
  if (!sniffImageType(bytes)) throw new InputError(field, 'is not a PNG, JPEG or WebP image');
  return bytes;
}

/**
 * Store image bytes content-addressed and return the `s3://` reference. An object that
 * is already there (same sha256, same key) is not uploaded again.
 */
export async function storeInputImage(deps: InputStoreDeps, field: InputImageField, bytes: Buffer, known?: Set<string>): Promise<string> {
  if (!deps.s3 || !deps.bucket) {
    throw new InputError(field, 'inline images are stored in S3 before enqueueing: set S3_BUCKET (and S3_* credentials)');
  }
  const type = sniffImageType(bytes);
  if (!type) throw new InputError(field, 'is not a PNG, JPEG or WebP image');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const key = inputImageKey(deps.keyPrefix, sha256, type.ext);
  const ref = `s3://${deps.bucket}/${key}`;
  if (known?.has(ref)) return ref;
  const exists = await deps.s3.send(new HeadObjectCommand({ Bucket: deps.bucket, Key: key })).then(
    () => true,
    (err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
      if (err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404) return false;
      throw err;
    },
  );
  if (!exists) {
    await deps.s3.send(
      new PutObjectCommand({
        Bucket: deps.bucket,
        Key: key,
        Body: bytes,
        ContentType: type.contentType,
        ContentLength: bytes.length,
        ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
        Metadata: { sha256 },
      }),
    );
  }
  known?.add(ref);
  return ref;
}

/**
 * Decide at enqueue what can be decided about an `s3://` input: the object exists, is
 * readable, is within MAX_INPUT_IMAGE_BYTES, and starts like an image. Anything else
 * (S3 unreachable from here, another account's bucket) is left to the worker.
 */
export async function checkS3Input(s3: S3Client, field: InputImageField, ref: string, maxBytes: number): Promise<void> {
  const loc = parseS3Ref(ref);
  if (!loc) throw new InputError(field, `${ref} is not an s3://bucket/key reference`);
  const status = (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  let size: number | undefined;
  try {
    size = (await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }))).ContentLength;
  } catch (err) {
    if (status(err) === 404 || (err as { name?: string }).name === 'NotFound') throw new InputError(field, `${ref} not found`);
    if (status(err) === 403) throw new InputError(field, `${ref} is not readable (access denied)`);
    return;
  }
  if (size !== undefined && size > maxBytes) throw new InputError(field, `${ref} is ${size} bytes, more than MAX_INPUT_IMAGE_BYTES (${maxBytes})`);
  try {
    const head = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, Range: 'bytes=0-31' }));
    const bytes = Buffer.from((await head.Body?.transformToByteArray()) ?? []);
    if (!sniffImageType(Buffer.concat([bytes, Buffer.alloc(Math.max(0, 32 - bytes.length))]))) throw new InputError(field, `${ref} is not a PNG, JPEG or WebP image`);
  } catch (err) {
    if (err instanceof InputError) throw err;
  }
}
