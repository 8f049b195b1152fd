import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { openaiFileKey } from '../../../shared/keys.js';

/**
 * Files of the OpenAI Batch API (SPEC §10) in S3 at `{S3_KEY_PREFIX}/files/{id}`: the
 * object is the file's bytes; its metadata holds what the file object reports (filename,
 * purpose, creation time), so a file needs nothing in Redis.
 */
export type FilePurpose = 'batch' | 'batch_output';

export interface OpenAiFile {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: FilePurpose;
  status: 'processed';
  status_details: null;
}

export const FILE_ID_RE = /^file-[A-Za-z0-9_-]{1,120}$/;

export const newFileId = () => `file-${randomBytes(12).toString('hex')}`;

export interface FileStoreDeps {
  s3: S3Client;
  bucket: string;
  keyPrefix: string;
}

function metadata(filename: string, purpose: FilePurpose, createdAt: number, tenant: string | undefined): Record<string, string> {
  // S3 metadata is ASCII: the name travels percent-encoded.
  return { filename: encodeURIComponent(filename), purpose, 'created-at': String(createdAt), ...(tenant !== undefined ? { tenant } : {}) };
}

/** A stored file and whose it is (a tenant's, or the operator's when undefined). */
export interface StoredFile {
  file: OpenAiFile;
  tenant: string | undefined;
}

const isMissing = (err: unknown) => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
};

export class FileStore {
  readonly #d: FileStoreDeps;

  constructor(deps: FileStoreDeps) {
    this.#d = deps;
  }

  #key(id: string): string {
    return openaiFileKey(this.#d.keyPrefix, id);
  }

  async put(bytes: Buffer, filename: string, purpose: FilePurpose, tenant: string | undefined): Promise<OpenAiFile> {
    const id = newFileId();
    const createdAt = Math.floor(Date.now() / 1000);
    await this.#d.s3.send(
      new PutObjectCommand({ Bucket: this.#d.bucket, Key: this.#key(id), Body: bytes, ContentType: 'application/jsonl', Metadata: metadata(filename, purpose, createdAt, tenant) }),
    );
    return fileObject(id, bytes.length, createdAt, filename, purpose);
  }

  /** Write a file from a stream (a multipart upload past 5 MiB, at most two parts in memory). */
  async putStream(id: string, body: Readable, filename: string, purpose: FilePurpose, tenant: string | undefined): Promise<void> {
    const upload = new Upload({
      client: this.#d.s3,
      params: { Bucket: this.#d.bucket, Key: this.#key(id), Body: body, ContentType: 'application/jsonl', Metadata: metadata(filename, purpose, Math.floor(Date.now() / 1000), tenant) },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    await upload.done();
  }

  async head(id: string): Promise<StoredFile | undefined> {
    if (!FILE_ID_RE.test(id)) return undefined;
    try {
      const h = await this.#d.s3.send(new HeadObjectCommand({ Bucket: this.#d.bucket, Key: this.#key(id) }));
      const m = h.Metadata ?? {};
      return { file: fileObject(id, h.ContentLength ?? 0, Number(m['created-at'] ?? 0), decodeURIComponent(m.filename ?? id), m.purpose === 'batch_output' ? 'batch_output' : 'batch'), tenant: m.tenant };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** The file's bytes as a stream, or undefined when there is no such file. */
  async open(id: string): Promise<Readable | undefined> {
    if (!FILE_ID_RE.test(id)) return undefined;
    try {
      const got = await this.#d.s3.send(new GetObjectCommand({ Bucket: this.#d.bucket, Key: this.#key(id) }));
      return got.Body as Readable;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** The file's lines with their 1-based numbers (blank ones too), streamed. */
  async *lines(id: string): AsyncGenerator<{ line: number; text: string }> {
    const body = await this.open(id);
    if (!body) throw new Error(`file ${id} is missing from the bucket`);
    const rl = createInterface({ input: body, crlfDelay: Infinity });
    let line = 0;
    try {
      for await (const text of rl) yield { line: ++line, text };
    } finally {
      rl.close();
      body.destroy();
    }
  }
}

function fileObject(id: string, bytes: number, createdAt: number, filename: string, purpose: FilePurpose): OpenAiFile {
  return { id, object: 'file', bytes, created_at: createdAt, filename, purpose, status: 'processed', status_details: null };
}
