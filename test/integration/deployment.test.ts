import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/shared/config.js';
import { REPO } from '../helpers/harness.js';

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  ports?: unknown[];
  container_name?: string;
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
  image?: string;
  build?: unknown;
}

function composeConfig(env: Record<string, string>): { services: Record<string, ComposeService> } {
  const out = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: REPO, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  return parse(out) as { services: Record<string, ComposeService> };
}

test('docker-compose.yml is valid and its worker and API start with a valid fluxq configuration', () => {
  const { services } = composeConfig({ FLUX_API_KEY: 'sk-test', API_TOKEN: 'a-long-enough-api-token' });
  assert.deepEqual(Object.keys(services).sort(), ['api', 'create-bucket', 'minio', 'redis', 'worker']);
  for (const [name, role] of [['worker', 'worker'], ['api', 'api']] as const) {
    const svc = services[name];
    assert.ok(svc?.environment, name);
    for (const key of Object.keys(svc.environment)) assert.ok(CONFIG_VARIABLES.includes(key), `${name}: ${key} is not a fluxq variable`);
    const config = loadConfig(svc.environment, role);
    assert.equal(config.s3.endpoint, 'http://minio:9000');
    assert.equal(config.s3.forcePathStyle, true);
    assert.deepEqual(config.redis.urls, ['redis://redis:6379']);
    assert.equal(svc.depends_on?.['create-bucket']?.condition, 'service_completed_successfully');
    assert.equal(svc.depends_on?.redis?.condition, 'service_healthy');
  }
  assert.deepEqual(services.worker?.command, ['worker']);
  assert.deepEqual(services.api?.command, ['api']);
});

test('Redis keeps jobs (AOF, noeviction); workers scale (no name, no host port) and get longer than SHUTDOWN_TIMEOUT_MS to stop', () => {
  const { services } = composeConfig({ FLUX_API_KEY: 'k', API_TOKEN: 'a-long-enough-api-token' });
  const redis = (services.redis?.command ?? []).join(' ');
  assert.match(redis, /--appendonly yes/);
  assert.match(redis, /--maxmemory-policy noeviction/);
  const worker = services.worker as ComposeService;
  assert.equal(worker.container_name, undefined);
  assert.equal(worker.ports, undefined);
  const grace = Number(/^(\d+)s$/.exec(worker.stop_grace_period ?? '')?.[1]);
  const shutdown = loadConfig(worker.environment ?? {}, 'worker').worker.shutdownTimeoutMs;
  assert.ok(grace * 1000 > shutdown, `stop_grace_period ${grace}s must exceed SHUTDOWN_TIMEOUT_MS ${shutdown}`);
  assert.match((services['create-bucket']?.environment ?? {}).S3_BUCKET ?? '', /^fluxq$/);
});

test('without FLUX_API_KEY the worker configuration fails naming it', () => {
  const { services } = composeConfig({});
  assert.throws(() => loadConfig(services.worker?.environment ?? {}, 'worker'), /FLUX_API_KEY \(or MODELVERSE_API_KEY\) is required by the worker/);
  assert.throws(() => loadConfig(services.api?.environment ?? {}, 'api'), /API_TOKEN is required by the API/);
});
