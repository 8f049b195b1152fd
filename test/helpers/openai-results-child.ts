/**
 * Child process of openai-results-memory.test.ts: moves one OpenAI batch (status
 * `finalizing`) to its end with the API's BatchRunner — the output and error files
 * written to S3 — and prints the batch record and the peak heap seen while doing it.
 * Environment: the harness's env. argv: batchId.
 */
import { FileStore } from '../../src/producer/api/openai/file-store.js';
import { OpenAiBatchRecords } from '../../src/producer/api/openai/batch-record.js';
import { BatchRunner } from '../../src/producer/api/openai/batch-runner.js';
import { createProducer } from '../../src/producer/producer.js';
import { loadConfig } from '../../src/shared/config.js';
import { createLogger } from '../../src/shared/logger.js';
import { waitForRedis } from '../../src/shared/redis.js';
import { createS3Client } from '../../src/shared/s3.js';

const batchId = process.argv[2] ?? '';
const config = loadConfig(process.env, 'api');
const log = createLogger({ level: 'warn' });
const s3 = createS3Client(config);
const producer = createProducer({ config, s3, logger: log });
const files = new FileStore({ s3, bucket: config.s3.bucket ?? '', keyPrefix: config.s3.keyPrefix });
const records = new OpenAiBatchRecords(producer.redis, producer.keys);
const runner = new BatchRunner({ config, producer, files, records, log });
await waitForRedis(producer.redis, 'the test Redis');
global.gc?.();
let heapMax = 0;
const sampler = setInterval(() => (heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)), 5);
await runner.advance(batchId);
clearInterval(sampler);
const rec = await records.get(batchId);
process.stdout.write(`${JSON.stringify({ rec, heapMax })}\n`);
await producer.close();
s3.destroy();
