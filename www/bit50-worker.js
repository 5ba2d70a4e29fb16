// The bit50 worker: loads the wasm, fetches and checks the weights (Cache Storage),
// decodes images and runs the network, so the page never waits on any of it.
// Spoken to only by bit50.js: messages {id, op, ...} answered by {id, ok, result|error},
// plus unsolicited {event, ...} messages (progress, devicelost, recovered).
import init, { ModelLoader, build_engine } from './pkg/bit50.js';

// The smallest module using f32x4.relaxed_madd: it validates where the browser has relaxed
// SIMD, and then the build that uses it runs (the CPU path 1.2-1.3x faster; build.sh).
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  ...[0, 1, 2].flatMap(() => [253, 12, ...new Array(16).fill(0)]), 253, 133, 2, 11,
]);
const WASM_SIMD = WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'relaxed-simd' : 'simd128';
const wasmReady = init({
  module_or_path: new URL(WASM_SIMD === 'relaxed-simd' ? './pkg/bit50_relaxed_bg.wasm' : './pkg/bit50_bg.wasm', import.meta.url),
});
const CACHE = 'bit50-weights-v1';
/** Files larger than this are refused before decoding. */
const MAX_FILE_BYTES = 50 * 1024 * 1024;
const MAX_PIXELS = 64_000_000;

let engine = null;
let loaded = null; // {url, backend} of the current model, to rebuild after a lost device
let queue = Promise.resolve();

class CodedError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

self.onmessage = (e) => {
  const msg = e.data;
  queue = queue.then(() => handle(msg));
};

async function handle({ id, op, ...args }) {
  try {
    const [result, transfer] = await OPS[op](args, id);
    self.postMessage({ id, ok: true, result }, transfer || []);
  } catch (err) {
    const error = { code: err.code || classify_error(err), message: String(err.message || err) };
    self.postMessage({ id, ok: false, error });
  }
}

function classify_error(err) {
  const m = String(err.message || err);
  if (m.includes('sha256') || / bytes, manifest says /.test(m)) return 'checksum';
  if (m.startsWith('device-lost')) return 'device-lost';
  if (/over the limit|too large/.test(m)) return 'too-large';
  if (/smaller than the minimum/.test(m)) return 'too-small';
  return 'error';
}

const event = (name, detail) => self.postMessage({ event: name, ...detail });

const OPS = {
  async load({ url, backend }, id) {
    const info = await loadModel(url, backend, (p) => event('progress', { id, ...p }));
    loaded = { url, backend };
    return [info];
  },
  async classify({ image, topK }) {
    const t0 = performance.now();
    const px = await toRGBA(image);
    const json = await withRecovery(() => engine.classify(px.width, px.height, px.data, topK || 5, px.name));
    return [{ ...JSON.parse(json), ms: performance.now() - t0, width: px.width, height: px.height }];
  },
  async embed({ image }) {
    const px = await toRGBA(image);
    const features = await withRecovery(() => engine.embed(px.width, px.height, px.data, px.name));
    return [features, [features.buffer]];
  },
  async explain({ image, index }) {
    const px = await toRGBA(image);
    const [header, data] = await withRecovery(() => engine.explain(px.width, px.height, px.data, index, px.name));
    return [{ ...JSON.parse(header), data, imageWidth: px.width, imageHeight: px.height }, [data.buffer]];
  },
  async profile({ image }) {
    const px = await toRGBA(image);
    return [JSON.parse(await withRecovery(() => engine.profile(px.width, px.height, px.data, px.name)))];
  },
  async dispose() {
    engine?.free();
    engine = null;
    loaded = null;
    return [true];
  },
  async loseDevice() {
    if (!engine) throw new CodedError('not-loaded', 'no model is loaded');
    engine.lose_device();
    return [true];
  },
};

/** Runs a call; when the GPU device was lost, rebuilds the engine from the cache and retries once. */
async function withRecovery(call) {
  if (!engine) throw new CodedError('not-loaded', 'no model is loaded (it was disposed or failed to load)');
  if (engine.lost()) await recover(engine.lost());
  try {
    return await call();
  } catch (err) {
    const lost = engine?.lost() || (String(err.message).startsWith('device-lost') ? err.message : null);
    if (!lost || !loaded) throw err;
    await recover(lost);
    return await call();
  }
}

async function recover(reason) {
  event('devicelost', { reason: String(reason) });
  try {
    engine?.free();
  } catch {}
  engine = null;
  const info = await loadModel(loaded.url, loaded.backend, () => {});
  event('recovered', { info });
}

async function openCache() {
  try {
    return await caches.open(CACHE);
  } catch {
    return null; // opaque origins, storage disabled: download every time
  }
}

async function fetchOrFail(url, what) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-cache' });
  } catch (err) {
    throw new CodedError('network', `${what} ${url}: cannot be fetched (${err.message}); is the server up and does it allow CORS?`);
  }
  if (!res.ok) {
    const code = res.status === 404 ? 'not-found' : 'network';
    throw new CodedError(code, `${what} ${url}: HTTP ${res.status}${res.status === 404 ? ' (not found: is the model URL right?)' : ''}`);
  }
  return res;
}

/** Reads a response body into one buffer, reporting each chunk. */
async function readBody(res, expected, url, onChunk) {
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    onChunk(buf.length);
    return buf;
  }
  let buf = new Uint8Array(expected);
  let n = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (n + value.length > buf.length) {
      if (n + value.length > expected + 1024) {
        await reader.cancel();
        throw new CodedError('checksum', `${url}: larger than the ${expected} bytes the manifest says`);
      }
      const bigger = new Uint8Array(n + value.length);
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    buf.set(value, n);
    n += value.length;
    onChunk(value.length);
  }
  return n === buf.length ? buf : buf.slice(0, n);
}

// A shard's sha256 by WebCrypto (native code; hashing 50 MB in WebAssembly takes 1.5 s),
// or undefined where the page is not a secure context, and the wasm side hashes it itself.
async function sha256(bytes) {
  if (!globalThis.crypto?.subtle) return undefined;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function loadModel(url, backend, onProgress) {
  await wasmReady;
  const manifestUrl = new URL(/\.json($|\?)/.test(url) ? url : url.replace(/\/?$/, '/manifest.json'), self.location.href).href;
  const cache = await openCache();
  const manifestBytes = new Uint8Array(await (await fetchOrFail(manifestUrl, 'model manifest')).arrayBuffer());
  let loader;
  try {
    loader = new ModelLoader(manifestBytes, manifestUrl);
  } catch (err) {
    throw new CodedError('bad-model', err.message);
  }
  const meta = JSON.parse(loader.info());
  const total = meta.total_bytes;
  let done = 0;
  let cachedBytes = 0;
  const report = (file, fromCache) => onProgress({ loaded: done, total, file, fromCache, cachedBytes });
  report(null, false);
  for (const [i, shard] of meta.shards.entries()) {
    const shardUrl = new URL(shard.file, manifestUrl).href;
    const key = `${shardUrl}?sha256=${shard.sha256}`;
    let bytes = null;
    const hit = cache && (await cache.match(key));
    if (hit) {
      bytes = new Uint8Array(await hit.arrayBuffer());
      try {
        loader.add_shard(i, bytes, `${shardUrl} (cached)`, await sha256(bytes));
        done += shard.bytes;
        cachedBytes += shard.bytes;
        report(shard.file, true);
        continue;
      } catch {
        await cache.delete(key); // damaged copy: download again
      }
    }
    const res = await fetchOrFail(shardUrl, 'weights shard');
    const before = done;
    bytes = await readBody(res, shard.bytes, shardUrl, (n) => {
      done += n;
      report(shard.file, false);
    });
    done = before + shard.bytes;
    try {
      loader.add_shard(i, bytes, shardUrl, await sha256(bytes));
    } catch (err) {
      throw new CodedError('checksum', `${err.message} (the file is damaged or does not belong to this manifest)`);
    }
    if (cache) {
      try {
        await cache.put(key, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
      } catch {} // quota: fine, next visit downloads again
    }
    report(shard.file, false);
  }
  let choice = backend || 'auto';
  let reason = null;
  let software = false; // a fallback adapter: WebGPU keeps the kernels without barriers
  let compatibility = false;
  if (choice !== 'cpu' && !self.navigator.gpu) {
    if (choice === 'webgpu') throw new CodedError('no-webgpu', 'this browser has no WebGPU (navigator.gpu is missing)');
    choice = 'cpu';
    reason = 'this browser has no WebGPU (navigator.gpu is missing)';
  } else if (choice !== 'cpu') {
    const gpu = self.navigator.gpu;
    let adapter = await gpu.requestAdapter().catch(() => null);
    if (compatibilityInstalled || !adapter || isFallback(adapter)) {
      const compat = await preferCompatibility(gpu);
      if (compat) [adapter, compatibility] = [compat, true];
    }
    const fallback = adapter ? null : await gpu.requestAdapter({ forceFallbackAdapter: true }).catch(() => null);
    software = !adapter || isFallback(adapter);
    if (choice === 'auto' && !adapter && !fallback) {
      choice = 'cpu';
      reason = 'WebGPU is not available: the browser offered no adapter (it may be disabled or blocklisted)';
    }
    // With 'auto', the wasm side times WebGPU and the CPU path briefly and keeps the faster.
  }
  try {
    engine?.free();
  } catch {}
  engine = null;
  try {
    engine = await build_engine(loader, choice, software);
  } catch (err) {
    throw new CodedError(choice === 'webgpu' ? 'no-webgpu' : 'bad-model', err.message);
  }
  const info = JSON.parse(engine.info());
  if (reason) info.fallback_reason = reason;
  if (info.backend === 'webgpu') info.featureLevel = compatibility ? 'compatibility' : 'core';
  info.wasm = WASM_SIMD;
  if (info.backend === 'webgpu') info.adapter = await describeAdapter(info.adapter);
  return { ...info, url: manifestUrl, dtype: meta.dtype, untrained: meta.untrained, bytes: total, fromCache: cachedBytes === total, cachedBytes };
}

const isFallback = (adapter) => Boolean(adapter?.info?.isFallbackAdapter || adapter?.isFallbackAdapter);

// WebGPU compatibility mode (on OpenGL ES or Direct3D 11) reaches GPUs that core WebGPU does
// not. Where the core adapter is missing or a software fallback and a compatibility adapter is
// not, every later request in this worker (wgpu's included) asks for compatibility mode.
let compatibilityInstalled = false;
async function preferCompatibility(gpu) {
  const compat = await gpu.requestAdapter({ featureLevel: 'compatibility' }).catch(() => null);
  if (!compat || isFallback(compat)) return null;
  if (!compatibilityInstalled) {
    const request = gpu.requestAdapter.bind(gpu);
    gpu.requestAdapter = (options = {}) => request({ ...options, featureLevel: 'compatibility' });
    compatibilityInstalled = true;
  }
  return compat;
}

/** "google swiftshader (fallback adapter)": wgpu's adapter name is empty on the web. */
async function describeAdapter(fallback) {
  try {
    const a = await self.navigator.gpu.requestAdapter();
    const i = a?.info;
    if (!i) return fallback;
    const words = [i.vendor, i.architecture, i.device, i.description].filter(Boolean);
    const name = [...new Set(words)].join(' ') || 'unknown GPU';
    return `${name}${i.isFallbackAdapter || a.isFallbackAdapter ? ' (software fallback adapter)' : ''}`;
  } catch {
    return fallback;
  }
}

/**
 * Browsers decode truncated files silently (grey at the bottom), so check the ends:
 * a JPEG's scan data (after its first SOS, past any EXIF thumbnail) must reach an EOI
 * marker, and a PNG must hold its IEND chunk.
 */
async function checkComplete(blob, name) {
  const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
  const isJpeg = head[0] === 0xff && head[1] === 0xd8;
  const isPng = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
  if (isJpeg) {
    const b = new Uint8Array(await blob.arrayBuffer());
    let i = 2;
    // Walk the marker segments up to the first start-of-scan.
    while (i + 4 <= b.length && b[i] === 0xff && b[i + 1] !== 0xda) {
      if (b[i + 1] === 0xff) {
        i++;
        continue;
      }
      i += 2 + ((b[i + 2] << 8) | b[i + 3]);
    }
    let ok = false;
    for (let j = i + 2; j + 1 < b.length; j++) {
      if (b[j] === 0xff && b[j + 1] === 0xd9) {
        ok = true;
        break;
      }
    }
    if (!ok) throw new CodedError('truncated', `${name}: the JPEG file is truncated or damaged (its image data has no end marker)`);
  } else if (isPng) {
    const tail = new Uint8Array(await blob.slice(Math.max(0, blob.size - 64)).arrayBuffer());
    if (!String.fromCharCode(...tail).includes('IEND')) throw new CodedError('truncated', `${name}: the PNG file is truncated or damaged (no IEND chunk)`);
  }
}

/** Turns {kind: 'blob'|'bitmap'|'rgba'} into {width, height, data: RGBA bytes, name}. */
async function toRGBA(image) {
  const name = image.name || 'image';
  if (image.kind === 'rgba') return { width: image.width, height: image.height, data: new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength), name };
  let bitmap = image.bitmap;
  if (image.kind === 'blob') {
    const blob = image.blob;
    if (blob.size === 0) throw new CodedError('not-image', `${name}: empty file, not an image`);
    if (blob.size > MAX_FILE_BYTES) throw new CodedError('too-large', `${name}: ${(blob.size / 1048576).toFixed(1)} MB is over the ${MAX_FILE_BYTES / 1048576} MB limit`);
    if (blob.type && !blob.type.startsWith('image/')) throw new CodedError('not-image', `${name}: not an image (${blob.type})`);
    await checkComplete(blob, name);
    try {
      bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
    } catch {
      throw new CodedError('not-image', `${name}: not an image this browser can decode`);
    }
  }
  try {
    const { width, height } = bitmap;
    if (width * height > MAX_PIXELS) throw new CodedError('too-large', `${name}: image is ${width}x${height}, over the limit of ${MAX_PIXELS} pixels`);
    if (width < 16 || height < 16) throw new CodedError('too-small', `${name}: image is ${width}x${height}, smaller than the minimum 16x16`);
    return { width, height, data: readPixels(bitmap), name };
  } finally {
    bitmap.close?.();
  }
}

let gl = null;
/**
 * RGBA bytes of a bitmap, not premultiplied: through WebGL when it can (exact, like
 * PIL's convert("RGB"), which drops alpha), else through a 2D canvas (which loses
 * the colour of fully transparent pixels).
 */
function readPixels(bitmap) {
  const { width, height } = bitmap;
  try {
    if (gl === null) gl = new OffscreenCanvas(1, 1).getContext('webgl2', { premultipliedAlpha: false }) || false;
    if (gl && width <= gl.getParameter(gl.MAX_TEXTURE_SIZE) && height <= gl.getParameter(gl.MAX_TEXTURE_SIZE)) {
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      const fb = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
      const out = new Uint8Array(width * height * 4);
      gl.pixelStorei(gl.PACK_ALIGNMENT, 1);
      gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, out);
      const err = gl.getError();
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.deleteFramebuffer(fb);
      gl.deleteTexture(tex);
      if (err === gl.NO_ERROR) return out;
    }
  } catch {
    gl = false;
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, width, height).data;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
