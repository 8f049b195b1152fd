import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { synthPng, TINY_WEBP } from '../../src/demo/synth-image.js';
import { decodeBase64Strict } from '../../src/shared/base64.js';
import { UpstreamError } from '../../src/shared/errors.js';
import { sniffImageType } from '../../src/shared/image-type.js';
import { decodeUpstreamResponse } from '../../src/worker/decode.js';
import { StreamingDecoder, MAX_SKELETON_BYTES } from '../../src/worker/decode-stream.js';

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

/** Feed a body to the streaming decoder in pieces of `size` bytes. */
function streamed(body: string, size: number, withLength = true) {
  const bytes = Buffer.from(body, 'utf8');
  const d = new StreamingDecoder(withLength ? bytes.length : undefined);
  for (let i = 0; i < bytes.length; i += size) d.write(bytes.subarray(i, i + size));
  return d.end();
}

function outcome(fn: () => ReturnType<typeof decodeUpstreamResponse>): unknown {
  try {
    const r = fn();
    return { meta: r.meta, images: r.images.map((i) => ({ sha: i.sha256, ext: i.type.ext, bytes: i.bytes.toString('base64') })) };
  } catch (err) {
    return { error: (err as Error).message, kind: (err as UpstreamError).kind };
  }
}

test('the streaming decoder gives exactly what the text decoder gives, whatever the chunking', () => {
  const b64 = png.toString('base64');
  const bodies = [
    body([b64]),
    body([b64, JPEG.toString('base64')]),
    body([b64.replace(/\//g, '\\/')]), // JSON-escaped slashes
    `{ "created" : 5, "data" : [ { "b64_json" :\n "${b64}" } ], "output_mp": 1 }`,
    body([b64], ',"note":"see \\"b64_json\\" below"'),
    body([b64.slice(0, -4) + 'A===']),
    body([b64.slice(0, 8) + '=' + b64.slice(9)]),
    body([b64.slice(0, 40) + '-' + b64.slice(41)]),
    body([b64.slice(0, 40) + ' ' + b64.slice(41)]),
    body([b64.slice(0, -1)]),
    body([Buffer.from('plain text, no image here').toString('base64')]),
    body([]),
    body(['']),
    '{"data":[{"url":"https://x"}]}',
    body([b64]).slice(0, 500),
    '<html>bad gateway</html>',
    '',
    '[1]',
  ];
  for (const [n, text] of bodies.entries()) {
    const expected = outcome(() => decodeUpstreamResponse(text));
    for (const size of [1, 3, 7, 64, 4096, 1 << 20]) {
      assert.deepEqual(outcome(() => streamed(text, size)), expected, `body ${n}, chunks of ${size}`);
    }
    assert.deepEqual(outcome(() => streamed(text, 1000, false)), expected, `body ${n}, no content-length`);
  }
});

test('the streaming decoder refuses a huge body that is not an answer, and b64_json outside data[]', () => {
  const html = `<html>${'x'.repeat(MAX_SKELETON_BYTES + 10)}</html>`;
  assert.throws(() => streamed(html, 65536), /ambiguous: HTTP 200: body is not valid JSON/);
  const b64 = png.toString('base64');
  assert.throws(() => streamed(`{"extra":{"b64_json":"${b64}"},"data":[{"b64_json":"${b64}"}]}`, 999), /b64_json found outside data\[\]/);
});
