// Without --enable-unsafe-webgpu Chromium offers no adapter: the page says WebGPU is
// missing and classifies through the CPU path (WebAssembly), with the same top-5.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { waitModel, dropFiles, cardResult, messages, nativeClassify, expectSameTop, PHOTOS, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);
let server;
let browser;
let page;

before(async () => {
  ({ server, browser, page } = await openDemo({ launching: { webgpu: false }, wait: false }));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the page says WebGPU is missing and runs on the CPU', async () => {
  const info = await waitModel(page);
  assert.ok(info, (await messages(page)).join('\n'));
  assert.equal(info.backend, 'cpu');
  assert.match(info.fallback_reason, /WebGPU/);
  assert.deepEqual(await messages(page), [], 'not a problem to act on: the model panel says it');
  assert.match(await page.locator('#adapter').textContent(), /CPU/);
  assert.match(await page.locator('#model-status').textContent(), /It runs on this device’s processor \(no WebGPU here: slower\)\.$/);
  assert.match(await page.locator('#path').textContent(), /WebGPU/);
});

test('a dropped photo shows the same top-5 as bit50 classify', async () => {
  for (const name of ['cat.png', 'astronaut-alpha.png']) {
    await dropFiles(page, [path.join(PHOTOS, name)]);
    const r = await cardResult(page, name);
    assert.ok(r.done, r.state);
    expectSameTop(r.top, nativeClassify(path.join(PHOTOS, name)).top, { probTol: 1e-4 });
  }
  assert.match(await page.locator('.card .meta').first().textContent(), /processor/);
});

test('asking for WebGPU explicitly fails with a clear error', async () => {
  const code = await page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    return load(url, { backend: 'webgpu' }).then(() => 'loaded', (e) => `${e.code}: ${e.message}`);
  }, TINY);
  assert.match(code, /^no-webgpu: /);
});
