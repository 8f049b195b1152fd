import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEV_ONLY, TSX, nodeWithoutDevPackages } from '../helpers/production-install.js';

/**
 * SPEC §9: without an OTLP endpoint, tracing costs nothing: the OpenTelemetry SDK, its
 * exporters and bullmq-otel are never loaded. Proven by hiding them (as if they were not
 * installed): the worker, the API and the CLI's enqueue still load and start no tracing;
 * the same with an endpoint set does reach for the SDK.
 */
const SDK = ['@opentelemetry/sdk-trace-node', '@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/exporter-trace-otlp-http', '@opentelemetry/resources', '@opentelemetry/semantic-conventions', 'bullmq-otel'];

const startTracingIn = (env: Record<string, string>) =>
  nodeWithoutDevPackages(
    [
      '--import', TSX, '--input-type=module', '-e',
      `
      await import('./src/worker/run-worker.ts');
      await import('./src/producer/commands/api.ts');
      await import('./src/producer/commands/enqueue.ts');
      const { loadConfig } = await import('./src/shared/config.ts');
      const { startTracing } = await import('./src/shared/tracing.ts');
      const tracing = await startTracing(loadConfig(process.env, 'producer'), 'cli');
      process.stdout.write(String(tracing));
      `,
    ],
    { hidden: [...DEV_ONLY, ...SDK], env },
  );

test('tracing off: the worker, the API and the CLI load and run without the OpenTelemetry SDK or bullmq-otel', { timeout: 90_000 }, async () => {
  const off = await startTracingIn({});
  assert.equal(off.code, 0, off.stderr);
  assert.equal(off.stdout, 'undefined');
  // Not vacuous: with an endpoint the SDK is loaded (and is hidden here).
  const on = await startTracingIn({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
  assert.notEqual(on.code, 0);
  assert.match(on.stderr, /Cannot find (?:package|module) '(?:@opentelemetry\/[a-z-]+|bullmq-otel)'/);
});

test('OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (default) or http/json; anything else is a configuration error', async () => {
  const { loadConfig } = await import('../../src/shared/config.js');
  const { ConfigError } = await import('../../src/shared/errors.js');
  assert.equal(loadConfig({}, 'producer').tracing.protocol, 'http/protobuf');
  assert.equal(loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'producer').tracing.protocol, 'http/json');
  assert.throws(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'producer'), (err: unknown) => err instanceof ConfigError && /OTEL_EXPORTER_OTLP_PROTOCOL/.test(err.message));
});
