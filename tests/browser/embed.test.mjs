// The embeddable widget on a page that is not ours: embed-example.html served from a
// second origin, loading bit50-embed.js and the model from the first (CORS).
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, serve, openPage, dropFiles, nativeClassify, expectSameTop, saveArtifact, PHOTOS, WWW, TINY } from './helpers.mjs';
import { startServer } from '../../tools/serve.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);
let bit50Host;
let otherSite;
let siteDir;
let browser;
let page;

before(async () => {
  bit50Host = await serve();
  siteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-site-'));
  const html = fs
    .readFileSync(path.join(WWW, 'embed-example.html'), 'utf8')
    .replace('src="bit50-embed.js"', `src="${bit50Host.url}bit50-embed.js"`)
    .replace('model="models/bit-50/"', `model="${bit50Host.url}${TINY}"`);
  assert.ok(html.includes(`${bit50Host.url}bit50-embed.js`) && html.includes(`${bit50Host.url}${TINY}`), 'embed-example.html changed: update this test');
  fs.writeFileSync(path.join(siteDir, 'index.html'), html);
  for (const f of ['embed-example.css', 'embed-example.js']) fs.copyFileSync(path.join(WWW, f), path.join(siteDir, f));
  // The host page's own policy: what docs/web.md says a page embedding the widget needs.
  const bit50 = new URL(bit50Host.url).origin;
  const csp = `default-src 'self'; script-src 'self' ${bit50} 'wasm-unsafe-eval'; worker-src blob: ${bit50}; connect-src ${bit50}; img-src 'self' blob:`;
  otherSite = await startServer({ root: siteDir, host: '127.0.0.1', csp });
  assert.notEqual(new URL(otherSite.url).origin, new URL(bit50Host.url).origin);
  browser = await launch();
  page = await openPage(browser, otherSite.url);
});

after(async () => {
  await browser?.close();
  await bit50Host?.close();
  await otherSite?.close();
  fs.rmSync(siteDir, { recursive: true, force: true });
});

test('the widget loads from another origin and becomes ready', async () => {
  await page.waitForFunction(() => {
    const el = document.querySelector('bit50-classifier');
    return el?.shadowRoot && /Ready|Cannot/.test(el.shadowRoot.querySelector('.status').textContent);
  }, null, { timeout: 60_000 });
  const status = await page.evaluate(() => document.querySelector('bit50-classifier').shadowRoot.querySelector('.status').textContent);
  // On SwiftShader (a software adapter) the widget keeps whichever path it measured faster.
  assert.match(status, /Ready \((WebGPU|CPU)\)/, page.logs.join('\n'));
  // Styled under a policy that allows no inline style.
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('bit50-classifier').shadowRoot.querySelector('.box')).borderStyle), 'dashed');
});

test('a photo dropped on the widget shows a result and fires the prediction event', async () => {
  await page.evaluate(() => {
    window.predictions = [];
    document.querySelector('bit50-classifier').addEventListener('prediction', (e) => window.predictions.push(e.detail));
  });
  await page.evaluate(() => (window.__dropTarget = document.querySelector('bit50-classifier').shadowRoot.querySelector('.box')));
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')], '__dropTarget');
  await page.waitForFunction(() => window.predictions.length > 0, null, { timeout: 60_000 });
  const detail = await page.evaluate(() => window.predictions[0]);
  assert.equal(detail.name, 'cat.png');
  expectSameTop(detail.top, nativeClassify(path.join(PHOTOS, 'cat.png')).top.slice(0, 3), { probTol: 1e-4 });
  assert.match(await page.locator('#log').textContent(), /prediction: cat\.png -> class/);
  const shown = await page.evaluate(() => document.querySelector('bit50-classifier').shadowRoot.querySelectorAll('.result li').length);
  assert.equal(shown, 3);
  // The photo beside its results is a blob: image, which the host's policy allows.
  assert.equal(await page.evaluate(() => document.querySelector('bit50-classifier').shadowRoot.querySelector('.result img').naturalWidth > 0), true);
  assert.deepEqual(page.logs.filter((l) => /CSP violation/.test(l)), [], 'the widget broke the policy the docs give');
  saveArtifact('embed-example.png', await page.screenshot({ fullPage: true }));
});
