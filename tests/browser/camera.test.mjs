// The camera path with Chromium's fake camera: live predictions on the video, and a snapshot card.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cardResult, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);
let server;
let browser;
let page;

before(async () => {
  ({ server, browser, page } = await openDemo({ launching: { camera: true }, permissions: ['camera'] }));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the camera shows live predictions', async () => {
  await page.locator('#camera-start').click();
  await page.locator('#camera:not([hidden])').waitFor({ timeout: 20_000 });
  await page.waitForFunction(() => Number(document.getElementById('live').dataset.frames || 0) >= 3, null, { timeout: 60_000 });
  const live = await page.locator('#live').textContent();
  assert.match(live, /class \d+ \d/);
  // The test model's labels mean nothing, and the live view says so too.
  assert.equal(await page.locator('#live .live-notice').textContent(), 'A test model: these labels mean nothing.');
});

test('the snapshot button adds a card with results', async () => {
  await page.locator('#snapshot').click();
  const r = await cardResult(page, 'snapshot-1.png');
  assert.ok(r.done, r.state);
  assert.equal(r.top.length, 5);
  await page.locator('#camera-stop').click();
  assert.equal(await page.locator('#camera').isHidden(), true);
  assert.equal(await page.evaluate(() => document.getElementById('video').srcObject), null);
});
