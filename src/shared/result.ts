import type { StoredImage } from './events.js';

/** A completed job's BullMQ return value (SPEC §5). */
export interface JobResult {
  images: StoredImage[];
  seed?: number;
  input_mp: number;
  output_mp: number;
  total_pixels: number;
  created: number;
  model: string;
  /** Upstream calls that spent an attempt. */
  attempts: number;
  /** Calls with an ambiguous outcome (0 when none). */
  possibly_billed: number;
  metadata?: Record<string, unknown>;
  /** Who the job was for (SPEC §8). */
  tenant?: string;
}
