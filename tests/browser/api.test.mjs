// The JavaScript API (www/bit50.js): every input kind, embed and explain (shapes, and the
// same values as the CPU path and the native command), int8 weights, a lost GPU device,
// dispose, and wrong arguments.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, openPage, nativeClassify, bit50Cli, expectSameTop, PHOTOS, ROOT, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

let server;
let browser;
let page;
// The tiny model with int8 weights, converted by the native command for this run.
const INT8 = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-int8-')), 'tiny-int8');

before(async () => {
  bit50Cli(['convert', path.join(ROOT, 'tests/fixtures/tiny'), '--out', INT8, '--dtype', 'int8']);
  ({ server, browser, page } = await openDemo({ mounts: { '/photos/': PHOTOS, '/int8/': INT8 } }));
  await page.evaluate(async (url) => {
    const api = await import('./bit50.js');
    window.api = api;
    window.gpuModel = await api.load(url, { backend: 'webgpu' });
    window.cpuModel = await api.load(url, { backend: 'cpu' });
    window.catBlob = await (await fetch('/photos/cat.png')).blob();
  }, TINY);
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(path.dirname(INT8), { recursive: true, force: true });
});

test('model.info says which backend, adapter and model', async () => {
  const [gpu, cpu] = await page.evaluate(() => [gpuModel.info, cpuModel.info]);
  assert.equal(gpu.backend, 'webgpu');
  assert.match(gpu.adapter, /\S/);
  // SwiftShader is a fallback adapter: no barrier-heavy tiled kernels there.
  assert.equal(gpu.kernels, 'registers');
  assert.equal(cpu.kernels, null);
  // Chromium has relaxed SIMD: the worker loaded that build (wasm-baseline.test.mjs runs the other).
  assert.equal(cpu.wasm, 'relaxed-simd');
  assert.equal(cpu.backend, 'cpu');
  assert.match(cpu.adapter, /CPU/);
  assert.equal(gpu.name, 'tiny');
  assert.equal(gpu.labels.length, 10);
  assert.equal(gpu.features, 256);
});

test('classify accepts a Blob, File, ImageBitmap, ImageData, img, canvas and video', async () => {
  const native = nativeClassify(path.join(PHOTOS, 'cat.png')).top;
  const results = await page.evaluate(async () => {
    const blob = catBlob;
    const bitmap = await createImageBitmap(blob);
    const canvas = document.createElement('canvas');
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const imageData = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const img = new Image();
    img.src = '/photos/cat.png';
    // A video playing the canvas (redrawn, since a still canvas may send no frames).
    const video = document.createElement('video');
    video.muted = true;
    video.srcObject = canvas.captureStream(30);
    const redraw = setInterval(() => ctx.drawImage(bitmap, 0, 0), 30);
    await video.play();
    for (let i = 0; i < 100 && video.readyState < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const out = {};
    const inputs = { blob, file: new File([blob], 'cat.png', { type: 'image/png' }), bitmap, imageData, img, canvas, video };
    for (const [kind, input] of Object.entries(inputs)) {
      const r = await gpuModel.classify(input, { topK: 5 });
      out[kind] = r;
    }
    // The caller keeps its ImageBitmap and ImageData.
    clearInterval(redraw);
    out.kept = bitmap.width > 0 && imageData.data.length > 0;
    video.srcObject.getTracks().forEach((t) => t.stop());
    return out;
  });
  assert.equal(results.kept, true);
  for (const kind of ['blob', 'file', 'bitmap', 'imageData', 'img', 'canvas']) {
    assert.ok(results[kind].ms > 0, kind);
    expectSameTop(results[kind].top, native, { probTol: 1e-4 });
  }
  // A video frame goes through the video pipeline (YUV), so it is close, not exact.
  assert.equal(results.video.top.length, 5);
  assert.equal(results.video.width, 451);
  assert.ok(Math.abs(results.video.top[0].prob - native[0].prob) < 0.05, JSON.stringify(results.video.top));
});

test('topK picks the number of classes returned', async () => {
  const n = await page.evaluate(async () => [(await gpuModel.classify(catBlob, { topK: 1 })).top.length, (await gpuModel.classify(catBlob, { topK: 10 })).top.length]);
  assert.deepEqual(n, [1, 10]);
});

test('embed returns the pooled features, the same on WebGPU and on the CPU path', async () => {
  const r = await page.evaluate(async () => {
    const g = await gpuModel.embed(catBlob);
    const c = await cpuModel.embed(catBlob);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < g.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(g[i] - c[i]));
      maxAbs = Math.max(maxAbs, Math.abs(c[i]));
    }
    return { isF32: g instanceof Float32Array, len: g.length, cpuLen: c.length, maxDiff, maxAbs };
  });
  assert.equal(r.isF32, true);
  assert.equal(r.len, 256);
  assert.equal(r.cpuLen, 256);
  assert.ok(r.maxAbs > 0);
  assert.ok(r.maxDiff <= 1e-4 * Math.max(1, r.maxAbs), JSON.stringify(r));
});

test('explain returns a class activation map consistent with the logits', async () => {
  const r = await page.evaluate(async () => {
    const coffee = await (await fetch('/photos/coffee.jpg')).blob();
    const out = [];
    for (const blob of [catBlob, coffee]) {
      const { top } = await gpuModel.classify(blob, { topK: 10 });
      const g = await gpuModel.explain(blob, 3);
      const c = await cpuModel.explain(blob, 3);
      let maxDiff = 0;
      for (let i = 0; i < g.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(g.data[i] - c.data[i]));
      const mean = g.data.reduce((a, b) => a + b, 0) / g.data.length;
      const logit = top.find((p) => p.index === 3).logit;
      out.push({ width: g.width, height: g.height, len: g.data.length, label: g.label, crop: g.crop, maxDiff, bias: logit - mean, min: g.min, max: g.max, imageWidth: g.imageWidth });
    }
    return out;
  });
  for (const m of r) {
    assert.equal(m.width, 2, 'tiny model: 64x64 input gives a 2x2 map');
    assert.equal(m.height, 2);
    assert.equal(m.len, 4);
    assert.equal(m.label, 'class 3');
    assert.ok(m.maxDiff < 1e-3, JSON.stringify(m));
    assert.ok(m.max >= m.min);
  }
  // The logit minus the map's mean is the class's bias: the same for every image.
  assert.ok(Math.abs(r[0].bias - r[1].bias) < 1e-3, JSON.stringify(r));
  // cat.png is 451x300: resized to 96x64 then cropped to the centre 64x64 (x from 16).
  assert.deepEqual(r[0].crop, { x: 16 * (451 / 96), y: 0, width: 64 * (451 / 96), height: 300 });
});

test('a lost GPU device is recovered by reloading the model, not the page', async () => {
  const r = await page.evaluate(async () => {
    const events = [];
    gpuModel.addEventListener('devicelost', () => events.push('devicelost'));
    gpuModel.addEventListener('recovered', () => events.push('recovered'));
    const before = await gpuModel.classify(catBlob);
    await gpuModel._loseDevice();
    const after = await gpuModel.classify(catBlob);
    return { events, before: before.top, after: after.top, backend: gpuModel.info.backend };
  });
  assert.deepEqual(r.events, ['devicelost', 'recovered']);
  assert.equal(r.backend, 'webgpu');
  expectSameTop(r.after, r.before, { probTol: 1e-5 });
});

test('wrong arguments and a disposed model reject with a coded error', async () => {
  const codes = await page.evaluate(async () => {
    const code = (p) => p.then(() => 'resolved', (e) => `${e.name}:${e.code}`);
    const out = {
      number: await code(gpuModel.classify(42)),
      text: await code(gpuModel.classify(new Blob(['hello'], { type: 'text/plain' }))),
      badIndex: await code(gpuModel.explain(catBlob, 99)),
      missing: await code(api.load('/models/nowhere/')),
    };
    cpuModel.dispose();
    out.disposed = await code(cpuModel.classify(catBlob));
    return out;
  });
  assert.deepEqual(codes, {
    number: 'Bit50Error:bad-input',
    text: 'Bit50Error:not-image',
    badIndex: 'Bit50Error:bad-input',
    missing: 'Bit50Error:not-found',
    disposed: 'Bit50Error:disposed',
  });
});

test('embed and explain match the native bit50 command on the same photo', async () => {
  // A PNG decodes to the same pixels in the browser and natively, so the outputs agree to float precision.
  const native = nativeClassify(path.join(PHOTOS, 'cat.png'), undefined, ['--embed', '--explain']);
  const r = await page.evaluate(async (index) => {
    const e = await gpuModel.embed(catBlob);
    const h = await gpuModel.explain(catBlob, index);
    return { embedding: Array.from(e), heatmap: Array.from(h.data), width: h.width, height: h.height };
  }, native.heatmap.index);
  const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
  assert.equal(r.embedding.length, native.embedding.length);
  assert.ok(maxDiff(r.embedding, native.embedding) < 1e-4, `embedding differs from native by ${maxDiff(r.embedding, native.embedding)}`);
  assert.deepEqual([r.width, r.height], [native.heatmap.width, native.heatmap.height]);
  assert.ok(maxDiff(r.heatmap, native.heatmap.data) < 1e-4, `heatmap differs from native by ${maxDiff(r.heatmap, native.heatmap.data)}`);
});

test('profile gives the GPU time per kind of layer, and null on the CPU path', async () => {
  const r = await page.evaluate(async (url) => {
    const cpu = await api.load(url, { backend: 'cpu' });
    const out = { gpu: await gpuModel.profile(catBlob), cpu: await cpu.profile(catBlob) };
    cpu.dispose();
    return out;
  }, TINY);
  assert.equal(r.cpu, null);
  assert.ok(Array.isArray(r.gpu), 'SwiftShader has timestamp queries');
  const layers = r.gpu.map((l) => l.layer);
  for (const kind of ['conv 7x7', 'conv 1x1', 'conv 3x3', 'conv 1x1 + residual', 'group norm statistics', 'classifier']) {
    assert.ok(layers.includes(kind), `${kind} in ${layers}`);
  }
  assert.ok(r.gpu.every((l) => Number.isFinite(l.ms) && l.ms >= 0), JSON.stringify(r.gpu));
});

test('int8 weights load in the browser and classify as the native command does', async () => {
  const { info, top } = await page.evaluate(async () => {
    const model = await api.load('/int8/', { backend: 'cpu' });
    const { top } = await model.classify(catBlob);
    const info = model.info;
    model.dispose();
    return { info, top };
  });
  assert.equal(info.dtype, 'int8');
  assert.ok(info.bytes < 200_000, `${info.bytes} bytes`);
  expectSameTop(top, nativeClassify(path.join(PHOTOS, 'cat.png'), INT8, ['--cpu']).top, { probTol: 1e-4 });
});

test('classify([a, b, c]) returns an array in order, each what the photo gets alone; a bad one fails alone', async () => {
  const { batch, alone, gpuBatch } = await page.evaluate(async () => {
    const names = ['cat.png', 'coffee.jpg', 'rocket-exif.jpg', 'astronaut-alpha.png', 'camera-gray.png'];
    const blobs = await Promise.all(names.map(async (n) => new File([await (await fetch(`/photos/${n}`)).blob()], n, { type: n.endsWith('.png') ? 'image/png' : 'image/jpeg' })));
    const text = new File(['not an image'], 'notes.txt', { type: 'text/plain' });
    const inputs = [blobs[0], text, ...blobs.slice(1)];
    const batch = await gpuModel.classify(inputs, { topK: 5 });
    const alone = [];
    for (const b of blobs) alone.push(await gpuModel.classify(b, { topK: 5 }));
    const simplify = (r) => (r.error ? { error: r.error.code, name: r.error.name, message: r.error.message } : { top: r.top });
    return { batch: batch.map(simplify), alone: alone.map(simplify), gpuBatch: gpuModel.info.batch };
  });
  assert.equal(gpuBatch, 4, 'images per GPU submission');
  assert.equal(batch.length, 6);
  assert.deepEqual(batch[1].error, 'not-image');
  assert.equal(batch[1].name, 'Bit50Error');
  assert.match(batch[1].message, /notes\.txt/);
  // Five photos on WebGPU go in submissions of 4 and 1: each gets what it gets alone.
  assert.deepEqual([batch[0], ...batch.slice(2)].map((r) => r.top), alone.map((r) => r.top));
});

test('an f16 model runs on an adapter without shader-f16 (SwiftShader): the f32 kernels, chosen by feature detection', async () => {
  const f16 = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-f16-'));
  bit50Cli(['convert', path.join(ROOT, 'tests/fixtures/tiny'), '--out', path.join(f16, 'tiny-f16'), '--dtype', 'f16']);
  const local = await serve({ '/f16/': path.join(f16, 'tiny-f16') });
  try {
    const p = await openPage(browser, `${local.url}index.html?model=${TINY}`);
    const got = await p.evaluate(async () => {
      const { load } = await import('./bit50.js');
      const adapter = await navigator.gpu.requestAdapter();
      const model = await load('/f16/', { backend: 'webgpu' });
      const canvas = new OffscreenCanvas(64, 64);
      canvas.getContext('2d').fillRect(8, 8, 20, 20);
      const r = await model.classify(await canvas.convertToBlob(), { topK: 3 });
      const info = model.info;
      model.dispose();
      return { hasF16: adapter.features.has('shader-f16'), info, top: r.top };
    });
    assert.equal(got.hasF16, false, 'SwiftShader offers no shader-f16');
    assert.equal(got.info.backend, 'webgpu');
    assert.equal(got.info.dtype, 'f16');
    assert.equal(got.info.precision, 'f32', 'f16 weights, widened: the f32 kernels run');
    assert.equal(got.top.length, 3);
    assert.equal(p.logs.filter((l) => /error/i.test(l)).length, 0, p.logs.join('\n'));
    await p.context().close();
  } finally {
    await local.close();
    fs.rmSync(f16, { recursive: true, force: true });
  }
});
