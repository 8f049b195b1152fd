import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/shared/config.js';
import { ConfigError } from '../../src/shared/errors.js';
import { allowedInputBuckets, parseS3Ref, s3RefProblem } from '../../src/shared/s3-ref.js';

test('parseS3Ref: one rule for producer and worker — a valid bucket name, then a key', () => {
  assert.deepEqual(parseS3Ref('s3://my-bucket/a/b c'), undefined, 'no whitespace in the key');
  assert.deepEqual(parseS3Ref('s3://my-bucket/uploads/cat.png'), { bucket: 'my-bucket', key: 'uploads/cat.png' });
  assert.deepEqual(parseS3Ref('s3://b.c-1/k'), { bucket: 'b.c-1', key: 'k' });
  assert.deepEqual(parseS3Ref(`s3://bkt/${'k'.repeat(1024)}`)?.key.length, 1024);
  for (const bad of ['s3://bkt', 's3://bkt/', 's3://Bkt/k', 's3://b/k', 's3://-bkt/k', 's3://bkt-/k', 's3://bk_t/k', 's3:///k', 'S3://bkt/k', 'https://bkt/k', `s3://bkt/${'k'.repeat(1025)}`, `s3://${'b'.repeat(64)}/k`]) {
    assert.equal(parseS3Ref(bad), undefined, bad);
  }
});

test('the bucket rule: S3_BUCKET and INPUT_S3_BUCKETS only; undecided without S3_BUCKET', () => {
  const cfg = (env: Record<string, string>) => loadConfig(env, 'producer');
  assert.deepEqual(allowedInputBuckets(cfg({ S3_BUCKET: 'main' })), ['main']);
  assert.deepEqual(allowedInputBuckets(cfg({ S3_BUCKET: 'main', INPUT_S3_BUCKETS: 'other, third ,main' })), ['main', 'other', 'third']);
  assert.equal(allowedInputBuckets(cfg({})), undefined, 'a producer without S3_BUCKET leaves it to the worker');
  assert.equal(allowedInputBuckets(cfg({ INPUT_S3_BUCKETS: 'other' })), undefined);
  const allowed = ['main', 'other'];
  assert.equal(s3RefProblem('s3://main/k.png', allowed), undefined);
  assert.equal(s3RefProblem('s3://other/k.png', allowed), undefined);
  assert.equal(s3RefProblem('s3://other-bucket/k', allowed), 's3://other-bucket/k is not in S3_BUCKET or INPUT_S3_BUCKETS');
  assert.equal(s3RefProblem('s3://mainx/k', allowed), 's3://mainx/k is not in S3_BUCKET or INPUT_S3_BUCKETS', 'exact names, no prefixes');
  assert.equal(s3RefProblem('s3://other-bucket/k', undefined), undefined, 'not decided here');
  assert.match(s3RefProblem('s3://Bad_Bucket/k', allowed) ?? '', /^s3:\/\/Bad_Bucket\/k is not an s3:\/\/bucket\/key reference/);
});

test('INPUT_S3_BUCKETS is validated at start-up: a comma list of bucket names', () => {
  assert.deepEqual(loadConfig({}, 'producer').inputs.s3Buckets, []);
  assert.deepEqual(loadConfig({ INPUT_S3_BUCKETS: '' }, 'producer').inputs.s3Buckets, [], 'empty counts as unset');
  assert.deepEqual(loadConfig({ INPUT_S3_BUCKETS: 'a-bucket,b.bucket' }, 'producer').inputs.s3Buckets, ['a-bucket', 'b.bucket']);
  for (const [value, bad] of [['Other', 'Other'], ['ok-bucket,,x', ''], ['ok-bucket, bad_bucket', 'bad_bucket']]) {
    assert.throws(
      () => loadConfig({ INPUT_S3_BUCKETS: value ?? '' }, 'producer'),
      (err: unknown) => err instanceof ConfigError && err.problems.join('\n') === `INPUT_S3_BUCKETS must be a comma list of bucket names, each a bucket name (3–63 lower-case letters, digits, . -), got ${JSON.stringify(bad)}`,
      value,
    );
  }
});
