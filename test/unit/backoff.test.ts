import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoffs } from 'bullmq';
import { loadConfig } from '../../src/shared/config.js';
import { generationJobOptions } from '../../src/shared/job-options.js';

test('retries back off exponentially with jitter: attempt n waits within [½, 1] × BACKOFF_BASE_MS × 2^(n−1)', () => {
  const config = loadConfig({ BACKOFF_BASE_MS: '1000', JOB_ATTEMPTS: '5' }, 'producer');
  const opts = generationJobOptions(config, 'job-1', 3);
  assert.equal(opts.jobId, 'job-1');
  assert.equal(opts.attempts, 5);
  assert.equal(opts.priority, 3);
  const backoff = Backoffs.normalize(opts.backoff ?? 0);
  assert.ok(backoff);
  for (let n = 1; n <= 4; n++) {
    const max = 1000 * 2 ** (n - 1);
    const samples = Array.from({ length: 200 }, () => Backoffs.calculate(backoff, n, new Error('x'), undefined as never) as number);
    assert.ok(samples.every((d) => d >= max / 2 && d <= max), `attempt ${n}: ${Math.min(...samples)}–${Math.max(...samples)} outside ${max / 2}–${max}`);
    assert.ok(Math.max(...samples) - Math.min(...samples) > max / 10, `attempt ${n}: jitter spreads the delays`);
  }
  assert.equal(generationJobOptions(config, 'j').priority, undefined);
});
