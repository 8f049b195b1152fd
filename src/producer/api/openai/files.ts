import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { FastifyInstance } from 'fastify';
import { presignGet } from '../presign.js';
import type { FileStore } from './file-store.js';
import { invalidRequest, notFound } from './openai-error.js';

/**
 * Files of the Batch API (SPEC §10): `POST /files` (multipart, `purpose=batch`, parsed by
 * the platform's own FormData), `GET /files/:id`, `GET /files/:id/content`. A batch's
 * output file stores `s3://` image references; its content is served with each one
 * presigned at download time.
 */

/** Rewrite `s3://bucket/key` image URLs of output lines into presigned GETs, line by line. */
async function* presignedLines(body: Readable, s3: S3Client, ttlS: number): AsyncGenerator<string> {
  const rl = createInterface({ input: body, crlfDelay: Infinity });
  for await (const text of rl) {
    if (text === '') continue;
    const line = JSON.parse(text) as { response?: { body?: { data?: { url?: string }[] } } | null };
    for (const d of line.response?.body?.data ?? []) {
      const m = d.url ? /^s3:\/\/([^/]+)\/(.+)$/.exec(d.url) : null;
      if (m) d.url = await presignGet(s3, { bucket: m[1] as string, key: m[2] as string }, ttlS);
    }
    yield `${JSON.stringify(line)}\n`;
  }
}

export function fileRoutes(app: FastifyInstance, files: FileStore, s3: S3Client, presignTtlS: number, tenantOf: (req: unknown) => string | undefined): void {
  /** A file the caller may see: its own tenant's, or any for the operator; others' are 404. */
  const visible = async (req: unknown, id: string) => {
    const f = await files.head(id);
    const tenant = tenantOf(req);
    if (!f || (tenant !== undefined && f.tenant !== tenant)) throw notFound('file', id);
    return f.file;
  };

  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post('/files', async (req) => {
    const contentType = req.headers['content-type'] ?? '';
    if (!Buffer.isBuffer(req.body) || !contentType.startsWith('multipart/form-data')) throw invalidRequest([{ path: 'file', message: 'send multipart/form-data with the fields file and purpose' }]);
    let form: FormData;
    try {
      form = await new Request('http://local/', { method: 'POST', headers: { 'content-type': contentType }, body: new Blob([req.body as Buffer<ArrayBuffer>]) }).formData();
    } catch (err) {
      throw invalidRequest([{ path: 'file', message: `the multipart body could not be read (${(err as Error).message})` }]);
    }
    const purpose = form.get('purpose');
    if (purpose !== 'batch') throw invalidRequest([{ path: 'purpose', message: 'must be "batch" (the only purpose fluxq serves)' }]);
    const file = form.get('file');
    if (file === null || typeof file === 'string') throw invalidRequest([{ path: 'file', message: 'is required: the JSONL file' }]);
    const bytes = Buffer.from(await file.arrayBuffer());
    if (bytes.length === 0) throw invalidRequest([{ path: 'file', message: 'is empty' }]);
    return files.put(bytes, file.name || 'input.jsonl', 'batch', tenantOf(req));
  });

  app.get<{ Params: { id: string } }>('/files/:id', async (req) => {
    return visible(req, req.params.id);
  });

  app.get<{ Params: { id: string } }>('/files/:id/content', async (req, reply) => {
    const f = await visible(req, req.params.id);
    const body = await files.open(req.params.id);
    if (!body) throw notFound('file', req.params.id);
    reply.type('application/jsonl');
    if (f.purpose !== 'batch_output') return reply.send(body);
    return reply.send(Readable.from(presignedLines(body, s3, presignTtlS)));
  });
}
