import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

/**
 * A local S3-compatible store (s3rver) for the demo and the tests: real HTTP, real
 * SigV4, objects on disk. Development only: s3rver is unmaintained and stores
 * aws-chunked bodies verbatim, which is why uploads use Buffer bodies (see s3.ts).
 */
const require = createRequire(import.meta.url);
// s3rver ships no types; this is the part of its API used here.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance;

export const LOCAL_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface LocalS3 {
  endpoint: string;
  port: number;
  directory: string;
  buckets: string[];
  /** The env variables a worker or producer needs to use this store. */
  env(bucket?: string): Record<string, string>;
  close(): Promise<void>;
}

export async function startLocalS3(opts: { buckets: string[]; directory?: string; port?: number }): Promise<LocalS3> {
  const directory = opts.directory ?? (await mkdtemp(join(tmpdir(), 'fluxq-s3-')));
  const server = new S3rver({
    address: '127.0.0.1',
    port: opts.port ?? 0,
    silent: true,
    directory,
    vhostBuckets: false,
    configureBuckets: opts.buckets.map((name) => ({ name })),
  });
  const addr = await server.run();
  const endpoint = `http://127.0.0.1:${addr.port}`;
  return {
    endpoint,
    port: addr.port,
    directory,
    buckets: opts.buckets,
    env: (bucket = opts.buckets[0]) => ({
      S3_ENDPOINT: endpoint,
      S3_BUCKET: bucket ?? '',
      S3_FORCE_PATH_STYLE: '1',
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: LOCAL_S3_CREDENTIALS.accessKeyId,
      S3_SECRET_ACCESS_KEY: LOCAL_S3_CREDENTIALS.secretAccessKey,
    }),
    close: () => server.close(),
  };
}
