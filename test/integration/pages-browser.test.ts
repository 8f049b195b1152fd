/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_TOKEN, startApi } from '../helpers/api.js';
import { ARTIFACTS, launchChromium } from '../helpers/browser.js';
import { startHarness } from '../helpers/harness.js';

test('headless Chromium: the dashboard shows the queue with its counts; the gallery of a finished batch shows every image loaded', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  h.fake.inject({ prompt: 'gallery 3', fault: { type: 'moderation' } });
  const api = await startApi(h);
  t.after(() => api.close());
  const producer = h.producer();
  await producer.enqueueBulk(
    Array.from({ length: 6 }, (_, i) => ({ id: `gal-${i}`, prompt: `gallery ${i}`, seed: 100 + i, width: 512, height: i % 2 ? 768 : 512, ...(i === 4 ? { output_format: 'jpeg' } : {}) })),
    { batch: 'gal' },
  );
  await h.worker();
  await producer.waitForBatch('gal', { timeoutMs: 30_000 });
  await producer.queue.pause();
  await producer.enqueue({ id: 'still-waiting', prompt: 'queued', batch: 'other' });

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });

  // The dashboard, signed in once through ?token= (then the cookie carries it).
  const res = await page.goto(`${api.url}/admin/queues?token=${API_TOKEN}`);
  assert.equal(res?.status(), 200);
  assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
  await page.getByText('generate', { exact: false }).first().waitFor({ timeout: 20_000 });
  await page.getByText('generate-webhooks').first().waitFor({ timeout: 20_000 });
  const queues = (await page.evaluate(async () => (await fetch('/admin/queues/api/queues')).json())) as { queues: { name: string; counts: Record<string, number> }[] };
  const gen = queues.queues.find((q) => q.name === 'generate');
  assert.ok(gen, 'bull-board lists the generation queue');
  assert.equal(gen.counts.completed, 5);
  assert.equal(gen.counts.failed, 1);
  // bull-board shows a job fair share still parks as delayed (README "Fair share").
  assert.equal((gen.counts.waiting ?? 0) + (gen.counts.paused ?? 0) + (gen.counts.delayed ?? 0), 1);
  await page.waitForFunction(() => !document.body.innerText.includes('Loading...') && /completed/i.test(document.body.innerText), undefined, { timeout: 20_000 });
  const text = await page.locator('body').innerText();
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  assert.match(text, /5\s*\n?\s*completed|completed\s*\n?\s*5/i, 'the queue card shows its counts');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  // The gallery of the finished batch: every image loaded.
  const g = await page.goto(`${api.url}/batches/gal`);
  assert.equal(g?.status(), 200);
  await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete), undefined, { timeout: 20_000 });
  const images = await page.evaluate(() => Array.from(document.images).map((img) => ({ w: img.naturalWidth, h: img.naturalHeight, key: img.dataset.key })));
  assert.equal(images.length, 5);
  for (const img of images) assert.ok(img.w > 0, `${img.key} did not load`);
  assert.deepEqual(images.map((i) => [i.w, i.h]).sort(), [[512, 512], [512, 512], [512, 512], [512, 768], [512, 768]].sort());
  const cards = await page.locator('figure.card').count();
  assert.equal(cards, 6);
  const failed = page.locator('figure.card.failed');
  assert.equal(await failed.count(), 1);
  assert.match(await failed.innerText(), /gallery 3[\s\S]*permanent: HTTP 400 sensitive_check_error: prompt refused by moderation/);
  const first = await page.locator('figure[data-job="gal-0"]').innerText();
  assert.match(first, /gallery 0/);
  assert.match(first, /seed\s+100/);
  assert.match(first, /size\s+512×512/);
  assert.match(first, /state\s+completed/);
  assert.match(await page.locator('header').innerText(), /6 \/ 6 \(100%\)/);
  assert.match(await page.locator('body').innerText(), /output 5 MP/);
  await page.screenshot({ path: join(ARTIFACTS, 'gallery.png'), fullPage: true });
});
