import { HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { storageError } from '../shared/errors.js';
import type { ImageExt } from '../shared/keys.js';
import type { StoredImage } from '../shared/events.js';
import type { UpstreamResponseMeta } from '../shared/upstream.js';

/** What the bucket says a job already produced (SPEC §7 "Paid once"). */
export interface StoredResult {
  images: StoredImage[];
  meta: UpstreamResponseMeta;
  seed?: number;
}

const IMAGE_NAME = /\/(\d+)\.(png|jpg|webp)$/;

/**
 * Look in the bucket at the job's own keys. When every image of the job is there with
 * this job's `job-id` metadata, return them: the job completes with no upstream call.
 * Anything partial or foreign counts as not stored.
 */
export async function findStoredImages(s3: S3Client, bucket: string, folder: string, jobId: string, signal?: AbortSignal): Promise<StoredResult | undefined> {
  try {
    return await lookInBucket(s3, bucket, folder, jobId, signal);
  } catch (err) {
    if (signal?.aborted) throw err;
    throw storageError(`looking for stored images under s3://${bucket}/${folder}/`, err);
  }
}

async function lookInBucket(s3: S3Client, bucket: string, folder: string, jobId: string, signal?: AbortSignal): Promise<StoredResult | undefined> {
  const opts = signal ? { abortSignal: signal } : {};
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${folder}/`, MaxKeys: 64 }), opts);
  const candidates = (listed.Contents ?? [])
    .map((o) => ({ key: o.Key ?? '', match: IMAGE_NAME.exec(o.Key ?? '') }))
    .filter((c) => c.match && c.key.slice(0, c.key.lastIndexOf('/')) === folder)
    .map((c) => ({ key: c.key, index: Number(c.match?.[1]) }))
    .sort((a, b) => a.index - b.index);
  if (candidates.length === 0) return undefined;

  const heads = await Promise.all(candidates.map((c) => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: c.key }), opts)));
  const first = heads[0]?.Metadata ?? {};
  const count = Number(first['image-count']);
  if (!Number.isInteger(count) || count < 1) return undefined;
  const images: StoredImage[] = [];
  for (let index = 0; index < count; index++) {
    const at = candidates.findIndex((c) => c.index === index);
    const head = heads[at];
    const m = head?.Metadata ?? {};
    if (at === -1 || m['job-id'] !== jobId || Number(m['image-count']) !== count || !m.sha256) return undefined;
    images.push({
      bucket,
      key: candidates[at]?.key ?? '',
      contentType: head?.ContentType ?? 'application/octet-stream',
      bytes: Number(head?.ContentLength ?? 0),
      sha256: m.sha256,
    });
  }
  const result: StoredResult = {
    images,
    meta: {
      created: Number(first.created ?? 0),
      input_mp: Number(first['input-mp'] ?? 0),
      output_mp: Number(first['output-mp'] ?? 0),
      total_pixels: Number(first['total-pixels'] ?? 0),
    },
  };
  if (first.seed !== undefined) result.seed = Number(first.seed);
  return result;
}

/**
 * The cheap look for a job that has never started an upstream call: its first image can
 * only be there if something else put it there, so one HEAD at the key its requested
 * format predicts decides whether the full look (a LIST and a HEAD per image) is needed.
 */
export async function firstImageMayExist(s3: S3Client, bucket: string, folder: string, ext: ImageExt, signal?: AbortSignal): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${folder}/0.${ext}` }), signal ? { abortSignal: signal } : {});
    return true;
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (err as { name?: string }).name === 'NotFound') return false;
    if (signal?.aborted) throw err;
    throw storageError(`looking for stored images at s3://${bucket}/${folder}/0.${ext}`, err);
  }
}
