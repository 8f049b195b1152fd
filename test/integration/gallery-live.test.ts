/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { API_TOKEN, startApi } from '../helpers/api.js';
import { ARTIFACTS, launchChromium } from '../helpers/browser.js';
import { startHarness } from '../helpers/harness.js';

test('headless Chromium: the batch gallery goes live — a pending card turns into its image, a failure shows its reason, progress moves to 100%, with no navigation or reload', { timeout: 120_000 }, async (t) => {
  const h = await startHarness(t, { fake: { latencyMs: 20 } });
  h.fake.inject({ prompt: 'live 2', fault: { type: 'moderation' } });
  const api = await startApi(h);
  t.after(() => api.close());
  const producer = h.producer();
  await producer.enqueueBulk(Array.from({ length: 3 }, (_, i) => ({ id: `live-${i}`, prompt: `live ${i}`, seed: 7 + i, width: 512, height: 512 })), { batch: 'live' });

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  let navigations = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations++;
  });
  const res = await page.goto(`${api.url}/batches/live?token=${API_TOKEN}`);
  assert.equal(res?.status(), 200);
  assert.equal(new URL(page.url()).search, '', 'the token left the address bar');
  const navigationsAtStart = navigations;
  assert.equal(await page.locator('meta[http-equiv="refresh"]').count(), 0, 'no self-reload');
  await page.evaluate(() => ((window as unknown as { marker: string }).marker = 'same document'));
  assert.equal(await page.locator('figure[data-job="live-0"] img').count(), 0);
  assert.match(await page.locator('figure[data-job="live-0"]').innerText(), /state\s+pending/, 'not final yet: the card shows pending, no image');
  assert.match(await page.locator('#summary header').innerText(), /0 \/ 3 \(0%\)/);
  await page.locator('.live').waitFor({ state: 'visible', timeout: 20_000 }); // the EventSource is open
  await page.screenshot({ path: join(ARTIFACTS, 'gallery-live-before.png'), fullPage: true });

  await h.worker(); // the jobs run only now, while the page is open

  await page.locator('figure[data-job="live-0"] img').waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => Array.from(document.querySelectorAll('figure.card img')).length === 2 && Array.from(document.images).every((img) => img.complete && img.naturalWidth > 0), undefined, { timeout: 30_000 });
  await page.waitForFunction(() => /3 \/ 3 \(100%\)/.test(document.querySelector('#summary header')?.textContent ?? ''), undefined, { timeout: 30_000 });
  const first = await page.locator('figure[data-job="live-0"]').innerText();
  assert.match(first, /state\s+completed/);
  assert.match(first, /seed\s+7/);
  const failed = page.locator('figure[data-job="live-2"]');
  assert.match(await failed.innerText(), /state\s+failed[\s\S]*permanent: HTTP 400 sensitive_check_error/);
  assert.match(await page.locator('#summary').innerText(), /completed 2[\s\S]*failed 1/);
  assert.equal(await page.evaluate(() => (window as unknown as { marker?: string }).marker), 'same document', 'the same document: never reloaded');
  assert.equal(navigations, navigationsAtStart, 'no navigation');
  await page.screenshot({ path: join(ARTIFACTS, 'gallery-live-after.png'), fullPage: true });
});
