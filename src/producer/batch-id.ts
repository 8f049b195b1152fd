import { randomBytes } from 'node:crypto';

/** A readable, unique batch id for a CLI run without `--batch`: `b-20261202-170630-3f9a2c`. */
export function newBatchId(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  return `b-${stamp}-${randomBytes(3).toString('hex')}`;
}
