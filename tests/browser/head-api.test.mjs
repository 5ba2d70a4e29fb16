// Your own classes through the JavaScript API (www/bit50.js): fitHead on photos and on
// features, classify with a head, toJSON and loadHead, the bad inputs; the browser's
// WebAssembly fit against scikit-learn on the committed embeddings (tests/fixtures/head, as
// tests/head.rs checks natively); and the time to train 200 and 10,000 examples.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bit50Cli, PHOTOS, ROOT, TINY, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
const HEAD_FIXTURES = path.join(ROOT, 'tests/fixtures/head');

let server;
let browser;
let page;
let nativeHeadDir;

before(async () => {
  // A head trained natively by `bit50 fit`, for the browser to read.
  nativeHeadDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-head-'));
  bit50Cli(['fit', '--model', path.join(ROOT, 'www', TINY), '--class', `cat=${path.join(PHOTOS, 'cat.png')}`, '--class', `coffee=${path.join(PHOTOS, 'coffee.jpg')}`, '--out', path.join(nativeHeadDir, 'native.json')]);
  ({ server, browser, page } = await openDemo({ mounts: { '/photos/': PHOTOS, '/head-fixtures/': HEAD_FIXTURES, '/native-head/': nativeHeadDir } }));
  await page.evaluate(async (url) => {
    window.api = await import('./bit50.js');
    window.model = await api.load(url, { backend: 'cpu' });
    window.photo = async (name) => (await fetch(`/photos/${name}`)).blob();
    // Noisy one-colour images, as PNG blobs.
    window.colour = async ([r, g, b], seed) => {
      const canvas = new OffscreenCanvas(80, 72);
      const ctx = canvas.getContext('2d');
      const img = ctx.createImageData(80, 72);
      let s = seed * 7919 + 1;
      const noise = () => ((s = (s * 1103515245 + 12345) % 2147483648) % 101) - 50;
      for (let i = 0; i < img.data.length; i += 4) img.data.set([r + noise(), g + noise(), b + noise(), 255], i);
      ctx.putImageData(img, 0, 0);
      return canvas.convertToBlob({ type: 'image/png' });
    };
    window.code = (p) => p.then(() => 'resolved', (e) => `${e.code}: ${e.message}`);
  }, TINY);
});

after(async () => {
  await browser?.close();
  await server?.close();
  fs.rmSync(nativeHeadDir, { recursive: true, force: true });
});

test('fitHead learns two colours from three photos each; classify shows them beside the top-5', async () => {
  const r = await page.evaluate(async () => {
    const red = await Promise.all([1, 2, 3, 4].map((i) => colour([200, 40, 40], i)));
    const blue = await Promise.all([5, 6, 7, 8].map((i) => colour([40, 60, 200], i)));
    const progress = [];
    const head = await model.fitHead({ red: red.slice(0, 3), blue: blue.slice(0, 3) }, { onProgress: (p) => progress.push(p.done) });
    const held = await model.classify([red[3], blue[3]], { head });
    const plain = await model.classify(red[3]);
    window.colourHead = head;
    return { classes: head.classes, training: head.training, model: head.model, ms: head.ms, progress, held, plainKeys: Object.keys(plain), info: model.info };
  });
  assert.deepEqual(r.classes, ['red', 'blue']);
  assert.deepEqual(r.progress, [1, 2, 3, 4, 5, 6]);
  assert.equal(r.training.train_correct, 6);
  assert.deepEqual(r.training.loo, { correct: 6, counted: 6 });
  assert.deepEqual(r.model, { name: 'tiny', sha256: r.info.sha256 });
  assert.match(r.info.sha256, /^[0-9a-f]{64}$/);
  assert.ok(r.ms >= 0 && r.ms < 1000, `${r.ms} ms`);
  for (const [result, want] of r.held.map((h, i) => [h, ['red', 'blue'][i]])) {
    assert.equal(result.top.length, 5);
    assert.equal(result.custom.length, 2);
    assert.equal(result.custom[0].label, want, JSON.stringify(result.custom));
    assert.ok(result.custom[0].prob > 0.9 && Math.abs(result.custom[0].prob + result.custom[1].prob - 1) < 1e-5);
  }
  assert.deepEqual(r.plainKeys, ['top', 'ms', 'width', 'height'], 'no custom without a head');
});

test('toJSON writes the head file; loadHead reads it back, and the native bit50 fit reads it too', async () => {
  const r = await page.evaluate(async () => {
    const file = JSON.stringify(colourHead);
    const again = await model.loadHead(file);
    const fromBlob = await model.loadHead(new File([file], 'colours.json'));
    const probe = await colour([200, 40, 40], 9);
    const [a, b] = [await model.classify(probe, { head: colourHead }), await model.classify(probe, { head: again })];
    return { file, same: JSON.stringify(a.custom) === JSON.stringify(b.custom), classes: fromBlob.classes };
  });
  const head = JSON.parse(r.file);
  assert.equal(head.format, 'bit50-head');
  assert.equal(head.features, 256);
  assert.equal(head.weights.length, 2);
  assert.equal(head.weights[0].length, 256);
  assert.ok(r.same);
  assert.deepEqual(r.classes, ['red', 'blue']);
  // The browser's head file works natively, the same format.
  const file = path.join(nativeHeadDir, 'from-browser.json');
  fs.writeFileSync(file, r.file);
  const out = JSON.parse(bit50Cli(['classify', '--model', path.join(ROOT, 'www', TINY), '--head', file, '--json', path.join(PHOTOS, 'cat.png')]).trim());
  assert.equal(out.custom.length, 2);
  // And a head trained natively works in the browser: the same custom probabilities.
  const native = fs.readFileSync(path.join(nativeHeadDir, 'native.json'), 'utf8');
  const want = JSON.parse(bit50Cli(['classify', '--model', path.join(ROOT, 'www', TINY), '--head', path.join(nativeHeadDir, 'native.json'), '--json', path.join(PHOTOS, 'coffee.jpg')]).trim()).custom;
  const got = await page.evaluate(async (text) => (await model.classify(await photo('coffee.jpg'), { head: await model.loadHead(text) })).custom, native);
  assert.deepEqual(got.map((c) => c.label), want.map((c) => c.label));
  // The browser decodes JPEGs a level or two differently (docs/web.md).
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i].prob - want[i].prob) < 0.01, `${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
});

test('features from WebGPU or from the CPU path make the same head', async () => {
  const r = await page.evaluate(async (url) => {
    const gpu = await api.load(url, { backend: 'webgpu' });
    const red = await Promise.all([11, 12, 13].map((i) => colour([200, 40, 40], i)));
    const blue = await Promise.all([14, 15, 16].map((i) => colour([40, 60, 200], i)));
    const examples = { red, blue };
    const [onGpu, onCpu] = [await gpu.fitHead(examples, { flips: true }), await model.fitHead(examples, { flips: true })];
    const probe = await colour([180, 60, 50], 17);
    const out = { backend: gpu.info.backend, gpu: (await gpu.classify(probe, { head: onGpu })).custom, cpu: (await model.classify(probe, { head: onCpu })).custom };
    gpu.dispose();
    return out;
  }, TINY);
  assert.equal(r.backend, 'webgpu');
  assert.deepEqual(r.gpu.map((c) => c.label), r.cpu.map((c) => c.label));
  for (let i = 0; i < 2; i++) assert.ok(Math.abs(r.gpu[i].prob - r.cpu[i].prob) < 1e-3, JSON.stringify(r));
});

test('one photo per class: each photo mirrored is recognised, from features and with flips', async () => {
  const r = await page.evaluate(async () => {
    const names = ['cat.png', 'coffee.jpg', 'rocket-exif.jpg', 'astronaut-alpha.png', 'camera-gray.png'];
    const blobs = await Promise.all(names.map(photo));
    // Examples given as features (embed()), as the page stores them.
    const features = await Promise.all(blobs.map((b) => model.embed(b)));
    const head = await model.fitHead(Object.fromEntries(names.map((n, i) => [n, [features[i]]])));
    const mirrored = await Promise.all(blobs.map((b) => model.embed(b, { mirror: true })));
    // The mirror image's features, classified through a second head trained on images with flips.
    const flipped = await model.fitHead(Object.fromEntries(names.map((n, i) => [n, [blobs[i]]])), { flips: true });
    const mirrorCanvas = async (blob) => {
      const bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext('2d');
      ctx.scale(-1, 1);
      ctx.drawImage(bitmap, -bitmap.width, 0);
      return canvas.convertToBlob({ type: 'image/png' });
    };
    const mirroredPhotos = await Promise.all(blobs.map(mirrorCanvas));
    const viaFeatures = (await model.classify(mirroredPhotos, { head })).map((x) => x.custom[0].label);
    const viaFlips = (await model.classify(mirroredPhotos, { head: flipped })).map((x) => x.custom[0].label);
    return { names, viaFeatures, viaFlips, views: flipped.training.flips, l2: flipped.training.l2, featureLength: mirrored[0].length };
  });
  assert.deepEqual(r.viaFeatures, r.names);
  assert.deepEqual(r.viaFlips, r.names);
  assert.equal(r.views, true);
  assert.equal(r.l2, 1 / 10, 'the default l2 is 1/n over the 10 views');
  assert.equal(r.featureLength, 256);
});

test('bad examples and bad head files reject with a clear message, and the head in use still works', async () => {
  const r = await page.evaluate(async () => {
    const red = await colour([200, 40, 40], 1);
    const blue = await colour([40, 60, 200], 2);
    const text = new File(['not a photo'], 'notes.txt', { type: 'text/plain' });
    const good = JSON.stringify(colourHead);
    const other = JSON.parse(good);
    other.model = { name: 'bit-50', sha256: 'f'.repeat(64) };
    const out = {
      oneClass: await code(model.fitHead({ red: [red] })),
      noExamples: await code(model.fitHead({ red: [red], blue: [] })),
      emptyLabel: await code(model.fitHead({ red: [red], '': [blue] })),
      duplicate: await code(model.fitHead(new Map([['red', [red]], ['Red', [blue]]]))),
      notImage: await code(model.fitHead({ red: [red], blue: [blue, text] })),
      wrongFeatures: await code(model.fitHead({ red: [new Float32Array(255)], blue: [blue] })),
      badL2: await code(model.fitHead({ red: [red], blue: [blue] }, { l2: 0 })),
      truncated: await code(model.loadHead(good.slice(0, good.length / 2))),
      corrupt: await code(model.loadHead('{"format": "bit50-head", "version": 1, "weights": "x"}')),
      notJson: await code(model.loadHead(new File(['PK\x03\x04'], 'head.zip'))),
      wrongSize: await code(model.loadHead(good.replace('"features":256', '"features":255'))),
      otherModel: await code(model.loadHead(other)),
      notAHead: await code(model.classify(red, { head: JSON.parse(good) })),
    };
    out.stillWorks = (await model.classify(red, { head: colourHead })).custom[0].label;
    return out;
  });
  assert.equal(r.oneClass, 'bad-input: a head needs at least two classes to tell apart (got 1: "red")');
  assert.equal(r.noExamples, 'bad-input: the class "blue" has no examples: add at least one photo to it');
  assert.equal(r.emptyLabel, 'bad-input: class 2 has an empty label');
  assert.equal(r.duplicate, 'bad-input: the label "Red" is given twice (as "red"): each class needs its own label');
  assert.equal(r.notImage, 'not-image: blue: notes.txt: not an image (text/plain)');
  assert.equal(r.wrongFeatures, 'bad-input: example 1 of "red": 255 features; this model gives 256');
  assert.match(r.badL2, /^bad-input: l2 0: expected a number from 1e-8 to 1e4$/);
  assert.match(r.truncated, /^bad-head: the head file: the head file is truncated: it ends after \d+ bytes, inside its JSON$/);
  assert.match(r.corrupt, /^bad-head: the head file: a damaged head file \(/);
  assert.match(r.notJson, /^bad-head: head\.zip: not a bit50 head file: not valid JSON/);
  assert.equal(r.wrongSize, 'bad-head: the head file: the weights of "red" have 256 values; the head takes 255 features');
  assert.match(r.otherModel, /^other-model: the head file: this head was trained on another model, "bit-50" \(sha256 ffffffffffff…\), not on "tiny" \(sha256 [0-9a-f]{12}…\); train it again on this model$/);
  assert.equal(r.notAHead, 'bad-input: options.head must be a Head, from model.fitHead() or model.loadHead()');
  assert.equal(r.stillWorks, 'red');
});

/** The page's own wasm module (the worker's code), with the .npy fixtures. (`fn` is evaluated as
 * text by DevTools, not by `new Function` in the page, which the page's CSP forbids.) */
async function withFixtures(fn, arg) {
  await page.evaluate(async () => {
    if (window.__fixtures) return;
    const wasm = await import('./pkg/bit50.js');
    await wasm.default();
    const npy = async (name) => {
      const buf = await (await fetch(`/head-fixtures/${name}`)).arrayBuffer();
      const view = new DataView(buf);
      const headerLen = view.getUint16(8, true);
      const header = new TextDecoder().decode(new Uint8Array(buf, 10, headerLen));
      const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
      const data = header.includes("'<f8'") ? Float64Array.from(new Float64Array(buf.slice(10 + headerLen))) : new Float32Array(buf.slice(10 + headerLen));
      return { shape, data };
    };
    const expected = await (await fetch('/head-fixtures/expected.json')).json();
    window.__fixtures = { wasm, npy, expected };
  });
  return page.evaluate(`(${fn.toString()})(__fixtures.wasm, __fixtures.npy, __fixtures.expected, ${JSON.stringify(arg ?? null)})`);
}

test("the browser's fit matches scikit-learn on the committed embeddings (as natively)", async () => {
  const r = await withFixtures(async (wasm, npy, expected) => {
    const out = {};
    for (const [name, c] of Object.entries(expected.cases)) {
      const train = await npy(c.train);
      const held = await npy(c.heldout);
      const d = train.shape[1];
      const n = c.labels.length;
      const k = c.n_classes;
      const head = wasm.train_head(JSON.stringify(['zero', 'one', 'two'].slice(0, k)), d, train.data, Uint32Array.from(c.labels), Uint32Array.from({ length: n }, (_, i) => i), JSON.stringify({ l2: c.l2_equivalent }), 'fixture', '0'.repeat(64));
      // Through the head file, as it would be saved and shared.
      const file = head.to_json();
      let worst = 0;
      let same = true;
      for (const [x, probs, predicted] of [[train, c.train_proba, c.train_predicted], [held, c.heldout_proba, c.heldout_predicted]]) {
        for (let i = 0; i < probs.length; i++) {
          const custom = JSON.parse(head.classify_features(x.data.subarray(i * d, (i + 1) * d)));
          const p = [0, 1, 2].slice(0, k).map((j) => custom.find((q) => q.index === j).prob);
          worst = Math.max(worst, ...p.map((v, k) => Math.abs(v - probs[i][k])));
          same &&= custom[0].index === predicted[i];
        }
      }
      out[name] = { worst, same, iterations: JSON.parse(head.summary()).training.iterations, bytes: file.length };
    }
    return out;
  });
  for (const [name, c] of Object.entries(r)) {
    console.log(`${name}: browser fit vs scikit-learn, max |p - sklearn| ${c.worst.toExponential(2)}, ${c.iterations} iterations, same classes ${c.same}`);
    assert.ok(c.same, name);
    assert.ok(c.worst < 1e-3, `${name}: ${c.worst}`);
  }
});

test('training time in the browser: 200 examples of 2,048 features, and 10,000', async () => {
  const r = await withFixtures(async (wasm) => {
    // Like tests/head.rs: non-negative points around a shared profile, each class raised on its own features.
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const make = (k, n, d) => {
      const shared = Float32Array.from({ length: d }, () => 0.6 * rand());
      const offsets = Array.from({ length: k }, () => Float32Array.from({ length: d }, () => (rand() < 0.125 ? 0.5 * rand() : 0)));
      const rows = new Float32Array(n * d);
      for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) rows[i * d + j] = Math.max(0, shared[j] + offsets[i % k][j] + 0.5 * (rand() - 0.5));
      return { rows, klass: Uint32Array.from({ length: n }, (_, i) => i % k), example: Uint32Array.from({ length: n }, (_, i) => i) };
    };
    // views: 2 makes every example two views (the photo and its mirror image, with flips).
    const time = (k, n, d, options = {}, views = 1) => {
      const { rows, klass, example } = make(k, n, d);
      if (views === 2) klass.forEach((_, i) => ((klass[i] = Math.floor(i / 2) % k), (example[i] = Math.floor(i / 2))));
      const names = JSON.stringify(Array.from({ length: k }, (_, c) => `class ${c}`));
      const t0 = performance.now();
      const head = wasm.train_head(names, d, rows, klass, example, JSON.stringify({ l2: null, ...options }), 'synthetic', '0'.repeat(64));
      const ms = performance.now() - t0;
      const t = JSON.parse(head.summary()).training;
      head.free();
      return { ms, iterations: t.iterations, correct: t.train_correct };
    };
    const out = { two: time(2, 200, 2048), ten: time(10, 200, 2048), flips: time(10, 400, 2048, { flips: true }, 2), looTen: time(10, 200, 2048, { loo: true }), tenThousand: time(10, 10000, 2048) };
    try {
      make(2, 10001, 8);
      const { rows, klass, example } = make(2, 10001, 8);
      wasm.train_head('["a","b"]', 8, rows, klass, example, '{"l2": null}', 'x', '0'.repeat(64));
      out.over = 'resolved';
    } catch (e) {
      out.over = `${e.code}: ${e.message}`;
    }
    return out;
  });
  console.log(
    `browser (wasm): 200 examples of 2,048 features train in ${r.two.ms.toFixed(0)} ms (2 classes), ${r.ten.ms.toFixed(0)} ms (10 classes), ` +
      `${r.flips.ms.toFixed(0)} ms (10 classes with flips: 400 views); ${r.looTen.ms.toFixed(0)} ms with the leave-one-out estimate; ` +
      `10,000 in ${(r.tenThousand.ms / 1000).toFixed(2)} s (10 classes)`,
  );
  assert.deepEqual([r.two.correct, r.ten.correct, r.flips.correct], [200, 200, 200]);
  assert.ok(r.two.ms < 1000 && r.ten.ms < 1000 && r.flips.ms < 1000, JSON.stringify(r));
  assert.ok(r.tenThousand.ms < 30_000, JSON.stringify(r));
  assert.match(r.over, /^bad-input: 10001 examples: a head trains on at most 10000 \(or 5000 with flips\)/);
});
