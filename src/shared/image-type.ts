import type { ImageExt } from './keys.js';

/**
 * Image type from magic bytes, never from the requested format. Three signatures
 * (PNG, JPEG, WebP) are all fluxq accepts; a general sniffer such as `file-type`
 * detects a hundred formats we would refuse anyway and is async-only.
 */
export interface ImageType {
  ext: ImageExt;
  contentType: 'image/png' | 'image/jpeg' | 'image/webp';
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function sniffImageType(bytes: Uint8Array): ImageType | undefined {
  if (bytes.length >= 24 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG)) {
    return { ext: 'png', contentType: 'image/png' };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return { ext: 'jpg', contentType: 'image/jpeg' };
  }
  if (
    bytes.length >= 16 &&
    bytes[0] === 0x52 && bytes[1] === 0x49 && bytes[2] === 0x46 && bytes[3] === 0x46 && // RIFF
    bytes[8] === 0x57 && bytes[9] === 0x45 && bytes[10] === 0x42 && bytes[11] === 0x50 // WEBP
  ) {
    return { ext: 'webp', contentType: 'image/webp' };
  }
  return undefined;
}
