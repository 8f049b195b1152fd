import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PACKAGE, TSX, nodeWithoutDevPackages } from '../helpers/production-install.js';

/** `node --import tsx -e CODE` in the repo, with the development packages absent as in a production install. */
const withoutDevPackages = (code: string) => nodeWithoutDevPackages(['--import', TSX, '--input-type=module', '-e', code]);

test('src/index.ts exports exactly the public surface', async () => {
  const mod = await import('../../src/index.js');
  assert.deepEqual(Object.keys(mod).sort(), [
    'BudgetError', 'BulkValidationError', 'CONFIG_VARIABLES', 'ConfigError', 'EVENT', 'FluxClient', 'INPUT_IMAGE_FIELDS', 'InputError',
    'QueueUnavailableError', 'Secret', 'StorageError', 'UpstreamError', 'ValidationError', 'classifyHttpError', 'classifyTransportError',
    'createLogger', 'createProducer', 'createRedis', 'createS3Client', 'createWorker', 'decodeUpstreamResponse', 'envelopeSchema', 'eventVisibleTo', 'imageKey',
    'inputImageKey', 'isValidJobId', 'jobImageFolder', 'kindForStatus', 'loadConfig', 'manifestKey', 'parseEnvelope', 'parseRetryAfter',
    'redisKeys', 'toUpstreamBody', 'validateRequests',
  ]);
  assert.equal(mod.EVENT.jobCompleted, 'job.completed');
});

test('fluxq/testing (src/testing.ts) is the separate entry of the fake upstream and the local S3/Redis', async () => {
  const mod = await import('../../src/testing.js');
  assert.deepEqual(Object.keys(mod).sort(), [
    'FakeFlux', 'LOCAL_S3_CREDENTIALS', 'TINY_WEBP', 'freePort', 'redisServerAvailable', 'startFakeFlux', 'startLocalRedis', 'startLocalS3',
    'synthJpeg', 'synthPng',
  ]);
  assert.deepEqual(PACKAGE.exports['./testing'], { types: './dist/testing.d.ts', import: './dist/testing.js' });
  assert.deepEqual(PACKAGE.exports['.'], { types: './dist/index.d.ts', import: './dist/index.js' });
});

test('s3rver, pngjs, jpeg-js and tsx are development dependencies, not production ones', () => {
  for (const name of ['s3rver', 'pngjs', 'jpeg-js', 'tsx']) {
    assert.equal(PACKAGE.dependencies[name], undefined, `${name} is in dependencies`);
    assert.ok(PACKAGE.devDependencies[name], `${name} is not in devDependencies`);
  }
});

test('the main entry, the worker and the API load without any development dependency (s3rver, pngjs, jpeg-js, tsx …)', { timeout: 90_000 }, async () => {
  const run = await withoutDevPackages(`
    const index = await import('./src/index.ts');
    await import('./src/worker/run-worker.ts');
    await import('./src/producer/commands/api.ts');
    await import('./src/producer/commands/enqueue.ts');
    process.stdout.write(typeof index.createWorker);
  `);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, 'function');
  // The check is not vacuous: the testing entry does need them.
  const testing = await withoutDevPackages(`await import('./src/testing.ts')`);
  assert.notEqual(testing.code, 0);
  assert.match(testing.stderr, /Cannot find (?:package|module) '(?:s3rver|pngjs|jpeg-js)'/);
});
