import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { test } from 'node:test';
import { loadConfig, CONFIG_VARIABLES } from '../../src/shared/config.js';
import { ConfigError } from '../../src/shared/errors.js';

const worker = { FLUX_API_KEY: 'sk-live-123456', S3_BUCKET: 'my-bucket' };

function problems(env: Record<string, string>, role: 'worker' | 'producer' | 'api' = 'worker'): string[] {
  try {
    loadConfig(env, role);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  return [];
}

test('defaults match SPEC §3', () => {
  const c = loadConfig(worker, 'worker');
  assert.deepEqual(c.redis, { urls: ['redis://127.0.0.1:6379'], cluster: false });
  assert.deepEqual(c.queue, { prefix: 'fluxq', name: 'generate' });
  assert.equal(c.flux.baseUrl, 'https://api.modelverse.cn/v1');
  assert.equal(c.flux.model, 'flux-2-pro');
  assert.equal(c.flux.timeoutMs, 120_000);
  assert.equal(c.worker.concurrency, 4);
  assert.equal(c.worker.globalConcurrency, undefined);
  assert.equal(c.worker.autoConcurrencyMin, 1);
  assert.equal(c.worker.autoConcurrencyMax, 64);
  assert.equal(c.worker.rateLimit, undefined);
  assert.equal(c.worker.maxAmbiguousRetries, 2);
  assert.equal(c.idempotencyTtlS, 604_800);
  assert.equal(c.worker.jobAttempts, 5);
  assert.equal(c.worker.backoffBaseMs, 1000);
  assert.equal(c.s3.region, 'us-east-1');
  assert.equal(c.s3.forcePathStyle, false);
  assert.equal(c.s3.keyPrefix, 'images');
  assert.equal(c.api.host, '0.0.0.0');
  assert.equal(c.api.port, 8080);
  assert.equal(c.api.bodyLimitBytes, 67_108_864);
  assert.equal(c.api.presignTtlS, 3600);
  assert.equal(c.worker.metricsPort, undefined);
  assert.equal(c.budget.priceFirstMpUsd, 0.03);
  assert.equal(c.budget.priceExtraMpUsd, 0.015);
  assert.equal(c.inputs.maxBytes, 20_971_520);
  assert.equal(c.inputs.allowPrivateUrls, false);
  assert.equal(c.events.maxLen, 1_000_000);
  assert.equal(c.worker.shutdownTimeoutMs, 60_000);
  assert.equal(c.logLevel, 'info');
});

test('one line per bad or missing variable, all at once', () => {
  assert.deepEqual(problems({ WORKER_CONCURRENCY: 'abc', FLUX_TIMEOUT_MS: '-5', LOG_LEVEL: 'loud' }).sort(), [
    'FLUX_API_KEY (or MODELVERSE_API_KEY) is required by the worker',
    'FLUX_TIMEOUT_MS must be an integer ≥ 1000, got "-5"',
    'LOG_LEVEL must be fatal, error, warn, info, debug, trace, silent, got "loud"',
    'S3_BUCKET is required by the worker',
    'WORKER_CONCURRENCY must be an integer from 1 to 1024, got "abc"',
  ]);
});

test('booleans accept 1/true/0/false only; an empty value counts as unset', () => {
  assert.equal(loadConfig({ ...worker, S3_FORCE_PATH_STYLE: 'true' }, 'worker').s3.forcePathStyle, true);
  assert.equal(loadConfig({ ...worker, S3_FORCE_PATH_STYLE: '0' }, 'worker').s3.forcePathStyle, false);
  assert.deepEqual(problems({ ...worker, S3_FORCE_PATH_STYLE: 'yes' }), ['S3_FORCE_PATH_STYLE must be 1, true, 0 or false, got "yes"']);
  assert.deepEqual(problems({ ...worker, S3_FORCE_PATH_STYLE: 'False' }), ['S3_FORCE_PATH_STYLE must be 1, true, 0 or false, got "False"']);
  const c = loadConfig({ ...worker, WORKER_CONCURRENCY: '', S3_FORCE_PATH_STYLE: '', GLOBAL_CONCURRENCY: '  ' }, 'worker');
  assert.equal(c.worker.concurrency, 4);
  assert.equal(c.worker.globalConcurrency, undefined);
});

test('FLUX_API_KEY falls back to MODELVERSE_API_KEY; secrets never serialise', () => {
  const c = loadConfig({ MODELVERSE_API_KEY: 'mv-secret-key', S3_BUCKET: 'b-b', S3_ACCESS_KEY_ID: 'AK', S3_SECRET_ACCESS_KEY: 's3-secret-value', API_TOKEN: 'token-token-token-1' }, 'worker');
  assert.equal(c.flux.apiKey?.reveal(), 'mv-secret-key');
  const text = JSON.stringify(c) + inspect(c, { depth: 10 }) + String(c.flux.apiKey) + `${c.s3.secretAccessKey}`;
  for (const secret of ['mv-secret-key', 's3-secret-value', 'token-token-token-1']) assert.ok(!text.includes(secret), `${secret} leaked`);
});

test('GLOBAL_CONCURRENCY is a number or auto; rate limit variables come in pairs', () => {
  assert.equal(loadConfig({ ...worker, GLOBAL_CONCURRENCY: '24' }, 'worker').worker.globalConcurrency, 24);
  assert.equal(loadConfig({ ...worker, GLOBAL_CONCURRENCY: 'auto' }, 'worker').worker.globalConcurrency, 'auto');
  assert.deepEqual(problems({ ...worker, GLOBAL_CONCURRENCY: '0' }), ['GLOBAL_CONCURRENCY must be an integer ≥ 1 or "auto", got "0"']);
  assert.deepEqual(problems({ ...worker, RATE_LIMIT_MAX: '10' }), ['RATE_LIMIT_DURATION_MS is required when RATE_LIMIT_MAX is set']);
  assert.deepEqual(loadConfig({ ...worker, RATE_LIMIT_MAX: '10', RATE_LIMIT_DURATION_MS: '1000' }, 'worker').worker.rateLimit, { max: 10, durationMs: 1000 });
  assert.deepEqual(problems({ ...worker, AUTO_CONCURRENCY_MIN: '10', AUTO_CONCURRENCY_MAX: '5' }), ['AUTO_CONCURRENCY_MIN must be ≤ AUTO_CONCURRENCY_MAX, got 10 > 5']);
});

test('REDIS_CLUSTER needs a hash-tagged QUEUE_PREFIX and takes a comma list', () => {
  assert.deepEqual(problems({ ...worker, REDIS_CLUSTER: '1', REDIS_URL: 'redis://a:1,redis://b:2' }), [
    'QUEUE_PREFIX must start with a hash tag such as {fluxq} when REDIS_CLUSTER=1, got "fluxq"',
  ]);
  const c = loadConfig({ ...worker, REDIS_CLUSTER: '1', REDIS_URL: 'redis://a:1, redis://b:2', QUEUE_PREFIX: '{fluxq}' }, 'worker');
  assert.deepEqual(c.redis.urls, ['redis://a:1', 'redis://b:2']);
  assert.deepEqual(problems({ ...worker, REDIS_URL: 'redis://a:1,redis://b:2' }), ['REDIS_URL holds several URLs; set REDIS_CLUSTER=1 for a Redis Cluster or give one URL']);
  assert.deepEqual(problems({ ...worker, REDIS_URL: 'http://x' }), ['REDIS_URL must be a redis:// or rediss:// URL (a comma list with REDIS_CLUSTER=1), got "http://x"']);
  assert.equal(loadConfig({ ...worker, REDIS_URL: 'rediss://:pw@host:6380' }, 'worker').redis.urls[0], 'rediss://:pw@host:6380');
});

test('roles: a producer needs neither key nor bucket; the API needs a token unless API_INSECURE=1', () => {
  assert.deepEqual(problems({}, 'producer'), []);
  assert.deepEqual(problems({ S3_BUCKET: 'bkt' }, 'api'), ['API_TOKEN is required by the API (or set API_INSECURE=1 to run without auth)']);
  assert.deepEqual(problems({ S3_BUCKET: 'bkt', API_INSECURE: '1' }, 'api'), []);
});

test('every SPEC §3 variable is known to the schema', () => {
  const spec = ['REDIS_URL', 'REDIS_CLUSTER', 'QUEUE_PREFIX', 'QUEUE_NAME', 'FLUX_API_BASE_URL', 'FLUX_MODEL', 'FLUX_API_KEY', 'MODELVERSE_API_KEY', 'FLUX_TIMEOUT_MS', 'WORKER_CONCURRENCY', 'GLOBAL_CONCURRENCY', 'AUTO_CONCURRENCY_MIN', 'AUTO_CONCURRENCY_MAX', 'RATE_LIMIT_MAX', 'RATE_LIMIT_DURATION_MS', 'MAX_AMBIGUOUS_RETRIES', 'IDEMPOTENCY_TTL_S', 'JOB_ATTEMPTS', 'BACKOFF_BASE_MS', 'S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'S3_FORCE_PATH_STYLE', 'S3_KEY_PREFIX', 'API_HOST', 'API_PORT', 'API_TOKEN', 'API_BODY_LIMIT_BYTES', 'PRESIGN_TTL_S', 'WORKER_METRICS_PORT', 'WEBHOOK_ALLOWED_HOSTS', 'MAX_MEGAPIXELS_PER_BATCH', 'PRICE_FIRST_MP_USD', 'PRICE_EXTRA_MP_USD', 'MAX_INPUT_IMAGE_BYTES', 'INPUT_URL_ALLOW_PRIVATE', 'EVENTS_MAX_LEN', 'SHUTDOWN_TIMEOUT_MS', 'LOG_LEVEL', 'API_INSECURE'];
  for (const v of spec) assert.ok(CONFIG_VARIABLES.includes(v), v);
});

test('MAX_RESPONSE_BYTES: default 134217728 (SPEC §7), an integer ≥ 1024', () => {
  assert.equal(loadConfig(worker, 'worker').flux.maxResponseBytes, 134_217_728);
  assert.equal(loadConfig({ ...worker, MAX_RESPONSE_BYTES: '4194304' }, 'worker').flux.maxResponseBytes, 4_194_304);
  assert.deepEqual(problems({ ...worker, MAX_RESPONSE_BYTES: '12MB' }), ['MAX_RESPONSE_BYTES must be an integer ≥ 1024, got "12MB"']);
  assert.deepEqual(problems({ ...worker, MAX_RESPONSE_BYTES: '100' }), ['MAX_RESPONSE_BYTES must be an integer ≥ 1024, got "100"']);
});

test('a message shows the value the failing check saw: as set for numbers, booleans and REDIS_URL; trimmed for text; the first bad bucket', () => {
  assert.deepEqual(problems({ ...worker, WORKER_CONCURRENCY: ' 2000 ' }), ['WORKER_CONCURRENCY must be an integer from 1 to 1024, got " 2000 "']);
  assert.deepEqual(problems({ ...worker, MAX_MEGAPIXELS_PER_BATCH: '1e3' }), ['MAX_MEGAPIXELS_PER_BATCH must be a number > 0, got "1e3"']);
  assert.deepEqual(problems({ ...worker, API_INSECURE: ' 1' }), ['API_INSECURE must be 1, true, 0 or false, got " 1"']);
  assert.deepEqual(problems({ ...worker, FLUX_MODEL: ' bad name ' }), ['FLUX_MODEL must be 1–64 letters, digits, . _ -, got "bad name"']);
  assert.deepEqual(problems({ ...worker, REDIS_URL: 'redis://a:1, http://b' }), ['REDIS_URL must be a redis:// or rediss:// URL (a comma list with REDIS_CLUSTER=1), got "redis://a:1, http://b"']);
  assert.deepEqual(problems({ ...worker, INPUT_S3_BUCKETS: 'good-one, BAD, x' }), ['INPUT_S3_BUCKETS must be a comma list of bucket names, each a bucket name (3–63 lower-case letters, digits, . -), got "BAD"']);
  assert.deepEqual(problems({ ...worker, GLOBAL_CONCURRENCY: '9007199254740993' }), ['GLOBAL_CONCURRENCY must be an integer ≥ 1 or "auto", got "9007199254740993"']);
  const c = loadConfig({ ...worker, WORKER_CONCURRENCY: ' 8 ', FLUX_API_BASE_URL: 'https://x.test/v1/', S3_ENDPOINT: 'http://minio:9000/', WEBHOOK_ALLOWED_HOSTS: 'A.example, b.example' }, 'worker');
  assert.equal(c.worker.concurrency, 8);
  assert.equal(c.flux.baseUrl, 'https://x.test/v1');
  assert.equal(c.s3.endpoint, 'http://minio:9000/');
  assert.deepEqual(c.webhooks.allowedHosts, ['a.example', 'b.example']);
});

test('API_TOKENS: a comma list name=token; each name and token once; a refused value never shows a token', () => {
  const api = { S3_BUCKET: 'bkt', API_TOKEN: 'operator-token-0123456789' };
  const c = loadConfig({ ...api, API_TOKENS: 'acme=acme-token-0123456789, beta.eu=beta-token-0123456789' }, 'api');
  assert.deepEqual(c.api.tenantTokens.map((t) => [t.tenant, t.token.reveal()]), [['acme', 'acme-token-0123456789'], ['beta.eu', 'beta-token-0123456789']]);
  assert.ok(!JSON.stringify(c).includes('acme-token') && !inspect(c, { depth: 9 }).includes('acme-token'), 'tokens never serialise');
  assert.deepEqual(loadConfig(api, 'api').api.tenantTokens, []);
  for (const bad of ['acme=short', 'acme', '=acme-token-0123456789', 'a b=acme-token-0123456789', 'acme=acme-token-0123456789,acme=other-token-0123456789', 'a=same-token-0123456789,b=same-token-0123456789']) {
    const [line] = problems({ ...api, API_TOKENS: bad }, 'api');
    assert.match(line ?? '', /^API_TOKENS must be a comma list of name=token/, bad);
    assert.ok(!/token-0123456789|short/.test(line ?? ''), `no token in: ${line}`);
  }
});

test('TENANT_WEIGHTS, TENANT_MAX_CONCURRENCY, TENANT_MAX_MEGAPIXELS_PER_DAY: comma lists name=N by tenant', () => {
  const c = loadConfig({ ...worker, TENANT_WEIGHTS: 'alpha=3, beta.x=1000', TENANT_MAX_CONCURRENCY: 'alpha=2', TENANT_MAX_MEGAPIXELS_PER_DAY: 'alpha=12.5' }, 'worker');
  assert.deepEqual([...c.fairShare.weights], [['alpha', 3], ['beta.x', 1000]]);
  assert.deepEqual([...c.fairShare.maxConcurrency], [['alpha', 2]]);
  assert.deepEqual([...c.fairShare.maxMegapixelsPerDay], [['alpha', 12.5]]);
  assert.equal(loadConfig(worker, 'worker').fairShare.weights.size, 0, 'unset: weight 1 each, no caps');
  for (const bad of ['alpha=0', 'alpha=1001', 'alpha=1,alpha=2', 'al pha=1', 'alpha', 'alpha=1.5']) {
    assert.match(problems({ ...worker, TENANT_WEIGHTS: bad })[0] ?? '', /^TENANT_WEIGHTS must be a comma list name=N/, bad);
  }
  assert.match(problems({ ...worker, TENANT_MAX_MEGAPIXELS_PER_DAY: 'a=0' })[0] ?? '', /^TENANT_MAX_MEGAPIXELS_PER_DAY must be/);
});
