/**
 * Child process of request-body.test.ts: builds eight large base64 inputs, calls the
 * fake upstream once through FluxClient, and prints what its peak RSS (VmHWM) was before
 * and after the call, so the call's own memory is measured apart from the test's.
 * argv: baseUrl apiKey megabytesPerInput.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Secret } from '../../src/shared/secret.js';
import { INPUT_IMAGE_FIELDS, toUpstreamBody, type InputImageField } from '../../src/shared/upstream.js';
import { FluxClient } from '../../src/worker/flux-client.js';

const [baseUrl = '', apiKey = '', mb = '8'] = process.argv.slice(2);
const peak = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

/** A PNG-headed 64×64 "image" of `bytes`, different per field (the fake checks magic bytes and IHDR). */
function input(i: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes, i + 1);
  Buffer.from('89504e470d0a1a0a0000000d49484452000000400000004008060000001f15c489', 'hex').copy(b);
  for (let at = 64; at < bytes; at += 4096) b.writeUInt32BE((at * 2654435761 + i) >>> 0, at);
  return b;
}

const inputs: Partial<Record<InputImageField, string>> = {};
const sha256: Record<string, string> = {};
INPUT_IMAGE_FIELDS.forEach((field, i) => {
  const bytes = input(i, Number(mb) * 1024 * 1024);
  sha256[field] = createHash('sha256').update(bytes).digest('hex');
  inputs[field] = bytes.toString('base64');
});
const body = toUpstreamBody({ prompt: 'eight large inputs "quoted" ünïcode', width: 64, height: 64 }, inputs);
const base64Bytes = Object.values(inputs).reduce((n, v) => n + (v?.length ?? 0), 0);
global.gc?.();
// Reset the peak to the current RSS (Linux: clear_refs 5), so building the inputs is not counted.
writeFileSync('/proc/self/clear_refs', '5');
const before = peak();
const client = new FluxClient({ baseUrl, apiKey: new Secret(apiKey), timeoutMs: 60_000, connections: 1 });
const answer = await client.generate('flux-2-pro', body);
const after = peak();
await client.close();
process.stdout.write(`${JSON.stringify({ before, after, base64Bytes, sha256, status: answer.status })}\n`);
