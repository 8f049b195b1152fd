import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from './config.js';

export interface CreateS3Options {
  /** Sockets per host; sized to the worker's concurrency. */
  maxSockets?: number;
  /** SDK attempts per request (standard retry mode with backoff). */
  maxAttempts?: number;
  requestTimeoutMs?: number;
}

/**
 * One S3 client per process, reused by every job. Works with AWS, MinIO, R2 and
 * s3rver: path style when asked, and on a custom endpoint the SDK's default CRC32
 * checksums are computed only when an operation requires them (aws-sdk-js-v3#6810:
 * compatible stores break on them; s3rver stores aws-chunked framing verbatim).
 * Integrity is still checked end to end: uploads carry `ChecksumSHA256` themselves.
 */
export function createS3Client(config: Config, opts: CreateS3Options = {}): S3Client {
  const custom = config.s3.endpoint !== undefined;
  const maxSockets = Math.max(opts.maxSockets ?? 50, 8);
  return new S3Client({
    region: config.s3.region,
    endpoint: config.s3.endpoint,
    forcePathStyle: config.s3.forcePathStyle,
    credentials:
      config.s3.accessKeyId && config.s3.secretAccessKey
        ? { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey.reveal() }
        : undefined, // the AWS SDK default chain (env, profile, IMDS, web identity)
    requestChecksumCalculation: custom ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    responseChecksumValidation: custom ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
    maxAttempts: opts.maxAttempts ?? 5,
    retryMode: 'standard',
    // The SDK's timeouts default to 0 (none): set both.
    requestHandler: {
      connectionTimeout: 5000,
      requestTimeout: opts.requestTimeoutMs ?? 60_000,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
    },
  });
}
