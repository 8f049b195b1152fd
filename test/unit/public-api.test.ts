import assert from 'node:assert/strict';
import { test } from 'node:test';

test('src/index.ts exports exactly the public surface', async () => {
  const mod = await import('../../src/index.js');
  assert.deepEqual(Object.keys(mod).sort(), [
    'BudgetError', 'BulkValidationError', 'CONFIG_VARIABLES', 'ConfigError', 'EVENT', 'FakeFlux', 'FluxClient', 'INPUT_IMAGE_FIELDS', 'InputError',
    'QueueUnavailableError', 'Secret', 'StorageError', 'UpstreamError', 'ValidationError', 'classifyHttpError', 'classifyTransportError',
    'createLogger', 'createProducer', 'createRedis', 'createS3Client', 'createWorker', 'decodeUpstreamResponse', 'envelopeSchema', 'imageKey',
    'inputImageKey', 'isValidJobId', 'jobImageFolder', 'kindForStatus', 'loadConfig', 'manifestKey', 'parseEnvelope', 'parseRetryAfter',
    'redisKeys', 'startFakeFlux', 'toUpstreamBody', 'validateRequests',
  ]);
  assert.equal(mod.EVENT.jobCompleted, 'job.completed');
});
