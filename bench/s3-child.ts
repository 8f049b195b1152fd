/**
 * The bench's s3rver, in its own process so its CPU (MD5, file writes) neither shares
 * the fake upstream's event loop nor hides in the bench's figures.
 * argv: DIRECTORY BUCKET...  Prints {"event":"ready","endpoint","env":{bucket: env}}.
 * Exits on SIGTERM or when stdin closes (the bench died).
 */
import { startLocalS3 } from '../src/demo/local-s3.js';
import { emit } from './util.js';

const [directory, ...buckets] = process.argv.slice(2);
if (!directory || buckets.length === 0) {
  process.stderr.write('usage: s3-child.ts DIRECTORY BUCKET...\n');
  process.exit(2);
}

const s3 = await startLocalS3({ buckets, directory });
let closing = false;
const close = async () => {
  if (closing) return;
  closing = true;
  await Promise.race([s3.close(), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
};
process.on('SIGTERM', () => void close());
process.on('SIGINT', () => void close());
process.stdin.on('end', () => void close());
process.stdin.resume();
emit({ event: 'ready', endpoint: s3.endpoint, env: Object.fromEntries(buckets.map((b) => [b, s3.env(b)])) });
