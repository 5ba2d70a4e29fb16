// Photos too large to decode are refused from their headers, before any decode (the worker's and
// the page's thumbnail alike): a real 20,000 x 20,000 PNG, a PNG decompression bomb, and JPEG, GIF,
// WebP and BMP headers that claim too many pixels. The browser's memory stays bounded (the
// resident memory of every Chromium process, sampled while they are refused), and the next photo
// works. The header reader agrees with the browser's decoder on every format it reads.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { dropFiles, cardResult, nativeClassify, expectSameTop, PHOTOS, ROOT, openDemo } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
const IMAGES = path.join(ROOT, 'tests/fixtures/images/src');
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

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A PNG: `rows` rows of zeros (all of them when rows is the height) at the given bit depth and
 * colour type (0 grey, 6 RGBA); complete, with its IEND. */
function png(width, height, { depth = 8, colour = 6, rows = height } = {}) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([depth, colour, 0, 0, 0], 8);
  const channels = { 0: 1, 6: 4 }[colour];
  const raw = Buffer.alloc(rows * (1 + Math.ceil((width * channels * depth) / 8)));
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

/** A copy of a fixture with the dimensions in its header replaced. */
function forged(file, width, height) {
  const b = Buffer.from(fs.readFileSync(path.join(IMAGES, file)));
  const ext = path.extname(file);
  if (ext === '.jpg') {
    let at = 2;
    while (!(b[at + 1] >= 0xc0 && b[at + 1] <= 0xc3)) at += 2 + b.readUInt16BE(at + 2);
    b.writeUInt16BE(height, at + 5);
    b.writeUInt16BE(width, at + 7);
  } else if (ext === '.gif') {
    b.writeUInt16LE(width, 6);
    b.writeUInt16LE(height, 8);
  } else if (ext === '.bmp') {
    b.writeInt32LE(width, 18);
    b.writeInt32LE(height, 22);
  } else if (b.toString('latin1', 12, 16) === 'VP8 ') {
    b.writeUInt16LE(width, 26);
    b.writeUInt16LE(height, 28);
  } else if (b.toString('latin1', 12, 16) === 'VP8L') {
    b.writeUInt32LE(((width - 1) | ((height - 1) << 14) | (b.readUInt32LE(21) & 0xf0000000)) >>> 0, 21);
  }
  return b;
}

/** The resident memory (kB) of every process this test started (Chromium's browser, renderers,
 * GPU and utility processes), from /proc. */
function residentKb() {
  const parent = new Map();
  const pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  for (const p of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      parent.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const ours = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = parent.get(p), hops++) if (p === process.pid) return true;
    return false;
  };
  let kb = 0;
  for (const pid of parent.keys()) {
    if (pid === process.pid || !ours(pid)) continue;
    try {
      kb += Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] || 0);
    } catch {}
  }
  return kb;
}

test('the header reader gives the size the browser decodes, for PNG, JPEG (EXIF, CMYK), GIF, WebP (VP8, VP8L, VP8X) and BMP', async () => {
  const files = ['1000x3.png', 'palette.png', 'png16-rgb.png', 'exif-6.jpg', 'cmyk.jpg', 'grey.jpg', 'anim.gif', 'lossy.webp', 'lossless.webp', 'rgb.bmp'];
  const payload = Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(IMAGES, f)).toString('base64')]));
  const sizes = await page.evaluate(async (payload) => {
    const { headerSize } = await import('./lib/image-header.js');
    const out = {};
    const check = async (name, blob) => {
      const header = await headerSize(blob);
      // Either way round: the header gives the stored size, before any EXIF rotation.
      const bitmap = await createImageBitmap(blob);
      const pair = (w, h) => [w, h].sort((a, b) => a - b).join('x');
      out[name] = { header: header && `${pair(header.width, header.height)} ${header.format}`, decoded: pair(bitmap.width, bitmap.height) };
    };
    for (const [name, b64] of Object.entries(payload)) await check(name, new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
    // Lossy WebP with alpha, as this browser encodes it: the extended (VP8X) layout.
    const canvas = new OffscreenCanvas(37, 21);
    canvas.getContext('2d').fillRect(0, 0, 10, 10);
    const webp = await canvas.convertToBlob({ type: 'image/webp' });
    await check('alpha.webp', webp);
    out['alpha.webp'].chunk = new TextDecoder().decode(new Uint8Array(await webp.slice(12, 16).arrayBuffer()));
    return out;
  }, payload);
  assert.equal(sizes['alpha.webp'].chunk, 'VP8X');
  for (const [name, s] of Object.entries(sizes)) {
    assert.ok(s.header, `${name}: no size from its header`);
    assert.equal(s.header.split(' ')[0], s.decoded, name);
  }
});

test('a 20000x20000 PNG, a PNG bomb and forged JPEG, GIF, WebP and BMP headers are refused before decoding; memory stays bounded; the next photo works', async () => {
  const big = png(20000, 20000, { depth: 1, colour: 0 }); // a real, complete image: 1.6 GB as RGBA
  const bomb = png(100000, 100000, { rows: 16 }); // 40 GB of RGBA promised by a few kB
  assert.ok(big.length < 200_000 && bomb.length < 20_000, `${big.length} ${bomb.length}`);
  const files = [
    { name: 'big.png', type: 'image/png', bytes: big, format: 'PNG', dims: '20000x20000' },
    { name: 'bomb.png', type: 'image/png', bytes: bomb, format: 'PNG', dims: '100000x100000' },
    { name: 'forged.jpg', type: 'image/jpeg', bytes: forged('jpeg-ok.jpg', 30000, 30000), format: 'JPEG', dims: '30000x30000' },
    { name: 'forged.gif', type: 'image/gif', bytes: forged('anim.gif', 65535, 65535), format: 'GIF', dims: '65535x65535' },
    { name: 'forged-lossy.webp', type: 'image/webp', bytes: forged('lossy.webp', 16383, 16383), format: 'WebP', dims: '16383x16383' },
    { name: 'forged-lossless.webp', type: 'image/webp', bytes: forged('lossless.webp', 16384, 16384), format: 'WebP', dims: '16384x16384' },
    { name: 'forged.bmp', type: 'image/bmp', bytes: forged('rgb.bmp', 40000, 40000), format: 'BMP', dims: '40000x40000' },
  ];
  const baseline = residentKb();
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, residentKb())), 20);
  try {
    await dropFiles(page, files);
    for (const f of files) {
      const r = await cardResult(page, f.name);
      assert.equal(r.done, false, f.name);
      assert.equal(r.state, `Image is ${f.dims} (its ${f.format} header says), over the limit of 64000000 pixels.`, f.name);
      // No thumbnail either: the page read the same header.
      assert.equal(await page.locator(`#${r.id} .thumb.broken`).count(), 1, `${f.name}: a thumbnail was decoded`);
    }
    // Through the API, the error has its code and names the file.
    const api = await page.evaluate(async (b64) => {
      const file = new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], 'bomb.png', { type: 'image/png' });
      const [r] = await window.bit50.model.classify([file]);
      return { code: r.error?.code, message: r.error?.message };
    }, bomb.toString('base64'));
    assert.deepEqual(api, { code: 'too-large', message: 'bomb.png: image is 100000x100000 (its PNG header says), over the limit of 64000000 pixels' });
  } finally {
    clearInterval(sampler);
  }
  const growthMb = (peak - baseline) / 1024;
  console.log(`browser processes: ${(baseline / 1024).toFixed(0)} MB before, peak ${(peak / 1024).toFixed(0)} MB while refusing (+${growthMb.toFixed(0)} MB)`);
  assert.ok(growthMb < 300, `the browser grew by ${growthMb.toFixed(0)} MB`);
  await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
  const r = await cardResult(page, 'cat.png');
  assert.ok(r.done, r.state);
  expectSameTop(r.top, nativeClassify(path.join(PHOTOS, 'cat.png')).top, { probTol: 1e-4 });
});

test('a PNG bomb added to one of your own classes is refused by name, and the class stays empty', async () => {
  await page.locator('#new-class-name').fill('bombs');
  await page.locator('#new-class-name').press('Enter');
  await page.locator('.class-card[data-class="bombs"]').waitFor();
  await dropFiles(page, [{ name: 'bomb.png', type: 'image/png', bytes: png(100000, 100000, { rows: 16 }) }], '.class-card[data-class="bombs"]');
  await page.waitForFunction(() => [...document.querySelectorAll('#messages .message')].some((m) => /bomb\.png/.test(m.textContent)), null, { timeout: 60_000 });
  const text = await page.evaluate(() => [...document.querySelectorAll('#messages .message')].map((m) => m.textContent).find((t) => /bomb\.png/.test(t)));
  assert.match(text, /^bombs: File too large\. bomb\.png: image is 100000x100000 \(its PNG header says\), over the limit of 64000000 pixels/);
  assert.equal(await page.locator('.class-card[data-class="bombs"] img').count(), 0);
});
