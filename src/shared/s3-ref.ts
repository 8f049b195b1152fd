import type { Config } from './config.js';

/**
 * `s3://bucket/key` input references (SPEC §7 Input images), read the same way by the
 * producer (at enqueue) and the worker (before its upstream call). A reference may name
 * only `S3_BUCKET` or a bucket of `INPUT_S3_BUCKETS`: a caller must not make a worker read
 * what the worker's credentials reach and the caller cannot.
 */

export interface S3Ref {
  bucket: string;
  key: string;
}

/** A bucket name (3–63 of a–z 0–9 . -, a letter or digit at each end), then a key of 1–1024 non-space characters. */
const S3_REF_RE = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(\S{1,1024})$/;

export function parseS3Ref(ref: string): S3Ref | undefined {
  const m = S3_REF_RE.exec(ref);
  return m ? { bucket: m[1] ?? '', key: m[2] ?? '' } : undefined;
}

/**
 * The buckets an `s3://` input may name: S3_BUCKET and INPUT_S3_BUCKETS. Undefined when
 * S3_BUCKET is not set here (a producer without it cannot tell the worker's bucket; the
 * worker, which requires it, decides).
 */
export function allowedInputBuckets(config: { s3: Pick<Config['s3'], 'bucket'>; inputs: Pick<Config['inputs'], 's3Buckets'> }): string[] | undefined {
  if (!config.s3.bucket) return undefined;
  return [...new Set([config.s3.bucket, ...config.inputs.s3Buckets])];
}

/**
 * What is wrong with an `s3://` input value, or undefined: not a reference, or a bucket
 * that is not allowed (`s3://other-bucket/k is not in S3_BUCKET or INPUT_S3_BUCKETS`).
 * `allowed` undefined = the bucket is not decided here.
 */
export function s3RefProblem(ref: string, allowed: readonly string[] | undefined): string | undefined {
  const loc = parseS3Ref(ref);
  if (!loc) return `${ref.slice(0, 200)} is not an s3://bucket/key reference (a bucket name of 3–63 a–z 0–9 . -, then a key)`;
  if (allowed && !allowed.includes(loc.bucket)) return `${ref} is not in S3_BUCKET or INPUT_S3_BUCKETS`;
  return undefined;
}
