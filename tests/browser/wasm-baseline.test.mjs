// The WebAssembly build without relaxed SIMD (what browsers without it load), run in Node, whose
// V8 has SIMD but not relaxed SIMD unless asked: the worker's probe says so, and the CPU path
// classifies a photo as the native command does. (Chromium loads the relaxed build: api.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nativeClassify, expectSameTop, WWW, TINY } from './helpers.mjs';

test('without relaxed SIMD the probe fails and the SIMD build classifies as bit50 classify', async () => {
  const worker = fs.readFileSync(path.join(WWW, 'bit50-worker.js'), 'utf8');
  const probe = new Function(`return ${worker.match(/const RELAXED_SIMD_PROBE = (new Uint8Array\([\s\S]*?\]\));/)[1]}`)();
  assert.equal(WebAssembly.validate(probe), false, 'this Node has relaxed SIMD: run it without --experimental-wasm-relaxed-simd');

  const { initSync, ModelLoader, plan_engine, finish_engine } = await import(path.join(WWW, 'pkg/bit50.js'));
  initSync({ module: fs.readFileSync(path.join(WWW, 'pkg/bit50_bg.wasm')) });
  const dir = path.join(WWW, TINY);
  const manifest = fs.readFileSync(path.join(dir, 'manifest.json'));
  const loader = await plan_engine(new ModelLoader(manifest, 'manifest.json'), 'cpu', false, false, 1);
  JSON.parse(manifest).shards.forEach((s, i) => loader.add_shard(i, fs.readFileSync(path.join(dir, s.file)), s.file, undefined));
  const engine = finish_engine(loader);

  // A synthetic photo, written as a 24-bit BMP for the native command.
  const [width, height] = [96, 72];
  const rgba = new Uint8Array(width * height * 4).map((_, i) => (i % 4 === 3 ? 255 : (i * 37 + (i >> 7) * 11) % 256));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-bmp-')), 'synthetic.bmp');
  fs.writeFileSync(file, bmp(width, height, rgba));
  const [got] = JSON.parse(await engine.classify([{ width, height, data: rgba, name: 'synthetic.bmp' }], 5));
  expectSameTop(got.top, nativeClassify(file, dir, ['--cpu']).top, { probTol: 1e-4 });
  fs.rmSync(path.dirname(file), { recursive: true });
});

/** RGBA to an uncompressed bottom-up 24-bit BMP. */
function bmp(width, height, rgba) {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + stride * height);
  out.write('BM');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(stride * height, 34);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const src = (y * width + x) * 4;
      const dst = 54 + (height - 1 - y) * stride + x * 3;
      [out[dst], out[dst + 1], out[dst + 2]] = [rgba[src + 2], rgba[src + 1], rgba[src]];
    }
  }
  return out;
}
