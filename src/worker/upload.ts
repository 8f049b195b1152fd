import { setTimeout as sleep } from 'node:timers/promises';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { StorageError, storageError } from '../shared/errors.js';
import type { StoredImage } from '../shared/events.js';
import { imageKey } from '../shared/keys.js';
import { ATTR, SPAN, SpanKind, inSpan } from '../shared/spans.js';
import type { UpstreamResponseMeta } from '../shared/upstream.js';
import type { DecodedImage } from './decode.js';

/**
 * Object metadata written with every image. `job-id` and `batch-id` are SPEC §7's; the
 * rest lets a retry rebuild the job's result from the bucket alone (checkpoint.ts), so
 * a job whose images are stored never calls the upstream again.
 */
export interface ImageObjectMeta {
  jobId: string;
  batchId?: string | undefined;
  index: number;
  count: number;
  sha256: string;
  meta: UpstreamResponseMeta;
  seed?: number | undefined;
}

export function toS3Metadata(m: ImageObjectMeta): Record<string, string> {
  const out: Record<string, string> = {
    'job-id': m.jobId,
    sha256: m.sha256,
    'image-index': String(m.index),
    'image-count': String(m.count),
    'output-mp': String(m.meta.output_mp),
    'input-mp': String(m.meta.input_mp),
    'total-pixels': String(m.meta.total_pixels),
    created: String(m.meta.created),
  };
  if (m.batchId) out['batch-id'] = m.batchId;
  if (m.seed !== undefined) out.seed = String(m.seed);
  return out;
}


/**
 * SigV4 signs the body's sha256; the decoder already computed it while the image
 * arrived. Handing it to the signer (as `x-amz-content-sha256`, which it uses when
 * present) spares hashing every image a second time on the event loop.
 */
export function withKnownPayloadHash(command: PutObjectCommand, sha256Hex: string): void {
  command.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = sha256Hex;
      return next(args);
    },
    { step: 'build', name: 'fluxqKnownPayloadHash' },
  );
}

/** One image, one PUT: a Buffer body (never a stream: s3rver and others store aws-chunked framing verbatim). */
export async function uploadImage(
  s3: S3Client,
  bucket: string,
  key: string,
  image: DecodedImage,
  metadata: Record<string, string>,
  signal?: AbortSignal,
): Promise<StoredImage> {
  const put = new PutObjectCommand({
    Bucket: bucket,
    Key: key,
    Body: image.bytes,
    ContentType: image.type.contentType,
    ContentLength: image.bytes.length,
    ChecksumSHA256: Buffer.from(image.sha256, 'hex').toString('base64'),
    Metadata: metadata,
  });
  withKnownPayloadHash(put, image.sha256);
  await inSpan(SPAN.s3Put, { kind: SpanKind.CLIENT, attributes: { [ATTR.s3Bucket]: bucket, [ATTR.s3Key]: key, 'fluxq.bytes': image.bytes.length } }, () =>
    s3.send(put, signal ? { abortSignal: signal } : {}),
  );
  return { bucket, key, contentType: image.type.contentType, bytes: image.bytes.length, sha256: image.sha256 };
}

export interface StoreImagesInput {
  bucket: string;
  folder: string;
  jobId: string;
  batchId?: string | undefined;
  seed?: number | undefined;
  meta: UpstreamResponseMeta;
  images: DecodedImage[];
}

export interface StoreImagesOptions {
  /** How long to keep trying while S3 is unreachable, holding the bytes (the job stays ours). */
  retryWindowMs: number;
  signal?: AbortSignal | undefined;
  /** Told of each failed round (after the SDK's own retries), e.g. to spool the bytes once; not `retryable` = the job fails, its bytes are of no further use. */
  onFailure?: (err: StorageError, round: number) => Promise<void> | void;
}

/**
 * Upload every image of a job to its deterministic keys. A PUT is idempotent, so a
 * round that fails for an outage is simply tried again: first by the SDK (standard retry
 * mode), then here, with backoff, for up to `retryWindowMs`, without ever regenerating.
 * Throws StorageError when the window closes or the error is one waiting cannot fix: a
 * wrong bucket or credentials (`config`), or S3 refusing the request itself (`request`,
 * e.g. `KeyTooLongError`), which is thrown at once, after telling `onFailure`.
 */
export async function storeImages(s3: S3Client, input: StoreImagesInput, opts: StoreImagesOptions): Promise<StoredImage[]> {
  const stored: (StoredImage | undefined)[] = new Array(input.images.length).fill(undefined);
  const deadline = Date.now() + opts.retryWindowMs;
  for (let round = 1; ; round++) {
    try {
      await Promise.all(
        input.images.map(async (image, index) => {
          if (stored[index]) return;
          const key = imageKey(input.folder, index, image.type.ext);
          const metadata = toS3Metadata({
            jobId: input.jobId,
            batchId: input.batchId,
            index,
            count: input.images.length,
            sha256: image.sha256,
            meta: input.meta,
            seed: input.seed,
          });
          try {
            stored[index] = await uploadImage(s3, input.bucket, key, image, metadata, opts.signal);
          } catch (err) {
            if (opts.signal?.aborted) throw err;
            throw storageError(`writing ${key}`, err);
          }
        }),
      );
      return stored as StoredImage[];
    } catch (err) {
      const failure = err instanceof StorageError ? err : storageError(`upload to s3://${input.bucket}/${input.folder}/`, err);
      await opts.onFailure?.(failure, round);
      if (opts.signal?.aborted) throw err;
      if (failure.kind !== 'outage' || Date.now() >= deadline) throw failure;
      const wait = Math.min(1000 * 2 ** (round - 1), 15_000, Math.max(0, deadline - Date.now()));
      await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : {});
    }
  }
}
