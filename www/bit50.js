// bit50.js: BiT-50 image classification in the browser (WebGPU, else WebAssembly on the CPU).
//
//   import { load } from './bit50.js';
//   const model = await load('models/bit-50/', { onProgress: (p) => console.log(p.loaded, p.total) });
//   const { top, ms } = await model.classify(file, { topK: 5 });
//   const results = await model.classify([a, b, c]);     // one submission per batch on WebGPU
//   const features = await model.embed(file);          // Float32Array (2,048 for BiT-50)
//   const heatmap = await model.explain(file, top[0].index);
//   const head = await model.fitHead({ cat: [a, b], dog: [c] });   // your own classes
//   const { top, custom } = await model.classify(file, { head });  // custom: [{label, prob}]
//   model.info;  model.dispose();
//
// All work happens in a Web Worker; every method returns a Promise. Failures reject
// with a Bit50Error whose `code` says what went wrong (see README).

const WORKER_URL = new URL('./bit50-worker.js', import.meta.url).href;

/** An error with a machine-readable `code` (docs/web.md lists them): 'not-found', 'network',
 * 'checksum', 'bad-model', 'no-webgpu', 'not-image', 'truncated', 'too-large',
 * 'bad-input', 'bad-head', 'other-model', 'disposed', 'device-lost', 'error'. */
export class Bit50Error extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'Bit50Error';
    this.code = code;
  }
}

/** Starts a module worker; through a blob URL so that the module works from another origin. */
function startWorker() {
  const source = `import ${JSON.stringify(WORKER_URL)};`;
  const blobUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(blobUrl, { type: 'module', name: 'bit50' });
  setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
  return worker;
}

class Connection {
  constructor(onEvent) {
    this.worker = startWorker();
    this.next = 1;
    this.pending = new Map();
    this.onEvent = onEvent;
    this.worker.onmessage = (e) => {
      const msg = e.data;
      if (msg.event) {
        const p = this.pending.get(msg.id);
        if (msg.event === 'progress' && p?.onProgress) p.onProgress(msg);
        else this.onEvent?.(msg);
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Bit50Error(msg.error.code, msg.error.message));
    };
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      const err = new Bit50Error('error', `the bit50 worker failed: ${e.message || 'could not start (is bit50-worker.js served, and www/pkg built?)'}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
  }

  call(op, args = {}, transfer = [], onProgress = null) {
    if (!this.worker) return Promise.reject(new Bit50Error('disposed', 'this model was disposed'));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ id, op, ...args }, transfer);
    });
  }

  close() {
    this.worker?.terminate();
    this.worker = null;
    for (const p of this.pending.values()) p.reject(new Bit50Error('disposed', 'this model was disposed'));
    this.pending.clear();
  }
}

/**
 * Turns any supported input into a message for the worker (transferring what it can).
 * Blob/File are decoded in the worker; elements and bitmaps become an ImageBitmap here.
 */
async function toMessage(input) {
  const g = globalThis;
  if (g.Blob && input instanceof Blob) {
    return [{ kind: 'blob', blob: input, name: input.name || 'image' }, []];
  }
  if (g.ImageData && input instanceof ImageData) {
    const data = new Uint8Array(input.data); // a copy: the caller keeps theirs
    return [{ kind: 'rgba', width: input.width, height: input.height, data, name: 'ImageData' }, [data.buffer]];
  }
  let source = input;
  let name = 'image';
  if (g.HTMLImageElement && input instanceof HTMLImageElement) {
    name = (input.currentSrc || input.src || '').split('/').pop().split('?')[0] || 'img';
    if (!input.complete || !input.naturalWidth) {
      try {
        await input.decode();
      } catch {
        throw new Bit50Error('not-image', `${name}: the image element holds no decodable image`);
      }
    }
  } else if (g.HTMLVideoElement && input instanceof HTMLVideoElement) {
    name = 'video frame';
    if (input.readyState < 2 || !input.videoWidth) throw new Bit50Error('bad-input', 'the video has no frame yet');
  } else if (g.HTMLCanvasElement && input instanceof HTMLCanvasElement) {
    name = 'canvas';
  } else if (g.OffscreenCanvas && input instanceof OffscreenCanvas) {
    name = 'canvas';
  } else if (g.ImageBitmap && input instanceof ImageBitmap) {
    name = 'ImageBitmap';
  } else if (g.VideoFrame && input instanceof VideoFrame) {
    name = 'video frame';
  } else {
    throw new Bit50Error('bad-input', 'expected a Blob or File, ImageBitmap, ImageData, or an img, canvas or video element');
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(source);
  } catch (err) {
    throw new Bit50Error('not-image', `${name}: cannot read its pixels (${err.message})`);
  }
  return [{ kind: 'bitmap', bitmap, name }, [bitmap]];
}

let headCount = 0;

/**
 * A head: your own classes, learned on a model's features (`model.fitHead`) or read from a
 * head file (`model.loadHead`). `classes` (labels), `features`, `model` ({name, sha256}: the
 * model it belongs to), `training` ({l2, flips, examples, iterations, gradient, train_correct,
 * loo: {correct, counted} | null}, or null), `ms` (training time, for a trained one).
 */
export class Head {
  /** (Made by model.fitHead and model.loadHead: `id` names it in the model's worker.) */
  constructor(id, json, summary, ms = null) {
    Object.defineProperty(this, '_json', { value: json });
    Object.defineProperty(this, '_id', { value: id });
    Object.assign(this, summary);
    this.ms = ms;
  }

  /** The head file as an object: `JSON.stringify(head)` writes the file; `loadHead` reads it. */
  toJSON() {
    return JSON.parse(this._json);
  }
}

/** A loaded model. Events: 'devicelost' and 'recovered' (detail: {reason} / {info}). */
export class Model extends EventTarget {
  constructor(connection, info, pool) {
    super();
    this._c = connection;
    /** {name, labels, backend: 'webgpu'|'cpu', adapter, kernels, precision, subgroups, batch, threads, workers, featureLevel, wasm, fallback_reason, image_size, features, classes, url, dtype, bytes, fromCache, cacheFailed} */
    this.info = info;
    /** More workers for batches ({ready: Promise<Connection|null>}), where they pay: see load(). */
    this._pool = pool;
  }

  /**
   * Resolves {top: [{index, label, prob, logit}], ms, width, height} for one input. For an
   * array of inputs, resolves an array in the same order, each entry such a result or
   * {error: Bit50Error} (one bad photo fails alone). On WebGPU they go through the network
   * `info.batch` at a time, one GPU submission each, and each gets what it would get alone; on
   * the CPU path without threads, `info.workers` workers take them in turn.
   * Options: topK; head (a Head: each result also has custom: [{index, label, prob}], your own
   * classes, most probable first); signal (an AbortSignal: photos not yet started are given up,
   * their entries {error} with code 'cancelled'); onResult(result, index), called as each photo
   * is done.
   */
  async classify(input, { topK = 5, head = null, signal, onResult } = {}) {
    if (head !== null && !(head instanceof Head)) throw new Bit50Error('bad-input', 'options.head must be a Head, from model.fitHead() or model.loadHead()');
    // Each worker keeps the heads it has read; one that has not reads this one's file once.
    const headRef = head && { id: head._id, json: head._json };
    const many = Array.isArray(input);
    const inputs = many ? input : [input];
    const out = new Array(inputs.length);
    const chunk = this.info.backend === 'webgpu' ? this.info.batch || 1 : 1;
    let next = 0;
    const work = async (connection) => {
      while (next < inputs.length && !signal?.aborted) {
        const indices = Array.from({ length: Math.min(chunk, inputs.length - next) }, () => next++);
        const prepared = await Promise.all(indices.map((i) => toMessage(inputs[i]).catch((error) => ({ error }))));
        const good = prepared.filter((p) => !p.error);
        let results = [];
        if (good.length) {
          try {
            results = await connection.call('classify', { images: good.map(([image]) => image), topK, head: headRef }, good.flatMap(([, t]) => t));
          } catch (error) {
            results = good.map(() => ({ error }));
          }
        }
        let k = 0;
        indices.forEach((i, j) => {
          const r = prepared[j].error ? { error: prepared[j].error } : results[k++];
          const result = head ? { top: r.top, custom: r.custom, ms: r.ms, width: r.width, height: r.height } : { top: r.top, ms: r.ms, width: r.width, height: r.height };
          out[i] = r.error ? { error: r.error instanceof Bit50Error ? r.error : new Bit50Error(r.error.code, r.error.message) } : result;
          onResult?.(out[i], i);
        });
      }
    };
    const helpers = inputs.length > 1 ? this._pool.map((w) => w.ready.then((c) => c && work(c))) : [];
    await Promise.all([work(this._c), ...helpers]);
    for (let i = 0; i < out.length; i++) out[i] ??= { error: new Bit50Error('cancelled', 'cancelled before it was classified') };
    if (!many && out[0].error) throw out[0].error;
    return many ? out : out[0];
  }

  /** Resolves the pooled features (Float32Array, `info.features` long); with `mirror: true`,
   * those of the input's mirror image (left and right swapped). */
  async embed(input, { mirror = false } = {}) {
    const [image, transfer] = await toMessage(input);
    return this._c.call('embed', { image, mirror: !!mirror }, transfer);
  }

  /**
   * Learns your own classes from examples: `examples` maps each label to its examples, an
   * object `{ cat: [a, b], dog: [c] }` or a Map. An example is an image (any input classify
   * takes), or features from `embed()` (a Float32Array), or an array of such Float32Arrays
   * (views of one example: the photo and its mirror image). Options: `l2` (the L2 penalty;
   * default 1/n over the n training views, scikit-learn's C = 1), `flips` (also learn from each
   * image's mirror image), `loo` (a leave-one-out estimate, up to 200 examples; default
   * true), `onProgress({done, total})` as images are embedded. Resolves a Head.
   */
  async fitHead(examples, { l2 = null, flips = false, loo = true, onProgress } = {}) {
    const entries = examples instanceof Map ? [...examples] : Object.entries(examples ?? {});
    const classes = entries.map(([label]) => label);
    for (const [label, list] of entries) {
      if (!Array.isArray(list)) throw new Bit50Error('bad-input', `the examples of ${JSON.stringify(label)} must be an array`);
    }
    if (l2 !== null && !(typeof l2 === 'number' && Number.isFinite(l2))) throw new Bit50Error('bad-input', `l2 ${l2}: expected a number`);
    await this._c.call('checkHeadLabels', { classes });
    const empty = entries.find(([, list]) => list.length === 0);
    if (empty) throw new Bit50Error('bad-input', `the class ${JSON.stringify(empty[0])} has no examples: add at least one photo to it`);
    const d = this.info.features;
    const total = entries.reduce((n, [, list]) => n + list.length, 0);
    const views = [];
    const klass = [];
    const example = [];
    let done = 0;
    for (const [c, [label, list]] of entries.entries()) {
      for (const [i, item] of list.entries()) {
        const what = `example ${i + 1} of ${JSON.stringify(label)}`;
        let got;
        if (item instanceof Float32Array || (Array.isArray(item) && item.length && item.every((v) => v instanceof Float32Array))) {
          got = item instanceof Float32Array ? [item] : item;
          const wrong = got.find((v) => v.length !== d);
          if (wrong) throw new Bit50Error('bad-input', `${what}: ${wrong.length} features; this model gives ${d}`);
        } else {
          let message;
          try {
            message = await toMessage(item);
          } catch (err) {
            throw new Bit50Error(err.code || 'bad-input', `${label}: ${err.message}`);
          }
          const [image, transfer] = message;
          got = await this._c.call('embedViews', { image, flips: !!flips }, transfer).catch((err) => {
            throw new Bit50Error(err.code, `${label}: ${err.message}`);
          });
        }
        for (const v of got) {
          views.push(v);
          klass.push(c);
          example.push(done);
        }
        done++;
        onProgress?.({ done, total });
      }
    }
    const rows = new Float32Array(views.length * d);
    views.forEach((v, i) => rows.set(v, i * d));
    const id = ++headCount;
    const r = await this._c.call(
      'fitHead',
      { headId: id, classes, rows, klass: Uint32Array.from(klass), example: Uint32Array.from(example), options: { l2, flips: !!flips, loo: !!loo } },
      [rows.buffer],
    );
    return new Head(id, r.json, r.summary, r.ms);
  }

  /**
   * Reads a head file for this model: `json` is its text, the parsed object, a Head, or a
   * Blob/File. Rejects with code 'bad-head' (not a head file, damaged, truncated) or
   * 'other-model' (trained on another model: a head only works with the model it learned).
   */
  async loadHead(json, { source } = {}) {
    let text = json;
    let name = source;
    if (globalThis.Blob && json instanceof Blob) {
      name ??= json.name || 'the head file';
      text = await json.text();
    } else if (json instanceof Head) {
      text = json._json;
    } else if (json && typeof json === 'object') {
      text = JSON.stringify(json);
    }
    if (typeof text !== 'string') throw new Bit50Error('bad-input', 'loadHead() takes a head file: its text, the parsed object, or a Blob/File');
    const id = ++headCount;
    const r = await this._c.call('loadHead', { headId: id, json: text, source: name || 'the head file' });
    return new Head(id, r.json, r.summary);
  }

  /**
   * Resolves a class activation map for class `index`: {index, label, width, height,
   * data: Float32Array (row-major), min, max, crop: {x, y, width, height}} where crop is
   * the square of the image, in its pixels, that the network saw.
   */
  async explain(input, index) {
    if (!Number.isInteger(index) || index < 0 || index >= this.info.classes) {
      throw new Bit50Error('bad-input', `class index ${index} is out of range (0..${this.info.classes - 1})`);
    }
    const [image, transfer] = await toMessage(input);
    return this._c.call('explain', { image, index }, transfer);
  }

  /**
   * Resolves the GPU time per kind of layer for one run on `input`, [{layer, ms}] (from
   * WebGPU timestamp queries), or null on the CPU path or without timestamp queries.
   */
  async profile(input) {
    const [image, transfer] = await toMessage(input);
    return this._c.call('profile', { image }, transfer);
  }

  /** Frees the network and stops the workers. */
  dispose() {
    this._c.close();
    for (const w of this._pool) w.ready.then((c) => c?.close());
  }

  /** For tests: destroys the GPU device, as a driver reset would. */
  _loseDevice() {
    return this._c.call('loseDevice');
  }
}

/**
 * Loads a converted model: `url` is its folder (ending in /) or its manifest.json,
 * relative to the page or absolute (CORS). Shards are checked against their sha256
 * and kept in the Cache Storage. Options:
 * - onProgress({phase, loaded, total, ...}), one phase at a time: 'preparing' (the GPU: opening
 *   it, then compiling the network's programs, loaded of total; total 0 while not known),
 *   'measuring' (which path is faster here: loaded of total timings), then 'downloading' (the
 *   weights: loaded of total bytes, with file, fromCache, cachedBytes). The download runs
 *   meanwhile and reports once the path is chosen; with backend 'cpu', only 'downloading';
 * - backend: 'auto' (default), 'webgpu' or 'cpu';
 * - batch: images per GPU submission (default 4 where navigator.deviceMemory is 8 GB, else 1);
 * - threads: threads for the CPU path on a cross-origin-isolated page (default
 *   navigator.hardwareConcurrency, at most 8; 1 forces one); model.info.threads says how many
 *   it got, and info.threadsReason why if fewer;
 * - workers: on the CPU path without threads (a page that is not isolated), workers that
 *   classify the photos of a batch side by side, each with its own copy of the weights
 *   (default from navigator.hardwareConcurrency and deviceMemory: 2 to 4 on desktops, 1 on
 *   phones; 1: none). They start after the model is ready; model.info.workers says how many.
 */
export async function load(url, { onProgress, backend = 'auto', batch = defaultBatch(), threads = defaultThreads(), workers = defaultWorkers() } = {}) {
  if (!url) throw new Bit50Error('bad-input', 'load() needs a model URL');
  const absolute = new URL(url, globalThis.document?.baseURI ?? location.href).href;
  let model = null;
  const connection = new Connection((msg) => {
    if (!model) return;
    if (msg.event === 'recovered') model.info = { ...msg.info, workers: model.info.workers };
    model.dispatchEvent(new CustomEvent(msg.event, { detail: msg }));
  });
  const options = { url: absolute, backend, batch, threads: Math.max(1, Math.min(8, Math.floor(threads) || 1)) };
  try {
    const info = await connection.call('load', options, [], onProgress);
    const pooled = info.backend === 'cpu' && info.threads === 1 ? Math.max(1, Math.min(8, Math.floor(workers) || 1)) : 1;
    const pool = Array.from({ length: pooled - 1 }, () => {
      const c = new Connection(() => {});
      return { ready: c.call('load', { ...options, backend: 'cpu', threads: 1 }).then(() => c, () => (c.close(), null)) };
    });
    model = new Model(connection, { ...info, workers: pooled }, pool);
    return model;
  } catch (err) {
    connection.close();
    throw err;
  }
}

/** Workers for batches on the CPU path: one per core, one copy of the weights each (about
 * 250 MB for BiT-50), so at most one per 2 GB of the device's memory, and at most 4. */
function defaultWorkers() {
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  const memory = globalThis.navigator?.deviceMemory || 4;
  return Math.max(1, Math.min(cores, Math.floor(memory / 2), 4));
}

function defaultThreads() {
  return Math.min(8, globalThis.navigator?.hardwareConcurrency || 1);
}

/** Images per GPU submission: 4 where the device says it has 8 GB or more, else 1 (phones, and
 * Safari, which does not say: a batch of 4 at 448x448 holds about 100 MB more on the GPU). */
function defaultBatch() {
  return (globalThis.navigator?.deviceMemory || 0) >= 8 ? 4 : 1;
}

/**
 * Why a model's predictions mean nothing, or null for a trained model: a test model (its
 * classes are placeholders, "class 0", "class 1", ...) or an untrained one (seeded random
 * weights). {short (for each result), long (for the model)}: pages say it wherever
 * they show its labels, so that they never pass for answers.
 */
export function caveat(info) {
  const labels = info.labels || [];
  if (labels.length && labels.every((l) => /^class \d+$/.test(l))) {
    return {
      short: 'A test model: these labels mean nothing.',
      long: `A tiny test model: its classes (“${labels[0]}”, …) name nothing real, so its predictions mean nothing.`,
    };
  }
  if (info.untrained) {
    return {
      short: 'Untrained model (random weights): these labels mean nothing.',
      long: 'An untrained BiT-50 (random weights): its predictions mean nothing.',
    };
  }
  return null;
}

/** Draws a heatmap from explain() over an image drawn at (x, y, w, h) on a 2D context. */
export function drawHeatmap(ctx, heatmap, x, y, w, h, { alpha = 0.55 } = {}) {
  const { width, height, data, crop } = heatmap;
  const img = new ImageData(width, height);
  const span = heatmap.max - heatmap.min || 1;
  for (let i = 0; i < data.length; i++) {
    const [r, g, b] = colormap((data[i] - heatmap.min) / span);
    img.data.set([r, g, b, 255], i * 4);
  }
  const small = new OffscreenCanvas(width, height);
  small.getContext('2d').putImageData(img, 0, 0);
  const sx = w / (heatmap.imageWidth || crop.x * 2 + crop.width);
  const sy = h / (heatmap.imageHeight || crop.y * 2 + crop.height);
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(small, x + crop.x * sx, y + crop.y * sy, crop.width * sx, crop.height * sy);
  ctx.restore();
}

/** A perceptual blue-to-yellow-to-red ramp, t in [0, 1]. */
export function colormap(t) {
  const stops = [
    [0.0, [48, 18, 59]],
    [0.25, [40, 120, 220]],
    [0.5, [40, 200, 120]],
    [0.75, [250, 200, 40]],
    [1.0, [200, 30, 20]],
  ];
  t = Math.min(1, Math.max(0, t));
  for (let i = 1; i < stops.length; i++) {
    if (t <= stops[i][0]) {
      const [t0, c0] = stops[i - 1];
      const [t1, c1] = stops[i];
      const f = (t - t0) / (t1 - t0);
      return c0.map((v, k) => Math.round(v + (c1[k] - v) * f));
    }
  }
  return stops[stops.length - 1][1];
}

/** Whether this browser offers a WebGPU adapter (the model falls back to the CPU otherwise). */
export async function hasWebGPU() {
  if (!navigator.gpu) return false;
  try {
    return !!(await navigator.gpu.requestAdapter());
  } catch {
    return false;
  }
}
