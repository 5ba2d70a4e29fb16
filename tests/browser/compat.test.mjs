// Where the core WebGPU adapter is a software fallback (SwiftShader) and a compatibility-mode
// adapter is not, the worker switches to compatibility mode: model.info says so, the kernels
// fit its lower limits, and the results equal bit50 classify's. In 'auto' both paths are timed.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { nativeClassify, expectSameTop, PHOTOS, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
let server;
let browser;
let page;

before(async () => {
  ({ server, browser, page } = await openDemo({ mounts: { '/photos/': PHOTOS }, launching: { compatibility: true } }));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('WebGPU runs in compatibility mode, with the same top-5 as bit50 classify', async () => {
  const { info, top } = await page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    const model = await load(url, { backend: 'webgpu' });
    const blob = await (await fetch('/photos/cat.png')).blob();
    const { top } = await model.classify(blob);
    const info = model.info;
    model.dispose();
    return { info, top };
  }, TINY);
  assert.equal(info.backend, 'webgpu');
  assert.equal(info.featureLevel, 'compatibility');
  assert.doesNotMatch(info.adapter, /swiftshader/i);
  assert.equal(info.kernels, 'registers'); // an emulator: timed at load, under 20 GFLOP/s
  expectSameTop(top, nativeClassify(path.join(PHOTOS, 'cat.png')).top, { probTol: 1e-4 });
});

test("'auto' times the compatibility adapter against the CPU path and says which it kept", async () => {
  const info = await page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    const model = await load(url);
    const info = model.info;
    model.dispose();
    return info;
  }, TINY);
  // Here the adapter is lavapipe behind OpenGL ES: about 8 GFLOP/s against the CPU path's 30.
  assert.equal(info.backend, 'cpu', JSON.stringify(info));
  assert.match(info.fallback_reason, /^measured at load: [\d.]+ GFLOP\/s on this GPU adapter, [\d.]+ on the CPU, so the CPU path runs$/);
});
