import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { StoredImage } from '../../shared/events.js';

/** A presigned GET (SigV4, only the host header signed) valid for `ttlS` seconds. */
export function presignGet(s3: S3Client, image: Pick<StoredImage, 'bucket' | 'key'>, ttlS: number): Promise<string> {
  return getSignedUrl(s3, new GetObjectCommand({ Bucket: image.bucket, Key: image.key }), { expiresIn: ttlS, signableHeaders: new Set(['host']) });
}

export async function withUrls<T extends StoredImage>(s3: S3Client, images: T[], ttlS: number): Promise<(T & { url: string })[]> {
  return Promise.all(images.map(async (img) => ({ ...img, url: await presignGet(s3, img, ttlS) })));
}
