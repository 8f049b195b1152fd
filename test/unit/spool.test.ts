import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { TINY_WEBP, synthJpeg } from '../../src/demo/synth-image.js';
import { createLogger } from '../../src/shared/logger.js';
import { sniffImageType } from '../../src/shared/image-type.js';
import type { DecodedImage } from '../../src/worker/decode.js';
import { Spool, type SpooledResponse } from '../../src/worker/spool.js';

const META = { created: 1700000000, input_mp: 0, output_mp: 1.05, total_pixels: 1048576 };
const jpeg = synthJpeg({ width: 16, height: 16, seed: 7, entropy: 0.1 });

function image(bytes: Buffer): DecodedImage {
  const type = sniffImageType(bytes);
  assert.ok(type, 'a test image is an image');
  return { bytes, type, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function response(...tags: string[]): SpooledResponse {
  return { meta: META, images: tags.map((tag) => (tag === 'webp' ? image(TINY_WEBP) : image(jpeg(tag)))) };
}

const bytesOf = (r: SpooledResponse) => r.images.reduce((n, i) => n + i.bytes.length, 0);

/** A spool in a fresh directory, with a logger whose lines the test can read. */
async function spool(t: TestContext, maxBytes = 10_000_000): Promise<{ spool: Spool; dir: string; logged: () => Record<string, unknown>[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-spool-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => void lines.push(l) } });
  return { spool: new Spool(dir, maxBytes, log), dir, logged: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('put then get gives back the same images and billing fields, per job and per generation', async (t) => {
  const { spool: s, dir } = await spool(t);
  const a1 = response('a1-0', 'a1-1', 'webp');
  const a2 = response('a2-0');
  const b1 = response('b1-0');
  assert.equal(await s.put('job-a', 1, a1), true);
  assert.equal(await s.put('job-a', 2, a2), true);
  assert.equal(await s.put('job-b', 1, b1), true);

  assert.deepEqual(await s.get('job-a', 1), a1);
  assert.deepEqual(await s.get('job-a', 2), a2);
  assert.deepEqual(await s.get('job-b', 1), b1);
  assert.deepEqual((await s.get('job-a', 1))?.images.map((i) => i.type.ext), ['jpg', 'jpg', 'webp']);
  assert.equal(await s.get('job-a', 3), undefined, 'another generation of the job is not spooled');
  assert.equal(await s.get('job-c', 1), undefined, 'another job is not spooled');
  assert.equal(await s.usedBytes(), bytesOf(a1) + bytesOf(a2) + bytesOf(b1) + (await metaBytes(dir, ['job-a.1', 'job-a.2', 'job-b.1'])));

  await s.remove('job-a', 1);
  assert.equal(await s.get('job-a', 1), undefined, 'removed');
  assert.deepEqual(await s.get('job-a', 2), a2, 'removing one generation keeps the other');
  assert.deepEqual(await s.get('job-b', 1), b1, 'removing one job keeps the others');
  await s.remove('job-a', 1); // removing what is not there is fine
  await s.remove('job-z', 9);
});

/** The meta.json files count towards the cap too. */
async function metaBytes(dir: string, folders: string[]): Promise<number> {
  let n = 0;
  for (const f of folders) n += (await readFile(join(dir, f, 'meta.json'))).length;
  return n;
}

test('the cap (SPOOL_MAX_BYTES): a put that would pass it is refused with a warning, and nothing is written', async (t) => {
  const first = response('cap-0');
  const size = bytesOf(first);
  const { spool: s, dir, logged } = await spool(t, size * 2 + 200);
  assert.equal(await s.put('job-1', 1, first), true);
  const used = await s.usedBytes();
  assert.ok(used > size && used < size + 200, `images plus a small meta.json (${used})`);

  const big = response('cap-1', 'cap-2');
  assert.equal(await s.put('job-2', 1, big), false, 'would pass the cap');
  assert.deepEqual(await readdir(dir), ['job-1.1'], 'nothing of the refused put is on disk');
  assert.equal(await s.get('job-2', 1), undefined);
  const warn = logged().find((l) => /spool is full \(SPOOL_MAX_BYTES\)/.test(String(l.msg)));
  assert.ok(warn, 'the refusal is logged');
  assert.equal(warn.jobId, 'job-2');
  assert.equal(warn.bytes, bytesOf(big));
  assert.ok(!JSON.stringify(logged()).includes(big.images[0]?.bytes.toString('base64').slice(0, 40) ?? '-'), 'no payload is logged');

  assert.equal(await s.put('job-3', 1, response('cap-3')), true, 'one more image still fits');
  await s.remove('job-1', 1);
  await s.remove('job-3', 1);
  assert.equal(await s.put('job-2', 1, big), true, 'fits once space is freed');

  const { spool: off } = await spool(t, 0);
  assert.equal(await off.put('job-1', 1, first), false, 'SPOOL_MAX_BYTES=0 spools nothing');
});

test('a damaged spool entry reads as not spooled: no meta.json, bad JSON, a missing, cut or altered image', async (t) => {
  const { spool: s, dir } = await spool(t);
  const damage: [name: string, harm: (folder: string) => Promise<void>][] = [
    ['no meta.json', (f) => rm(join(f, 'meta.json'))],
    ['meta.json cut short', async (f) => writeFile(join(f, 'meta.json'), (await readFile(join(f, 'meta.json'), 'utf8')).slice(0, 30))],
    ['an image file missing', (f) => rm(join(f, '1.jpg'))],
    ['an image file cut short (a partial write)', (f) => truncate(join(f, '0.jpg'), 10)],
    ['an image file empty', (f) => truncate(join(f, '1.jpg'), 0)],
    ['an image byte changed', async (f) => {
      const bytes = await readFile(join(f, '1.jpg'));
      bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0xff;
      await writeFile(join(f, '1.jpg'), bytes);
    }],
    ['an image replaced by something that is not an image, with a matching sha256 in meta.json', async (f) => {
      const junk = Buffer.from('not an image at all, just text');
      await writeFile(join(f, '0.jpg'), junk);
      const index = JSON.parse(await readFile(join(f, 'meta.json'), 'utf8')) as { images: { sha256: string }[] };
      if (index.images[0]) index.images[0].sha256 = createHash('sha256').update(junk).digest('hex');
      await writeFile(join(f, 'meta.json'), JSON.stringify(index));
    }],
  ];
  for (const [i, [name, harm]] of damage.entries()) {
    const jobId = `job-${i}`;
    assert.equal(await s.put(jobId, 1, response(`d${i}-0`, `d${i}-1`)), true);
    assert.ok(await s.get(jobId, 1), `${name}: readable before the damage`);
    await harm(join(dir, `${jobId}.1`));
    assert.equal(await s.get(jobId, 1), undefined, name);
    await s.remove(jobId, 1);
    assert.deepEqual(await readdir(dir), [], `${name}: remove clears a damaged entry`);
  }
});

test('concurrent puts of different jobs and generations all land whole', async (t) => {
  const { spool: s } = await spool(t);
  const puts = Array.from({ length: 12 }, (_, i) => ({ jobId: `job-${i % 4}`, gen: Math.floor(i / 4) + 1, r: response(`c${i}-0`, `c${i}-1`) }));
  const results = await Promise.all(puts.map((p) => s.put(p.jobId, p.gen, p.r)));
  assert.deepEqual(results, puts.map(() => true));
  for (const p of puts) assert.deepEqual(await s.get(p.jobId, p.gen), p.r, `${p.jobId}.${p.gen}`);
});

test('concurrent puts never pass the cap together', async (t) => {
  const one = bytesOf(response('race-0'));
  const { spool: s } = await spool(t, one * 3 + 600);
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.put(`job-${i}`, 1, response(`race-${i}`))));
  assert.equal(results.filter(Boolean).length, 3, `three fit, the others are refused (${results.join(', ')})`);
  assert.ok((await s.usedBytes()) <= one * 3 + 600);
});

test('concurrent puts of the same job generation leave the last one whole, never a mix', async (t) => {
  const { spool: s } = await spool(t);
  const candidates = Array.from({ length: 6 }, (_, i) => response(`same${i}-0`, `same${i}-1`));
  await Promise.all(candidates.map((r) => s.put('job-x', 1, r)));
  const got = await s.get('job-x', 1);
  assert.deepEqual(got, candidates.at(-1), 'the last put wins whole: never a mix of two answers');
});
