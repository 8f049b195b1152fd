import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../../src/demo/local-redis.js';
import { LOCAL_S3_CREDENTIALS, startLocalS3, type LocalS3 } from '../../src/demo/local-s3.js';
import { TINY_WEBP, synthJpeg } from '../../src/demo/synth-image.js';
import { StorageError } from '../../src/shared/errors.js';
import { sniffImageType } from '../../src/shared/image-type.js';
import { findStoredImages, firstImageMayExist } from '../../src/worker/checkpoint.js';
import type { DecodedImage } from '../../src/worker/decode.js';
import { storeImages, toS3Metadata } from '../../src/worker/upload.js';

/**
 * The bucket as checkpoint (SPEC §7 "Paid once"): what a retry finds of a job's images
 * at its own keys, against a real s3rver.
 */
const BUCKET = 'checkpoint-test';
const META = { created: 1700000000, input_mp: 0.5, output_mp: 1.05, total_pixels: 1048576 };
const jpeg = synthJpeg({ width: 16, height: 16, seed: 3, entropy: 0.1 });

let server: LocalS3;
let s3: S3Client;

function client(endpoint: string, maxAttempts = 3): S3Client {
  return new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: LOCAL_S3_CREDENTIALS, maxAttempts });
}

before(async () => {
  server = await startLocalS3({ buckets: [BUCKET] });
  s3 = client(server.endpoint);
});
after(async () => {
  s3.destroy();
  await server.close();
  await rm(server.directory, { recursive: true, force: true });
});

function image(bytes: Buffer): DecodedImage {
  const type = sniffImageType(bytes);
  assert.ok(type);
  return { bytes, type, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Store a job's images the way a worker does (storeImages, with its metadata). */
async function store(folder: string, jobId: string, images: DecodedImage[], seed?: number): Promise<void> {
  await storeImages(s3, { bucket: BUCKET, folder, jobId, batchId: 'b1', seed, meta: META, images }, { retryWindowMs: 0 });
}

test('every image of the job with its job-id: found, in order, with the billing fields and seed', async () => {
  const images = [image(jpeg('found-0')), image(jpeg('found-1')), image(TINY_WEBP)];
  await store('cp/b1/j-found', 'j-found', images, 42);
  const found = await findStoredImages(s3, BUCKET, 'cp/b1/j-found', 'j-found');
  assert.deepEqual(found, {
    images: images.map((img, i) => ({ bucket: BUCKET, key: `cp/b1/j-found/${i}.${img.type.ext}`, contentType: img.type.contentType, bytes: img.bytes.length, sha256: img.sha256 })),
    meta: META,
    seed: 42,
  });

  await store('cp/j-noseed', 'j-noseed', [image(jpeg('noseed'))]);
  const noSeed = await findStoredImages(s3, BUCKET, 'cp/j-noseed', 'j-noseed');
  assert.ok(noSeed);
  assert.equal('seed' in noSeed, false, 'no seed stored, none reported');
});

test("images carrying another job's job-id are not this job's", async () => {
  await store('cp/j-foreign', 'someone-else', [image(jpeg('foreign-0')), image(jpeg('foreign-1'))]);
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-foreign', 'j-foreign'), undefined);
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-foreign', 'jpg'), true, 'the cheap look only says something is there');

  // One image of the set is foreign: the set is not this job's.
  await store('cp/j-mixed', 'j-mixed', [image(jpeg('mixed-0')), image(jpeg('mixed-1'))]);
  await putRaw('cp/j-mixed/1.jpg', image(jpeg('mixed-x')), { jobId: 'someone-else', index: 1, count: 2 });
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-mixed', 'j-mixed'), undefined);
});

test('a partial set, or images that disagree on their count, is not stored', async () => {
  await store('cp/j-partial', 'j-partial', [image(jpeg('partial-0')), image(jpeg('partial-1')), image(jpeg('partial-2'))]);
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'cp/j-partial/1.jpg' }));
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-partial', 'j-partial'), undefined, 'image 1 of 3 missing');

  await store('cp/j-first-missing', 'j-first-missing', [image(jpeg('fm-0')), image(jpeg('fm-1'))]);
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'cp/j-first-missing/0.jpg' }));
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-first-missing', 'j-first-missing'), undefined, 'image 0 of 2 missing');
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-first-missing', 'jpg'), false);

  await store('cp/j-count', 'j-count', [image(jpeg('count-0')), image(jpeg('count-1'))]);
  await putRaw('cp/j-count/1.jpg', image(jpeg('count-x')), { jobId: 'j-count', index: 1, count: 3 });
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-count', 'j-count'), undefined, 'image 1 says the set has 3');

  await putRaw('cp/j-nocount/0.jpg', image(jpeg('nocount')), { jobId: 'j-nocount', index: 0, count: 0 });
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-nocount', 'j-nocount'), undefined, 'image-count 0');
});

test('missing: an empty folder, objects in a sub-folder or a neighbouring folder, files that are not image names', async () => {
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-none', 'j-none'), undefined);
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-none', 'png'), false);

  await store('cp/j-near0', 'j-near', [image(jpeg('near'))]);
  await store('cp/j-near/deeper', 'j-near', [image(jpeg('deeper'))]);
  await putRaw('cp/j-near/notes.txt', image(jpeg('notes')), { jobId: 'j-near', index: 0, count: 1 });
  assert.equal(await findStoredImages(s3, BUCKET, 'cp/j-near', 'j-near'), undefined);
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-near', 'jpg'), false);
});

test('firstImageMayExist looks at the key the requested format predicts', async () => {
  await store('cp/j-ext', 'j-ext', [image(TINY_WEBP)]);
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-ext', 'webp'), true);
  assert.equal(await firstImageMayExist(s3, BUCKET, 'cp/j-ext', 'png'), false, 'another format: one HEAD, not found');
});

test('S3 errors become StorageErrors that say what was being looked for', async () => {
  const wrongBucket = await findStoredImages(s3, 'no-such-bucket-here', 'cp/j', 'j').then(() => undefined, (e: unknown) => e);
  assert.ok(wrongBucket instanceof StorageError, String(wrongBucket));
  assert.equal(wrongBucket.kind, 'config', 'NoSuchBucket: the queue pauses');
  assert.match(wrongBucket.message, /looking for stored images under s3:\/\/no-such-bucket-here\/cp\/j\//);

  const down = client(`http://127.0.0.1:${await freePort()}`, 1);
  try {
    for (const look of [() => findStoredImages(down, BUCKET, 'cp/j', 'j'), () => firstImageMayExist(down, BUCKET, 'cp/j', 'png')]) {
      const err = await look().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof StorageError, String(err));
      assert.equal(err.kind, 'outage', 'nothing listening: waiting helps');
      assert.match(err.message, /looking for stored images (under|at) s3:\/\/checkpoint-test\/cp\/j\//);
    }
  } finally {
    down.destroy();
  }

  const aborted = AbortSignal.abort();
  await assert.rejects(findStoredImages(s3, BUCKET, 'cp/j-found', 'j-found', aborted), (e: Error) => !(e instanceof StorageError), 'an aborted look is not an S3 error');
  await assert.rejects(firstImageMayExist(s3, BUCKET, 'cp/j-found', 'jpg', aborted), (e: Error) => !(e instanceof StorageError));
});

/** One object with hand-made metadata. */
async function putRaw(key: string, img: DecodedImage, m: { jobId: string; index: number; count: number }): Promise<void> {
  const Metadata = toS3Metadata({ ...m, sha256: img.sha256, meta: META });
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: img.bytes, ContentType: img.type.contentType, Metadata }));
}
