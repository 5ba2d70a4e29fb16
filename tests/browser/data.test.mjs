// Data from elsewhere is data, and photos stay home.
// - A model from another origin whose manifest's name and labels hold HTML and script: shown as
//   text on the page and in the widget; no element is made of them, nothing runs.
// - Every request the browser makes (the page's, its workers', the service worker's) while photos
//   are dropped, pasted and taken with the camera: none but GETs of the site's own files and the
//   model's; the server sees the same, and no request carries a body.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, serve, openPage, waitModel, dropFiles, cardResult, PHOTOS, WWW, TINY } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
const HOSTILE_NAME = '<img src=x onerror="window.__ran=\'name\'"><script>window.__ran=\'name script\'</script>evil';
const hostileLabel = (i) => `<img src=x onerror="window.__ran='label ${i}'"><b>bold ${i}</b>`;
let site;
let models;
let evilDir;
let browser;

before(async () => {
  evilDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-evil-'));
  for (const f of fs.readdirSync(path.join(WWW, TINY))) fs.copyFileSync(path.join(WWW, TINY, f), path.join(evilDir, f));
  const manifest = JSON.parse(fs.readFileSync(path.join(evilDir, 'manifest.json'), 'utf8'));
  manifest.name = HOSTILE_NAME;
  manifest.labels = manifest.labels.map((_, i) => hostileLabel(i));
  fs.writeFileSync(path.join(evilDir, 'manifest.json'), JSON.stringify(manifest));
  site = await serve();
  // The hostile model on another origin (CORS, as a model host must).
  models = await serve({ '/evil/': evilDir });
  browser = await launch({ camera: true });
});

after(async () => {
  await browser?.close();
  await site?.close();
  await models?.close();
  fs.rmSync(evilDir, { recursive: true, force: true });
});

/** Elements the hostile strings would have made, anywhere (shadow roots included), and whether
 * any of their script ran. */
function planted(page) {
  return page.evaluate(() => {
    const all = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll('*')) {
        all.push(el);
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    return {
      elements: all.filter((el) => (el.tagName === 'IMG' && el.getAttribute('src') === 'x') || el.tagName === 'B' || (el.tagName === 'SCRIPT' && !el.src)).map((el) => el.outerHTML),
      ran: window.__ran ?? null,
    };
  });
}

test('a manifest whose name and labels hold HTML and script: shown as text on the page, nothing made of it', async () => {
  const page = await openPage(browser, `${site.url}index.html?model=${models.url}evil/`);
  try {
    const info = await waitModel(page);
    assert.ok(info, page.logs.join('\n'));
    assert.equal(info.name, HOSTILE_NAME);
    assert.equal(await page.locator('#model-name').textContent(), HOSTILE_NAME);
    await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
    const r = await cardResult(page, 'cat.png');
    assert.ok(r.done, r.state);
    const shown = await page.locator(`#${r.id} .top .label`).allTextContents();
    assert.deepEqual(shown, r.top.map((p) => p.label));
    assert.ok(shown.every((l) => /^<img src=x onerror="window.__ran='label \d'"><b>bold \d<\/b>$/.test(l)), shown.join('\n'));
    // The heatmap's legend names the label too.
    await page.locator(`#${r.id} .toggle-heat`).click();
    await page.locator(`#${r.id} .heat-legend:not([hidden])`).waitFor({ timeout: 60_000 });
    assert.equal(await page.locator(`#${r.id} .legend-title`).textContent(), `Where it sees “${r.top[0].label}”:`);
    assert.deepEqual(await planted(page), { elements: [], ran: null });
  } finally {
    await page.context().close();
  }
});

test('the same model in the widget: its labels shown as text, nothing made of them', async () => {
  const page = await openPage(browser, `${site.url}embed-example.html?model=${models.url}evil/`);
  try {
    await page.waitForFunction(() => /Ready|Cannot/.test(document.querySelector('bit50-classifier')?.shadowRoot?.querySelector('.status').textContent), null, { timeout: 60_000 });
    await page.evaluate(() => (window.__dropTarget = document.querySelector('bit50-classifier').shadowRoot.querySelector('.box')));
    await page.evaluate(() => document.addEventListener('prediction', (e) => (window.__prediction = e.detail)));
    await dropFiles(page, [path.join(PHOTOS, 'cat.png')], '__dropTarget');
    await page.waitForFunction(() => window.__prediction, null, { timeout: 60_000 });
    const { labels, status, top } = await page.evaluate(() => {
      const root = document.querySelector('bit50-classifier').shadowRoot;
      return { labels: [...root.querySelectorAll('ol.top .label')].map((l) => l.textContent), status: root.querySelector('.status').textContent, top: window.__prediction.top };
    });
    assert.deepEqual(labels, top.map((p) => p.label));
    assert.match(labels[0], /^<img src=x onerror=/);
    assert.equal(status, `${top[0].label} (${status.match(/\((\d+) ms\)$/)[1]} ms)`);
    // The host page's log writes the labels as text too.
    assert.match(await page.locator('#log').textContent(), /prediction: cat\.png -> <img src=x/);
    assert.deepEqual(await planted(page), { elements: [], ran: null });
  } finally {
    await page.context().close();
  }
});

test('nothing is uploaded: photos dropped, pasted and taken with the camera make no request but for the site and the model', async () => {
  // What the server sees: every request, its method and whether it has a body.
  const seen = [];
  const server = await serve({}, {
    intercept: (req, res, pathname) => {
      seen.push({ method: req.method, path: pathname, body: Number(req.headers['content-length'] || 0) > 0 || !!req.headers['transfer-encoding'] });
      return false;
    },
  });
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`, { permissions: ['camera'] });
  // What the browser asks for: the page, its workers, its service worker.
  const requests = [];
  page.context().on('request', (r) => requests.push({ url: r.url(), method: r.method(), body: r.postDataBuffer()?.length ?? 0, from: r.serviceWorker() ? 'service worker' : 'page' }));
  try {
    assert.ok(await waitModel(page), page.logs.join('\n'));
    await page.waitForFunction(() => navigator.serviceWorker.controller, null, { timeout: 30_000 }).catch(() => {});
    const start = { browser: requests.length, server: seen.length };
    // The recorder sees the workers' requests too: the model's shard, fetched by the model's worker.
    assert.ok(requests.some((r) => r.url.endsWith('.safetensors')), requests.map((r) => r.url).join('\n'));

    await dropFiles(page, [path.join(PHOTOS, 'cat.png'), path.join(PHOTOS, 'coffee.jpg')]);
    assert.ok((await cardResult(page, 'coffee.jpg')).done);
    const b64 = fs.readFileSync(path.join(PHOTOS, 'astronaut-alpha.png')).toString('base64');
    await page.evaluate((b64) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'image.png', { type: 'image/png' }));
      document.body.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, b64);
    assert.ok((await cardResult(page, 'pasted-1.png')).done);
    await page.locator('#camera-start').click();
    await page.waitForFunction(() => Number(document.getElementById('live').dataset.frames || 0) >= 3, null, { timeout: 60_000 });
    await page.locator('#snapshot').click();
    assert.ok((await cardResult(page, 'snapshot-1.png')).done);
    await page.locator('#camera-stop').click();
    const card = page.locator('.card', { has: page.locator('.name', { hasText: 'cat.png' }) }).first();
    await card.locator('.toggle-heat').click();
    await card.locator('.heat:not([hidden])').waitFor({ timeout: 60_000 });
    await page.waitForTimeout(1000); // anything sent late

    const origin = new URL(server.url).origin;
    const during = requests.slice(start.browser);
    for (const r of during) {
      assert.equal(r.body, 0, `a request with a body: ${JSON.stringify(r)}`);
      assert.ok(['GET', 'HEAD'].includes(r.method), JSON.stringify(r));
      const url = new URL(r.url);
      // The page's own files (served from www/) and local object URLs of its own making.
      if (url.protocol === 'blob:' || url.protocol === 'data:') continue;
      assert.equal(url.origin, origin, JSON.stringify(r));
      assert.ok(fs.existsSync(path.join(WWW, decodeURIComponent(url.pathname))), `not a file of the site: ${JSON.stringify(r)}`);
    }
    for (const r of seen.slice(start.server)) {
      assert.equal(r.body, false, JSON.stringify(r));
      assert.ok(['GET', 'HEAD'].includes(r.method), JSON.stringify(r));
      assert.ok(fs.existsSync(path.join(WWW, r.path)), JSON.stringify(r));
    }
    // And over the whole visit, the server was only ever asked for files.
    assert.ok(seen.length > 10 && seen.every((r) => ['GET', 'HEAD'].includes(r.method) && !r.body), JSON.stringify(seen.filter((r) => r.method !== 'GET')));
    // And it would have seen one: a sample photo, which the page fetches from its own site.
    await page.locator('.sample[data-sample="camera-gray.png"]').click();
    await cardResult(page, 'camera-gray.png');
    assert.ok(requests.slice(start.browser).some((r) => r.url.endsWith('/samples/camera-gray.png')));
    console.log(`requests while classifying 5 photos: ${during.length} in the browser (${during.map((r) => new URL(r.url).pathname).join(', ') || 'none'}), ${seen.length - start.server} at the server`);
  } finally {
    await page.context().close();
    await server.close();
  }
});
