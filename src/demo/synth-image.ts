import { crc32 } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/**
 * Real, decodable images for the fake upstream: a gradient with a share of noisy rows,
 * so a 1 MP PNG weighs about what a generated one does (~1.5 MB) and compresses as
 * badly. Each answer gets a unique chunk, so every served image has its own sha256.
 */
export interface SynthOptions {
  width: number;
  height: number;
  /** Share of rows that are random noise, 0–1 (bytes per pixel grows with it). */
  entropy: number;
  /** Seed for the pattern. */
  seed: number;
}

function rgba(opts: SynthOptions): Buffer {
  const { width, height } = opts;
  const data = Buffer.alloc(width * height * 4);
  let x = (opts.seed * 2654435761) >>> 0 || 1;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const share = Math.min(Math.max(opts.entropy, 0), 1);
  for (let row = 0; row < height; row++) {
    // Spread the noisy rows evenly: row r is noisy when r × share crosses a whole number.
    const noisy = Math.floor((row + 1) * share) > Math.floor(row * share);
    for (let col = 0; col < width; col++) {
      const o = (row * width + col) * 4;
      if (noisy) {
        const r = rand();
        data[o] = r & 0xff;
        data[o + 1] = (r >>> 8) & 0xff;
        data[o + 2] = (r >>> 16) & 0xff;
      } else {
        data[o] = (col * 255) / width;
        data[o + 1] = (row * 255) / height;
        data[o + 2] = (opts.seed * 37) & 0xff;
      }
      data[o + 3] = 255;
    }
  }
  return data;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

const IEND = chunk('IEND', Buffer.alloc(0));

/**
 * A PNG split for cheap per-answer uniqueness: `prefix` (everything before IEND,
 * padded with a private chunk to a multiple of 3 bytes, so its base64 can be cached
 * and concatenated) and `tail(tag)` (a tEXt chunk with the tag, then IEND).
 */
export interface SplitPng {
  prefix: Buffer;
  prefixBase64: Buffer;
  tail(tag: string): Buffer;
}

export function synthPng(opts: SynthOptions): SplitPng {
  const png = new PNG({ width: opts.width, height: opts.height, colorType: 2, inputColorType: 6, inputHasAlpha: true });
  png.data = rgba(opts);
  const full = PNG.sync.write(png, { colorType: 2, deflateLevel: 1, deflateStrategy: 0 });
  const body = full.subarray(0, full.length - IEND.length);
  // A chunk costs 12 bytes plus its data; choose the data length that makes prefix % 3 === 0.
  const padLen = (3 - ((body.length + 12) % 3)) % 3;
  const prefix = Buffer.concat([body, chunk('fxPd', Buffer.alloc(padLen, 0x20))]);
  return {
    prefix,
    prefixBase64: Buffer.from(prefix.toString('base64'), 'ascii'),
    tail: (tag: string) => Buffer.concat([chunk('tEXt', Buffer.from(`fluxq-fake\0${tag}`, 'latin1')), IEND]),
  };
}

/** A JPEG with a COM segment holding the tag right after SOI. */
export function synthJpeg(opts: SynthOptions): (tag: string) => Buffer {
  const encoded = jpeg.encode({ data: rgba({ ...opts, entropy: Math.min(opts.entropy, 0.2) }), width: opts.width, height: opts.height }, 85).data;
  const rest = encoded.subarray(2);
  return (tag: string) => {
    const text = Buffer.from(`fluxq-fake ${tag}`, 'latin1');
    const com = Buffer.alloc(4);
    com.writeUInt16BE(0xfffe, 0);
    com.writeUInt16BE(text.length + 2, 2);
    return Buffer.concat([Buffer.from([0xff, 0xd8]), com, text, rest]);
  };
}

/** A minimal lossless WebP (1×1 VP8L), for tests of WebP sniffing. */
export const TINY_WEBP = Buffer.from('UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==', 'base64');
