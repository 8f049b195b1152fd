import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { synthPng, TINY_WEBP } from '../../src/demo/synth-image.js';
import { decodeBase64Strict } from '../../src/shared/base64.js';
import { UpstreamError } from '../../src/shared/errors.js';
import { sniffImageType } from '../../src/shared/image-type.js';
import { decodeUpstreamResponse, extractBase64Values } from '../../src/worker/decode.js';

const png = (() => {
  const p = synthPng({ width: 64, height: 64, entropy: 0.5, seed: 3 });
  return Buffer.concat([p.prefix, p.tail('t')]);
})();
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]);

test('strict base64: standard alphabet, whole quads, padding only at the end', () => {
  assert.deepEqual(decodeBase64Strict('QUJD'), Buffer.from('ABC'));
  assert.deepEqual(decodeBase64Strict('QUJDRA=='), Buffer.from('ABCD'));
  for (const bad of ['', 'QUJ', 'QU JD', 'QUJD\nRA==', 'Q-_D', 'QQ==QQ==', 'QUJD====', 'QUJDRA=A', 'QUJ*']) {
    assert.equal(decodeBase64Strict(bad), undefined, JSON.stringify(bad));
  }
});

test('image type from magic bytes: PNG, JPEG, WebP, nothing else', () => {
  assert.deepEqual(sniffImageType(png), { ext: 'png', contentType: 'image/png' });
  assert.deepEqual(sniffImageType(JPEG), { ext: 'jpg', contentType: 'image/jpeg' });
  assert.deepEqual(sniffImageType(TINY_WEBP), { ext: 'webp', contentType: 'image/webp' });
  assert.equal(sniffImageType(Buffer.from('GIF89a........................')), undefined);
  assert.equal(sniffImageType(Buffer.from('hello world, not an image')), undefined);
});

function body(values: string[], extra = ''): string {
  return `{"created":1700000000${extra},"input_mp":0,"output_mp":1,"total_pixels":1048576,"data":[${values.map((v) => `{"b64_json":"${v}"}`).join(',')}]}`;
}

test('a 200 body decodes into images with sha256 and the billing fields; the type comes from the bytes', () => {
  const d = decodeUpstreamResponse(body([png.toString('base64'), JPEG.toString('base64')]));
  assert.equal(d.images.length, 2);
  assert.deepEqual(d.images[0]?.bytes, png);
  assert.equal(d.images[0]?.sha256, createHash('sha256').update(png).digest('hex'));
  assert.equal(d.images[1]?.type.ext, 'jpg');
  assert.deepEqual(d.meta, { created: 1700000000, input_mp: 0, output_mp: 1, total_pixels: 1048576 });
  const misspelt = decodeUpstreamResponse(`{"createed":42,"output_mp":1,"data":[{"b64_json":"${png.toString('base64')}"}]}`);
  assert.equal(misspelt.meta.created, 42);
});

test('bad 200 bodies are ambiguous: not JSON, truncated, empty data, bad base64, not an image', () => {
  const cases: [string, RegExp][] = [
    ['<html>oops</html>', /not valid JSON/],
    [body([png.toString('base64')]).slice(0, 80), /not valid JSON/],
    ['', /empty body/],
    [body([]), /empty data/],
    ['{"data":"x"}', /empty data/],
    [body(['iVBORw0K!!']), /not valid base64/],
    [body([Buffer.from('plain text, no image here').toString('base64')]), /not a PNG, JPEG or WebP/],
    ['[1,2]', /not a JSON object/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => decodeUpstreamResponse(text), (err: UpstreamError) => {
      assert.ok(err instanceof UpstreamError);
      assert.equal(err.kind, 'ambiguous');
      assert.equal(err.status, 200);
      assert.match(err.message, re);
      return true;
    }, text.slice(0, 40));
  }
});

test('the base64 cut handles escapes and stray "b64_json" text by falling back to JSON.parse', () => {
  const b64 = png.toString('base64');
  assert.deepEqual(extractBase64Values(body([b64]))?.values, [b64]);
  const escaped = body([b64.replace(/\//g, '\\/')]);
  assert.equal(extractBase64Values(escaped), undefined);
  assert.deepEqual(decodeUpstreamResponse(escaped).images[0]?.bytes, png);
  const stray = body([b64], ',"note":"see \\"b64_json\\" below"');
  assert.deepEqual(decodeUpstreamResponse(stray).images[0]?.bytes, png);
});
