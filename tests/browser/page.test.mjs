// The demo page: model load with progress, real drops, parity with `bit50 classify`,
// the Cache Storage, the heatmap toggle, bad inputs, and a screenshot for CI.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitModel, dropFiles, cardResult, messages, nativeClassify, expectSameTop, saveArtifact, PHOTOS, WWW, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

let server;
let browser;
let page;
let badDir;

before(async () => {
  // A copy of the tiny model whose shard has one byte flipped (the manifest is unchanged).
  badDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-bad-'));
  for (const f of fs.readdirSync(path.join(WWW, TINY))) fs.copyFileSync(path.join(WWW, TINY, f), path.join(badDir, f));
  const shard = fs.readdirSync(badDir).find((f) => f.endsWith('.safetensors'));
  const bytes = fs.readFileSync(path.join(badDir, shard));
  bytes[bytes.length - 7] ^= 0x55;
  fs.writeFileSync(path.join(badDir, shard), bytes);
  ({ server, browser, page } = await openDemo({ mounts: { '/bad-model/': badDir }, wait: false }));
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(badDir, { recursive: true, force: true });
});

test('the page loads the model and shows its progress and adapter', async () => {
  const info = await waitModel(page);
  assert.ok(info, `model failed to load: ${await messages(page)}\n${page.logs.join('\n')}`);
  // SwiftShader is a software adapter: the page times both paths at load and keeps the faster,
  // which here is the WebAssembly CPU path by a wide margin.
  assert.equal(info.backend, 'cpu', JSON.stringify(info));
  assert.match(info.fallback_reason, /^measured at load: [\d.]+ GFLOP\/s on this GPU adapter \(a software one\), [\d.]+ on the CPU, so the CPU path runs$/);
  assert.equal(info.classes, 10);
  assert.match(await page.locator('#loaded').textContent(), /^10 classes, 64×64 input, in [\d.]+ s$/);
  assert.match(await page.locator('#model-status').textContent(), /It runs on this device’s processor\.$/);
  assert.match(await page.locator('#adapter').textContent(), /\S/);
  assert.match(await page.locator('#weights-source').textContent(), /downloaded and checked/);
  // The model's shards were fetched once, by the worker.
  assert.equal(server.requests.filter((r) => r.endsWith('.safetensors')).length, 1);
});

test('load() reports its progress one phase at a time: preparing, measuring, then the download in bytes up to the total', async () => {
  const events = await page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    const seen = [];
    const m = await load(url, { onProgress: (p) => seen.push({ phase: p.phase, loaded: p.loaded, total: p.total, fromCache: p.fromCache }) });
    m.dispose();
    return seen;
  }, TINY);
  const phases = events.map((e) => e.phase).filter((p, i, all) => p !== all[i - 1]);
  // SwiftShader: the GPU is opened, timed against the CPU, and the CPU path chosen.
  assert.deepEqual(phases, ['preparing', 'measuring', 'downloading'], JSON.stringify(events));
  for (const e of events.filter((e) => e.phase === 'measuring')) assert.ok(e.loaded < e.total, JSON.stringify(e));
  const bytes = events.filter((e) => e.phase === 'downloading');
  assert.ok(bytes.length >= 2, JSON.stringify(events));
  const total = bytes[0].total;
  assert.ok(total > 500_000);
  assert.equal(bytes.at(-1).loaded, total);
  for (let i = 1; i < bytes.length; i++) assert.ok(bytes[i].loaded >= bytes[i - 1].loaded);
});

test('on WebGPU, preparing counts the network\'s programs as they compile, before the download reports', async () => {
  const events = await page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    const seen = [];
    const m = await load(url, { backend: 'webgpu', onProgress: (p) => seen.push({ phase: p.phase, loaded: p.loaded, total: p.total }) });
    m.dispose();
    return seen;
  }, TINY);
  const compiling = events.filter((e) => e.phase === 'preparing' && e.total > 0);
  assert.ok(compiling.length >= 2, JSON.stringify(events));
  assert.equal(compiling[0].loaded, 0);
  assert.equal(compiling.at(-1).loaded, compiling.at(-1).total);
  const lastPreparing = events.findLastIndex((e) => e.phase !== 'downloading');
  const firstDownload = events.findIndex((e) => e.phase === 'downloading');
  assert.ok(firstDownload > lastPreparing, JSON.stringify(events));
});

test('a dropped photo shows the same top-5 as bit50 classify', async () => {
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  const r = await cardResult(page, 'cat.png');
  assert.ok(r.done, r.state);
  expectSameTop(r.top, nativeClassify(path.join(PHOTOS, 'cat.png')).top);
});

test('several photos dropped at once (JPEG, EXIF rotation, alpha, grey) match bit50 classify', async () => {
  const names = ['coffee.jpg', 'rocket-exif.jpg', 'astronaut-alpha.png', 'camera-gray.png'];
  await dropFiles(page, names.map((n) => path.join(PHOTOS, n)));
  for (const n of names) {
    const r = await cardResult(page, n);
    assert.ok(r.done, `${n}: ${r.state}`);
    // PNGs decode to the same pixels as natively; the browser's JPEG decoder differs by a level or two.
    expectSameTop(r.top, nativeClassify(path.join(PHOTOS, n)).top, { probTol: n.endsWith('.jpg') ? 0.01 : 1e-4 });
  }
  const announced = await page.locator('#announcer').textContent();
  assert.match(announced, /4 of 4 photos classified/);
  // The cards of one drop stand in drop order.
  const order = await page.evaluate(() => [...document.querySelectorAll('.card .name')].slice(0, 4).map((n) => n.textContent));
  assert.deepEqual(order, names);
});

test('a photo pasted from the clipboard is classified', async () => {
  const b64 = fs.readFileSync(path.join(PHOTOS, 'cat.png')).toString('base64');
  await page.evaluate((b64) => {
    const dt = new DataTransfer();
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'image.png', { type: 'image/png' }));
    document.body.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, b64);
  const r = await cardResult(page, 'pasted-1.png');
  assert.ok(r.done, r.state);
  expectSameTop(r.top, nativeClassify(path.join(PHOTOS, 'cat.png')).top, { probTol: 1e-4 });
});

test('the heatmap toggle overlays where the network looks', async () => {
  const card = page.locator('.card', { has: page.locator('.name', { hasText: 'cat.png' }) }).first();
  const toggle = card.locator('.toggle-heat');
  await toggle.click();
  await card.locator('.heat:not([hidden])').waitFor({ timeout: 60_000 });
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
  const painted = await card.locator('.heat').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n / (c.width * c.height);
  });
  assert.ok(painted > 0.5, `heatmap covers ${painted} of the photo`);
});

test('a screenshot of the page with results (CI artifact)', async () => {
  const file = saveArtifact('page.png', await page.screenshot({ fullPage: true }));
  assert.ok(fs.statSync(file).size > 10_000);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  saveArtifact('page-phone.png', await page.screenshot({ fullPage: false }));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'the page scrolls sideways on a phone-sized screen');
  await page.setViewportSize({ width: 1200, height: 900 });
});

test('bad inputs each show their error once, on their card, and the next good photo still works', async () => {
  const before = (await messages(page)).length;
  const jpeg = fs.readFileSync(path.join(PHOTOS, 'coffee.jpg'));
  await dropFiles(page, [
    { name: 'notes.txt', type: 'text/plain', bytes: Buffer.from('this is not an image\n') },
    { name: 'cut.jpg', type: 'image/jpeg', bytes: jpeg.subarray(0, Math.floor(jpeg.length / 2)) },
    { name: 'mystery.png', type: 'image/png', bytes: Buffer.from('not a png at all, just text') },
    { name: 'huge.png', type: 'image/png', size: 51 * 1024 * 1024 },
  ]);
  const txt = await cardResult(page, 'notes.txt');
  assert.equal(txt.done, false);
  assert.match(txt.state, /^Not an image/);
  const cut = await cardResult(page, 'cut.jpg');
  assert.equal(cut.done, false);
  assert.match(cut.state, /truncated/);
  const junk = await cardResult(page, 'mystery.png');
  assert.match(junk.state, /truncated|not an image/i);
  const huge = await cardResult(page, 'huge.png');
  assert.match(huge.state, /over the 50 MB limit/i);
  for (const r of [txt, cut, junk, huge]) assert.doesNotMatch(r.state, /notes\.txt|cut\.jpg|mystery\.png|huge\.png/, 'the card names the file already');
  assert.equal((await messages(page)).length, before, 'no banner for a photo: its card says it');
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  await page.waitForFunction(() => document.querySelectorAll('.card.done .name').length && document.querySelector('.card .name').textContent === 'cat.png' && document.querySelector('.card').classList.contains('done'), null, { timeout: 60_000 });
});

test('a 404 model URL and a shard with a wrong checksum show messages; a good model then works', async () => {
  await page.goto(`${server.url}index.html?model=models/nowhere/`);
  await waitModel(page);
  assert.equal(await page.evaluate(() => document.body.dataset.model), 'error');
  assert.match((await messages(page)).join('\n'), /Weights not found.*404/);

  await page.locator('.model-picker summary').click();
  await page.locator('#model-url').fill('bad-model/');
  await page.locator('#model-form button').click();
  await page.waitForFunction(() => document.body.dataset.model === 'error' && [...document.querySelectorAll('.message')].some((m) => /Checksum/.test(m.textContent)), null, { timeout: 60_000 });
  assert.match((await messages(page)).join('\n'), /Checksum mismatch.*sha256/);

  // A photo dropped with no model loaded says so, then loading the good model works.
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  assert.match((await cardResult(page, 'cat.png')).state, /No model is loaded/);
  await page.locator('#model-url').fill(TINY);
  await page.locator('#model-form button').click();
  const info = await waitModel(page);
  assert.equal(info?.name, 'tiny');
  await page.locator('#clear').click();
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  const r = await cardResult(page, 'cat.png');
  assert.ok(r.done, r.state);
});

test('the second load of the same model makes no network request for shards', async () => {
  const shardRequests = () => server.requests.filter((r) => r.endsWith('.safetensors') && r.includes('/models/tiny/')).length;
  const before = shardRequests();
  await page.goto(`${server.url}index.html?model=${TINY}`);
  const info = await waitModel(page);
  assert.equal(info.fromCache, true);
  assert.equal(shardRequests(), before, 'a shard was downloaded again');
  assert.match(await page.locator('#weights-source').textContent(), /from this browser's cache/);
});
