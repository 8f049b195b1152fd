import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import { sniffImageType } from '../shared/image-type.js';
import type { UpstreamResponseMeta } from '../shared/upstream.js';
import type { DecodedImage } from './decode.js';

/**
 * A local directory that keeps generated images whose upload failed, so a retry on this
 * host uploads them instead of paying for them again. One folder per job generation:
 * `{dir}/{jobId}.{gen}/meta.json` + `{i}.{ext}`. Capped at `maxBytes`: when the cap
 * would be passed the bytes are not spooled (logged), and a retry that cannot find
 * them regenerates.
 */
export interface SpooledResponse {
  meta: UpstreamResponseMeta;
  images: DecodedImage[];
}

export class Spool {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #log: Logger;
  /** The last put in line; the next one starts when it has finished. */
  #puts: Promise<unknown> = Promise.resolve();

  constructor(dir: string, maxBytes: number, log: Logger) {
    this.#dir = dir;
    this.#maxBytes = maxBytes;
    this.#log = log;
  }

  #folder(jobId: string, gen: number): string {
    return join(this.#dir, `${jobId}.${gen}`);
  }

  async usedBytes(): Promise<number> {
    let total = 0;
    const entries = await readdir(this.#dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const files = await readdir(join(this.#dir, entry.name)).catch(() => []);
      for (const f of files) total += (await stat(join(this.#dir, entry.name, f)).catch(() => ({ size: 0 }))).size;
    }
    return total;
  }

  /**
   * Keep a job's generated images; false when the cap does not allow it. Puts take turns,
   * so concurrent jobs cannot all pass the size check before any of them has written.
   */
  put(jobId: string, gen: number, response: SpooledResponse): Promise<boolean> {
    const turn = this.#puts.then(() => this.#put(jobId, gen, response));
    this.#puts = turn.catch(() => undefined);
    return turn;
  }

  async #put(jobId: string, gen: number, response: SpooledResponse): Promise<boolean> {
    const size = response.images.reduce((n, i) => n + i.bytes.length, 0);
    if (this.#maxBytes <= 0 || (await this.usedBytes()) + size > this.#maxBytes) {
      this.#log.warn({ jobId, bytes: size, maxBytes: this.#maxBytes }, 'spool is full (SPOOL_MAX_BYTES): generated images kept in memory only for this attempt');
      return false;
    }
    const folder = this.#folder(jobId, gen);
    await mkdir(folder, { recursive: true });
    await Promise.all(response.images.map((img, i) => writeFile(join(folder, `${i}.${img.type.ext}`), img.bytes)));
    const index = response.images.map((img, i) => ({ file: `${i}.${img.type.ext}`, sha256: img.sha256 }));
    await writeFile(join(folder, 'meta.json'), JSON.stringify({ meta: response.meta, images: index }));
    return true;
  }

  /** A spooled response whose every file still has its sha256, or undefined. */
  async get(jobId: string, gen: number): Promise<SpooledResponse | undefined> {
    const folder = this.#folder(jobId, gen);
    let index: { meta: UpstreamResponseMeta; images: { file: string; sha256: string }[] };
    try {
      index = JSON.parse(await readFile(join(folder, 'meta.json'), 'utf8'));
    } catch {
      return undefined;
    }
    const images: DecodedImage[] = [];
    for (const entry of index.images) {
      const bytes = await readFile(join(folder, entry.file)).catch(() => undefined);
      const type = bytes && sniffImageType(bytes);
      if (!bytes || !type || createHash('sha256').update(bytes).digest('hex') !== entry.sha256) return undefined;
      images.push({ bytes, type, sha256: entry.sha256 });
    }
    return { meta: index.meta, images };
  }

  async remove(jobId: string, gen: number): Promise<void> {
    await rm(this.#folder(jobId, gen), { recursive: true, force: true });
  }
}
