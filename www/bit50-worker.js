// The bit50 worker: loads the wasm and the model, and runs the network, so the page never
// waits on any of it. Spoken to only by bit50.js: messages {id, op, ...} answered by
// {id, ok, result|error}, plus unsolicited {event, ...} messages (progress, devicelost,
// recovered). Fetching the weights, preparing WebGPU and reading images live in lib/.
import { CodedError, toWire } from './lib/errors.js';
import { HeadCache } from './lib/heads.js';
import { toRGBA, setLimits } from './lib/images.js';
import { fetchManifest, fetchShards, manifestUrlOf } from './lib/model-files.js';
import { prepareWebGPU, describeAdapter, watchPipelines } from './lib/webgpu.js';
import { startPool, threadsUnavailable } from './lib/threads.js';

// The smallest module using f32x4.relaxed_madd: it validates where the browser has relaxed
// SIMD, and then the build that uses it runs (the CPU path 1.2-1.3x faster; build.sh).
const RELAXED_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  ...[0, 1, 2].flatMap(() => [253, 12, ...new Array(16).fill(0)]), 253, 133, 2, 11,
]);
const WASM_SIMD = WebAssembly.validate(RELAXED_SIMD_PROBE) ? 'relaxed-simd' : 'simd128';

let wasm = null; // {api: the build's exports, threads, threadsWhy}: chosen by the first load

/**
 * Loads the wasm build: the threaded one (pkg/threads/) with a pool of `wanted - 1` helpers
 * where the page is cross-origin isolated, else the single-threaded one (pkg/); each with
 * relaxed SIMD where the browser has it.
 */
async function loadWasm(wanted) {
  if (wasm) return wasm;
  const file = WASM_SIMD === 'relaxed-simd' ? 'bit50_relaxed_bg.wasm' : 'bit50_bg.wasm';
  let why = threadsUnavailable(wanted);
  if (wanted > 1 && !why) {
    const glueUrl = new URL('./pkg/threads/bit50.js', import.meta.url).href;
    try {
      const api = await import(glueUrl);
      await api.default({ module_or_path: new URL(`./pkg/threads/${file}`, import.meta.url) });
      const helpers = await startPool(glueUrl, wanted - 1, api.pool_parts());
      if (helpers < wanted - 1) why = `only ${helpers} of ${wanted - 1} helper threads started`;
      wasm = { api, threads: 1 + helpers, threadsWhy: why };
    } catch (err) {
      why = `the threaded build did not start (${err.message || err})`;
    }
  }
  if (!wasm) {
    const api = await import('./pkg/bit50.js');
    await api.default({ module_or_path: new URL(`./pkg/${file}`, import.meta.url) });
    wasm = { api, threads: 1, threadsWhy: why };
  }
  setLimits(wasm.api.limits());
  return wasm;
}

let engine = null;
let loaded = null; // the load options of the current model, to rebuild after a lost device
let queue = Promise.resolve();
const heads = new HeadCache(() => engine);

self.onmessage = (e) => {
  const msg = e.data;
  queue = queue.then(() => handle(msg));
};

async function handle({ id, op, ...args }) {
  try {
    const [result, transfer] = await OPS[op](args, id);
    self.postMessage({ id, ok: true, result }, transfer || []);
  } catch (err) {
    self.postMessage({ id, ok: false, error: toWire(err) });
  }
}

const event = (name, detail) => self.postMessage({ event: name, ...detail });

const OPS = {
  async load(options, id) {
    const info = await loadModel(options, (p) => event('progress', { id, ...p }));
    loaded = options;
    return [info];
  },
  /** images: [{kind, ...}]; head: {id, json} or none; resolves one entry per image:
   * {top, custom?, ms, width, height} or {error}. */
  async classify({ images, topK, head }) {
    const t0 = performance.now();
    const wasmHead = head ? heads.get(head) : null;
    const decoded = await Promise.all(images.map((image) => toRGBA(image).catch((err) => ({ error: toWire(err) }))));
    const good = decoded.filter((d) => !d.error);
    const run = () => (wasmHead ? engine.classify_with_head(good, topK || 5, wasmHead) : engine.classify(good, topK || 5));
    const results = good.length ? JSON.parse(await withRecovery(run)) : [];
    const ms = (performance.now() - t0) / Math.max(1, images.length);
    let next = 0;
    return [decoded.map((d) => (d.error ? d : { ...results[next++], ms, width: d.width, height: d.height }))];
  },
  async embed({ image, mirror = false }) {
    const px = await toRGBA(image);
    const features = await withRecovery(() => engine.embed(px.width, px.height, px.data, px.name, mirror));
    return [features, [features.buffer]];
  },
  /** The features of an image and, with flips, of its mirror image: [Float32Array, ...]. */
  async embedViews({ image, flips }) {
    const px = await toRGBA(image);
    const views = [await withRecovery(() => engine.embed(px.width, px.height, px.data, px.name, false))];
    if (flips) views.push(await withRecovery(() => engine.embed(px.width, px.height, px.data, px.name, true)));
    return [views, views.map((v) => v.buffer)];
  },
  async checkHeadLabels({ classes }) {
    if (!wasm) throw new CodedError('not-loaded', 'no model is loaded');
    wasm.api.check_head_labels(JSON.stringify(classes));
    return [true];
  },
  /** rows: Float32Array [views][features]; klass, example: Uint32Array per view. */
  async fitHead({ headId, classes, rows, klass, example, options }) {
    if (!engine) throw new CodedError('not-loaded', 'no model is loaded');
    const t0 = performance.now();
    const head = engine.fit_head(JSON.stringify(classes), rows, klass, example, JSON.stringify(options));
    const ms = performance.now() - t0;
    return [{ ...heads.add(headId, head), ms }];
  },
  async loadHead({ headId, json, source }) {
    return [heads.load(headId, json, source)];
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
    const lost = engine?.lost() || (err.code === 'device-lost' ? err.message : null);
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
  const info = await loadModel(loaded, () => {});
  event('recovered', { info });
}

/**
 * Loads a model: the manifest; then, while the shards download, the engine policy chooses
 * WebGPU or the CPU path (src/engine.rs) and on WebGPU records the network, so each shard's
 * weights go to the GPU as they arrive. Progress comes one phase at a time, in the order the
 * user waits on them: 'preparing' (the GPU: opening it, then compiling the network's programs,
 * loaded of total), 'measuring' (which path is faster: loaded of total timings), then
 * 'downloading' (bytes; what arrived meanwhile included).
 */
async function loadModel({ url, backend = 'auto', batch = 4, threads = 1 }, onProgress) {
  const { api, threads: gotThreads, threadsWhy } = await loadWasm(threads);
  const { ModelLoader, plan_engine, finish_engine } = api;
  const manifestUrl = manifestUrlOf(url);
  const manifest = await fetchManifest(manifestUrl);
  let loader = new ModelLoader(manifest, manifestUrl); // throws {code: 'bad-model'}
  const meta = JSON.parse(loader.info());
  try {
    engine?.free();
  } catch {}
  engine = null;
  // The download's progress waits until the path is chosen, so that the bar never reads 100%
  // while the GPU is still being prepared.
  let planned = false;
  let heldDownload = null;
  const onDownload = (p) => (planned ? onProgress(p) : (heldDownload = p));
  // Preparing the GPU ends in compiling the network's programs, in parallel: each one compiled
  // is a step.
  let stopWatching = () => {};
  const onPhase = (phase, loaded, total) => {
    stopWatching();
    onProgress({ phase, loaded, total });
    if (phase === 'preparing') stopWatching = watchPipelines((compiled, asked) => onProgress({ phase, loaded: compiled, total: asked }));
  };
  if (backend !== 'cpu') onPhase('preparing', 0, 0);
  const webgpu = backend === 'cpu' ? { software: false, subgroups: false, compatibility: false } : await prepareWebGPU();
  const planning = plan_engine(loader, backend, webgpu.software, webgpu.subgroups, batch, onPhase).finally(() => {
    planned = true;
    stopWatching();
    if (heldDownload) onProgress(heldDownload);
  });
  planning.catch(() => {}); // (awaited below; a download failure must not leave it unhandled)
  loader = null;
  const addShard = async (index, bytes, source, sha256) => {
    loader ??= await planning;
    try {
      loader.add_shard(index, bytes, source, sha256);
    } catch (err) {
      if (err.code === 'checksum') throw new CodedError('checksum', `${err.message} (the file is damaged or does not belong to this manifest)`);
      throw err;
    }
  };
  const { cachedBytes, cacheFailed } = await fetchShards(manifestUrl, meta, addShard, onDownload);
  loader ??= await planning;
  engine = finish_engine(loader);
  const info = JSON.parse(engine.info());
  if (info.backend === 'webgpu') {
    info.featureLevel = webgpu.compatibility ? 'compatibility' : 'core';
    info.adapter = describeAdapter(info.adapter);
  }
  info.wasm = WASM_SIMD;
  info.limits = JSON.parse(api.limits()); // the pages draw no thumbnail of a photo over them
  info.threads = gotThreads;
  if (gotThreads < threads) info.threadsReason = threadsWhy;
  return {
    ...info,
    url: manifestUrl,
    dtype: meta.dtype,
    untrained: meta.untrained,
    bytes: meta.total_bytes,
    fromCache: cachedBytes === meta.total_bytes,
    cachedBytes,
    cacheFailed,
  };
}
