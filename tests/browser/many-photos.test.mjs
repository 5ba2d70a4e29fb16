// Fifty photos dropped at once, some broken: every good one classified (as `bit50 classify` does
// it), every bad one named with its problem, none lost, none shown twice, in the order dropped.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dropFiles, nativeClassify, expectSameTop, PHOTOS, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 180_000 }, fn);
let server;
let browser;
let page;

before(async () => {
  ({ server, browser, page } = await openDemo());
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('50 photos dropped at once, 7 of them broken: each good one classified, each bad one named, none lost or twice', async () => {
  const photos = fs.readdirSync(PHOTOS).sort();
  const jpeg = fs.readFileSync(path.join(PHOTOS, 'coffee.jpg'));
  const broken = [
    { type: 'text/plain', bytes: Buffer.from('notes, not a photo\n'), ext: 'txt', state: /^Not an image/ },
    { type: 'image/jpeg', bytes: jpeg.subarray(0, jpeg.length >> 1), ext: 'jpg', state: /truncated/ },
    { type: 'image/png', bytes: Buffer.alloc(0), ext: 'png', state: /^Empty file, not an image\.$/ },
    { type: 'image/jpeg', bytes: Buffer.from('<!doctype html><title>404</title>'), ext: 'jpg', state: /not an image/i },
  ];
  const files = [];
  for (let i = 0; i < 50; i++) {
    const n = String(i + 1).padStart(2, '0');
    if (i % 7 === 3) {
      const b = broken[files.filter((f) => f.bad).length % broken.length];
      files.push({ name: `${n}-broken.${b.ext}`, type: b.type, bytes: b.bytes, bad: b });
    } else {
      const source = photos[i % photos.length];
      files.push({ name: `${n}-${source}`, type: source.endsWith('.png') ? 'image/png' : 'image/jpeg', bytes: fs.readFileSync(path.join(PHOTOS, source)), source });
    }
  }
  assert.equal(files.filter((f) => f.bad).length, 7);
  const t0 = Date.now();
  await dropFiles(page, files);
  await page.waitForFunction((n) => {
    const cards = [...document.querySelectorAll('.card')];
    return cards.length >= n && cards.slice(0, n).every((c) => /\b(done|failed)\b/.test(c.className));
  }, files.length, { timeout: 170_000 });
  const seconds = (Date.now() - t0) / 1000;
  const cards = await page.evaluate(() => [...document.querySelectorAll('.card')].map((c) => ({
    name: c.querySelector('.name').textContent,
    done: c.classList.contains('done'),
    state: c.querySelector('.state').textContent,
    top: c.dataset.top ? JSON.parse(c.dataset.top) : null,
  })));
  // One card per photo, in the order dropped, none twice.
  assert.deepEqual(cards.map((c) => c.name), files.map((f) => f.name));
  const native = Object.fromEntries(photos.map((p) => [p, nativeClassify(path.join(PHOTOS, p)).top]));
  for (const [i, f] of files.entries()) {
    const c = cards[i];
    if (f.bad) {
      assert.equal(c.done, false, f.name);
      assert.match(c.state, f.bad.state, f.name);
    } else {
      assert.ok(c.done, `${f.name}: ${c.state}`);
      expectSameTop(c.top, native[f.source], { probTol: f.source.endsWith('.jpg') ? 0.01 : 1e-4 });
    }
  }
  assert.match(await page.locator('#announcer').textContent(), /^43 of 50 photos classified\.$/);
  console.log(`50 photos (7 broken) classified in ${seconds.toFixed(1)} s`);
});

test('the GPU device lost in the middle of a batch: every photo still gets its result, and the next one works', async () => {
  const photos = fs.readdirSync(PHOTOS).sort();
  const payload = Object.fromEntries(photos.map((p) => [p, fs.readFileSync(path.join(PHOTOS, p)).toString('base64')]));
  await page.evaluate(async ({ payload, url }) => {
    const { load } = await import('./bit50.js');
    // One photo per GPU submission, so that the batch is several submissions long.
    window.gpuModel = await load(url, { backend: 'webgpu', batch: 1 });
    window.files = Object.entries(payload).map(([name, b64]) => new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type: name.endsWith('.png') ? 'image/png' : 'image/jpeg' }));
    window.events = [];
    gpuModel.addEventListener('devicelost', () => events.push('devicelost'));
    gpuModel.addEventListener('recovered', () => events.push('recovered'));
  }, { payload, url: TINY });
  assert.equal(await page.evaluate(() => gpuModel.info.backend), 'webgpu');
  // In the models' workers (named 'bit50'; the CPU path's thread helpers, blocked waiting for
  // work, never answer): command encoders counted, and the device destroyed, as a driver reset
  // would, when the one numbered __destroyAt is made (the app has no hook for this).
  const names = await Promise.all(page.workers().map((w) => Promise.race([w.evaluate(() => self.name).catch(() => null), new Promise((r) => setTimeout(() => r(null), 2000))])));
  const workers = page.workers().filter((w, i) => names[i] === 'bit50');
  const inWorkers = (fn, arg) => Promise.all(workers.map((w) => w.evaluate(fn, arg)));
  await inWorkers(() => {
    if (!self.GPUDevice) return;
    Object.assign(self, { __encoders: 0, __destroyAt: 0 });
    const create = GPUDevice.prototype.createCommandEncoder;
    GPUDevice.prototype.createCommandEncoder = function (...args) {
      if (++self.__encoders === self.__destroyAt) queueMicrotask(() => this.destroy());
      return create.apply(this, args);
    };
  });
  const expected = await page.evaluate(async () => (await gpuModel.classify(files)).map((r) => r.top));
  const perBatch = Math.max(...(await inWorkers(() => self.__encoders ?? 0)));
  assert.ok(perBatch >= 5, `${perBatch} command encoders for 5 photos`);
  // Lost as the batch's third photo is encoded: in the middle of it.
  await inWorkers(() => Object.assign(self, { __encoders: 0, __destroyAt: 3 }));
  const got = await page.evaluate(async () => (await gpuModel.classify(files)).map((r) => r.top ?? { error: r.error.code }));
  assert.deepEqual(await page.evaluate(() => events), ['devicelost', 'recovered']);
  assert.equal(got.length, expected.length);
  for (const [i, top] of got.entries()) expectSameTop(top, expected[i], { probTol: 1e-5 });
  const next = await page.evaluate(async () => (await gpuModel.classify(files[0])).top);
  expectSameTop(next, expected[0], { probTol: 1e-5 });
  assert.equal(await page.evaluate(() => gpuModel.info.backend), 'webgpu');
});
