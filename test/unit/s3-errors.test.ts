import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyS3Error, storageError, type S3ErrorKind } from '../../src/shared/errors.js';

/** An error shaped like the AWS SDK's: `name` = S3's code, `$metadata.httpStatusCode`. */
function sdkError(name: string, status: number | undefined, message = `${name} says no`): Error {
  const err = new Error(message) as Error & { $metadata: { httpStatusCode?: number } };
  err.name = name;
  err.$metadata = status === undefined ? {} : { httpStatusCode: status };
  return err;
}

const TABLE: [name: string, status: number | undefined, kind: S3ErrorKind][] = [
  // configuration: the bucket, the credentials or the endpoint are wrong → pause the queue
  ['NoSuchBucket', 404, 'config'],
  ['AccessDenied', 403, 'config'],
  ['Forbidden', 403, 'config'], // a HEAD's 403 has no body to name it
  ['InvalidAccessKeyId', 403, 'config'],
  ['SignatureDoesNotMatch', 403, 'config'],
  ['RequestTimeTooSkewed', 403, 'config'],
  ['InvalidBucketName', 400, 'config'],
  ['AuthorizationHeaderMalformed', 400, 'config'],
  ['ExpiredToken', 400, 'config'],
  ['PermanentRedirect', 301, 'config'],
  ['MovedPermanently', 301, 'config'],
  ['Unauthorized', 401, 'config'],
  ['CredentialsProviderError', undefined, 'config'],
  // the request itself is bad → fail the job
  ['KeyTooLongError', 400, 'request'],
  ['InvalidArgument', 400, 'request'],
  ['InvalidRequest', 400, 'request'],
  ['EntityTooLarge', 400, 'request'],
  ['EntityTooLarge', 413, 'request'],
  ['BadDigest', 400, 'request'],
  ['XAmzContentSHA256Mismatch', 400, 'request'],
  ['MissingContentLength', 411, 'request'],
  ['PreconditionFailed', 412, 'request'],
  ['MethodNotAllowed', 405, 'request'],
  ['InvalidObjectState', 403, 'request'],
  ['BadRequest', 400, 'request'],
  // outages: waiting helps → delay without spending an attempt
  ['SlowDown', 503, 'outage'],
  ['ServiceUnavailable', 503, 'outage'],
  ['InternalError', 500, 'outage'],
  ['BadGateway', 502, 'outage'],
  ['GatewayTimeout', 504, 'outage'],
  ['TooManyRequests', 429, 'outage'],
  ['RequestTimeout', 400, 'outage'], // S3 sends its idle-socket timeout as a 400
  ['RequestTimeout', 408, 'outage'],
  ['OperationAborted', 409, 'outage'],
  ['TimeoutError', undefined, 'outage'],
  ['Error', undefined, 'outage'], // ECONNRESET, ECONNREFUSED: no answer at all
];

test('classifyS3Error: configuration, request and outage errors from name and HTTP status', () => {
  for (const [name, status, kind] of TABLE) {
    assert.equal(classifyS3Error(name, status), kind, `${name} (HTTP ${status ?? 'none'})`);
  }
});

test('storageError: the same classes from SDK-shaped errors; only a request error is not retryable', () => {
  for (const [name, status, kind] of TABLE) {
    const e = storageError('writing images/j/0.png', sdkError(name, status));
    assert.equal(e.kind, kind, `${name} (HTTP ${status ?? 'none'})`);
    assert.equal(e.config, kind === 'config');
    assert.equal(e.retryable, kind !== 'request');
  }
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const e = storageError('writing images/j/0.png', reset);
  assert.equal(e.kind, 'outage');
  assert.equal(e.code, 'ECONNRESET');
});

test('a request error carries the S3 status, code, key and message in its permanent reason', () => {
  const e = storageError('writing images/b/j/0.png', sdkError('KeyTooLongError', 400, 'Your key is too long'));
  assert.equal(e.reason, 'permanent: S3 400 KeyTooLongError writing images/b/j/0.png: Your key is too long');
  assert.match(e.message, /writing images\/b\/j\/0\.png failed: KeyTooLongError \(HTTP 400\): Your key is too long/);
  const multi = storageError('writing k', sdkError('InvalidArgument', 400, 'line one\n  line two'));
  assert.equal(multi.reason, 'permanent: S3 400 InvalidArgument writing k: line one line two', 'one line');
});
