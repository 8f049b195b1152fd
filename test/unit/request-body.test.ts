import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { toUpstreamBody } from '../../src/shared/upstream.js';
import { jsonBody, SLICE_CHARS } from '../../src/worker/request-body.js';

function composed(body: object): Buffer {
  const b = jsonBody(body);
  const whole = Buffer.concat([...b.pieces()]);
  assert.equal(whole.length, b.length, 'the announced length is the byte length');
  return whole;
}

const TRICKY = [
  'a plain prompt',
  '',
  'quotes " and \\ backslashes \\" and / slashes',
  'control \u0000 \u0001 \b \f \n \r \t \u001f \u007f characters',
  'unicode: café 東京 🦊🐉 \u2028 \u2029 ẞ',
  'lone surrogates \ud800 and \udfff and a pair 😀',
  '</script><!-- -->',
];

test('the composed body equals JSON.stringify(body) for tricky prompts and every field', () => {
  for (const prompt of TRICKY) {
    const body = toUpstreamBody(
      { prompt, seed: 42, width: 1024, height: 768, safety_tolerance: '2', output_format: 'jpeg' },
      { input_image: randomBytes(300).toString('base64'), input_image_3: 'iVBORw0KGgo=' },
    );
    assert.equal(composed(body).toString('utf8'), JSON.stringify(body), JSON.stringify(prompt));
    assert.deepEqual(composed(body), Buffer.from(JSON.stringify(body), 'utf8'));
  }
  assert.equal(composed({ prompt: 'only' }).toString(), '{"prompt":"only"}');
  assert.equal(composed({ prompt: 'x', seed: undefined, width: 64 }).toString(), JSON.stringify({ prompt: 'x', seed: undefined, width: 64 }));
  assert.equal(composed({}).toString(), '{}');
});

test('long values are sent slice by slice with the same bytes, even across surrogate pairs and escapes at slice edges', () => {
  const b64 = randomBytes(3 * SLICE_CHARS + 123).toString('base64');
  // A long prompt whose slice boundaries fall inside a surrogate pair, right after a backslash, on a quote …
  const unit = '🦊"\\\n é\ud800x';
  const longPrompt = 'p'.repeat(SLICE_CHARS - 1) + '😀' + unit.repeat(Math.ceil((2 * SLICE_CHARS) / unit.length)) + '\udbff';
  const shifted = 'q'.repeat(SLICE_CHARS) + '\ud83d\ude00' + '"'.repeat(SLICE_CHARS) + '\\';
  for (const body of [
    toUpstreamBody({ prompt: TRICKY[3] as string, seed: 7 }, { input_image: b64, input_image_2: b64, input_image_8: b64 }),
    toUpstreamBody({ prompt: longPrompt, output_format: 'png' }, { input_image: b64 }),
    toUpstreamBody({ prompt: shifted }),
  ]) {
    const expected = Buffer.from(JSON.stringify(body), 'utf8');
    const b = jsonBody(body);
    const pieces = [...b.pieces()];
    assert.ok(pieces.length > 4, 'sent in pieces');
    assert.ok(Math.max(...pieces.map((p) => p.length)) <= 6 * SLICE_CHARS + 64, 'no piece is much more than a slice');
    assert.equal(b.length, expected.length);
    assert.ok(Buffer.concat(pieces).equals(expected));
    assert.ok(Buffer.concat([...b.pieces()]).equals(expected), 'pieces() starts over on every call');
  }
});
