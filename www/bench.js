// bench.js: the browser benchmark page (bench.html). bit50, through its public API (bit50.js),
// on WebGPU and on its CPU path; and, where tools/bench-browser.mjs sets it up (the ONNX export
// and onnxruntime-web), ONNX Runtime Web's WebGPU and wasm providers on the same weights, photo
// and browser session.
//
// For each backend, one after the other: load (download + build, pipelines included), first
// prediction, then warm runs (median, min, max); bit50 is timed around `model.classify(photo)`
// as a page sees it (worker round trip, decoding and preprocessing included), ORT around
// `session.run` on the preprocessed tensor tools/export_onnx.py wrote. Then the time from
// nothing to the first prediction: a cold visit (bit50's Cache Storage emptied, ORT's model
// fetched past the HTTP cache) and a warm visit (weights cached).
//
// On the served demo site (./build.sh serve) the defaults work: the served model (as
// models/index.json names it), a sample photo, bit50 alone. Whatever is missing, the page says
// what to run. Results: a table, `window.benchResult` (JSON), `window.benchText` (plain text),
// body[data-state] = 'done' | 'error'.
import { load } from './bit50.js';

const q = new URLSearchParams(location.search);
const cfg = {
  model: q.get('model'),
  onnx: q.get('onnx'),
  photo: q.get('photo') || 'samples/cat.png',
  ort: q.get('ort') || '/ort/',
  runs: Math.max(1, Number(q.get('runs') || 3)),
  budgetMs: Number(q.get('budget') || 300) * 1000,
  batch: Math.max(1, Number(q.get('batch') || 1)),
  threads: (q.get('threads') || '1').split(',').map(Number).filter((n) => n >= 1),
  ortThreads: Math.max(1, Number(q.get('ortThreads') || 1)),
  poolPhotos: Math.max(2, Number(q.get('poolPhotos') || 8)),
  compat: q.get('compat') === '1',
  only: (q.get('only') || 'ours-webgpu,ours-cpu,ort-webgpu,ort-wasm,cold-start').split(',').map((s) => s.trim()).filter(Boolean),
  workers: Math.max(2, Number(q.get('workers') || 2)),
  autorun: q.get('autorun') !== '0',
};
const CACHE = 'bit50-weights-v1';

const $ = (id) => document.getElementById(id);
const t0page = performance.now();
function log(msg) {
  const line = `[bench ${((performance.now() - t0page) / 1000).toFixed(1)}s] ${msg}`;
  console.log(line);
  $('log').textContent += line + '\n';
}

/** A problem with the set-up: what is missing and what to run. */
class Missing extends Error {}

// ---- WebGPU compatibility mode (ANGLE/lavapipe): every adapter request asks for it --------
const SHIM = `
const gpu = self.navigator.gpu;
if (gpu) {
  const request = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = (options = {}) => request({ ...options, featureLevel: 'compatibility' });
}
`;

function installCompat() {
  // The page (ORT runs here) ...
  (0, eval)(SHIM);
  // ... and bit50's worker: wrap its start so that the shim runs (a module imported first)
  // before bit50-worker.js.
  const shimUrl = URL.createObjectURL(new Blob([SHIM], { type: 'text/javascript' }));
  const workerUrl = new URL('./bit50-worker.js', import.meta.url).href;
  const NativeWorker = globalThis.Worker;
  globalThis.Worker = class extends NativeWorker {
    constructor(url, options) {
      if (options?.name === 'bit50') url = URL.createObjectURL(new Blob([`import ${JSON.stringify(shimUrl)};\nimport ${JSON.stringify(workerUrl)};\n`], { type: 'text/javascript' }));
      super(url, options);
    }
  };
}

async function adapterInfo() {
  const a = navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null));
  if (!a) return { available: false };
  const i = a.info || {};
  return {
    available: true,
    description: [i.vendor, i.architecture, i.description].filter(Boolean).join(' '),
    fallback: !!(i.isFallbackAdapter ?? a.isFallbackAdapter),
    featureLevel: a.featureLevel || (cfg.compat ? 'compatibility' : 'core'),
    features: ['shader-f16', 'subgroups', 'timestamp-query'].filter((f) => a.features.has(f)),
  };
}

// ---- statistics ---------------------------------------------------------------------------
function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1], n: s.length };
}

const maxDiff = (a, b) => a.reduce((d, x, i) => Math.max(d, Math.abs(x - b[i])), 0);
const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/** Load, first run, then warm runs within the budget; `open` resolves {run, close, info}. */
async function measure(name, open) {
  log(`${name}: loading`);
  const t0 = performance.now();
  const backend = await open();
  const loadMs = performance.now() - t0;
  log(`${name}: loaded in ${(loadMs / 1000).toFixed(2)} s (${backend.info})`);
  const timed = async () => {
    const t = performance.now();
    const logits = await backend.run();
    return [performance.now() - t, logits];
  };
  const [firstMs, logits] = await timed();
  log(`${name}: first prediction ${(firstMs / 1000).toFixed(2)} s, top-1 ${argmax(logits)}`);
  const warm = [];
  const tw = performance.now();
  for (let i = 0; i < cfg.runs; i++) {
    if (i > 0 && performance.now() - tw > cfg.budgetMs) {
      log(`${name}: time budget spent after ${i} warm runs`);
      break;
    }
    const [ms] = await timed();
    warm.push(ms);
    log(`${name}: warm run ${i + 1}: ${(ms / 1000).toFixed(3)} s`);
  }
  // Per-layer GPU time, where the backend can tell (ours on WebGPU with timestamp queries).
  const layers = backend.profile ? await backend.profile() : null;
  if (layers) {
    const total = layers.reduce((s, l) => s + l.ms, 0);
    log(`${name}: GPU time per layer (timestamp queries, one image: ${(total / 1000).toFixed(3)} s)`);
    for (const l of layers) log(`${name}:   ${(l.ms / 1000).toFixed(3).padStart(8)} s ${((100 * l.ms) / total).toFixed(1).padStart(5)}%  ${l.layer}`);
  }
  await backend.close();
  return { name, info: backend.info, loadMs, firstMs, warm, ...stats(warm), images: backend.images || 1, layers, logits: Array.from(logits) };
}

// ---- the contenders -------------------------------------------------------------------------
function ours(backend, photo, threads = 1) {
  return async () => {
    const model = await load(cfg.model, { backend, batch: cfg.batch, threads });
    const i = model.info;
    const classes = i.classes;
    const photos = Array.from({ length: cfg.batch }, () => photo);
    return {
      info: `${i.backend}: ${i.adapter}${i.backend === 'webgpu' ? `, ${i.kernels} kernels, ${i.precision}${i.subgroups ? ', subgroups' : ''}, batch ${i.batch}` : `, ${i.wasm}, ${i.threads} thread${i.threads > 1 ? 's' : ''}${i.threadsReason ? ` (${i.threadsReason})` : ''}`}${i.fallback_reason ? ` (${i.fallback_reason})` : ''}`,
      images: cfg.batch,
      async run() {
        const results = await model.classify(photos, { topK: classes });
        if (results[0].error) throw results[0].error;
        const logits = new Float32Array(classes);
        for (const p of results[0].top) logits[p.index] = p.logit;
        return logits;
      },
      profile: () => model.profile(photo),
      close: () => model.dispose(),
    };
  };
}

let ortModule = null;
async function ortRuntime() {
  if (!ortModule) {
    try {
      ortModule = await import(`${cfg.ort}ort.webgpu.min.mjs`);
    } catch {
      throw new Missing(`onnxruntime-web is not served at ${cfg.ort}: run node tools/bench-browser.mjs, which serves it from node_modules (npm install)`);
    }
    ortModule.env.wasm.wasmPaths = cfg.ort;
    // Set once per page: ORT starts its wasm backend (and its threads) once.
    ortModule.env.wasm.numThreads = cfg.ortThreads;
    ortModule.env.logLevel = 'error';
  }
  return ortModule;
}

async function fetchOnnx(ref, cache) {
  const res = await fetch(`${cfg.onnx}${ref.model}`, { cache });
  if (!res.ok) throw new Missing(`${cfg.onnx}${ref.model}: HTTP ${res.status}; run tools/export_onnx.py (see tools/bench-browser.mjs --help)`);
  return new Uint8Array(await res.arrayBuffer());
}

function ortBackend(ep, ref, pixels, cache = 'default') {
  return async () => {
    const ort = await ortRuntime();
    const session = await ort.InferenceSession.create(await fetchOnnx(ref, cache), { executionProviders: [ep], graphOptimizationLevel: 'all' });
    const input = new ort.Tensor('float32', pixels, [1, 3, ref.size, ref.size]);
    return {
      info: `onnxruntime-web ${ort.env.versions?.web || ''} ${ep} provider${ep === 'wasm' ? `, ${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads > 1 ? 's' : ''}, SIMD` : ''}`,
      async run() {
        const out = await session.run({ [ref.input]: input });
        const t = out[ref.output];
        return Float32Array.from(t.location === 'cpu' || !t.location ? t.data : await t.getData());
      },
      close: () => session.release(),
    };
  };
}

/**
 * Several photos at once on the CPU path where the page is not isolated (one thread): one
 * worker against a pool of `cfg.workers`, each timed around one classify() of all the photos
 * after a warm-up call (which also lets the pool's workers finish loading).
 */
async function poolRows(photo) {
  const photos = Array.from({ length: cfg.poolPhotos }, () => photo);
  const rows = [];
  for (const workers of [1, cfg.workers]) {
    const model = await load(cfg.model, { backend: 'cpu', threads: 1, workers });
    await model.classify(photos);
    const times = [];
    for (let i = 0; i < Math.max(1, Math.min(cfg.runs, 3)); i++) {
      const t = performance.now();
      await model.classify(photos);
      times.push(performance.now() - t);
    }
    const info = model.info;
    model.dispose();
    const name = `ours-cpu ${cfg.poolPhotos} photos, ${info.workers} worker${info.workers > 1 ? 's' : ''}`;
    log(`${name}: ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s (isolated: ${self.crossOriginIsolated}, threads ${info.threads})`);
    rows.push({ name, info: `${info.workers} workers, ${info.threads} thread each`, loadMs: NaN, firstMs: NaN, warm: times, ...stats(times), images: cfg.poolPhotos, logits: [] });
  }
  return rows;
}

/**
 * From nothing to the first prediction: load, then classify once. Cold: bit50's Cache Storage
 * emptied first (so the weights download), ORT's model fetched with {cache: 'reload'}.
 */
async function coldStart(name, open, cold) {
  if (cold) await caches.delete(CACHE).catch(() => {});
  const t0 = performance.now();
  const backend = await open(cold);
  await backend.run();
  const ms = performance.now() - t0;
  await backend.close();
  log(`${name}, ${cold ? 'cold' : 'warm'} visit: first prediction after ${(ms / 1000).toFixed(2)} s`);
  return ms;
}

// ---- report -------------------------------------------------------------------------------
const fmt = (ms) => (ms == null || Number.isNaN(ms) ? '–' : (ms / 1000).toFixed(3));

function report(result) {
  const { rows, gflop } = result;
  const by = Object.fromEntries(rows.filter((r) => !r.error).map((r) => [r.name, r]));
  const lines = [];
  const head = ['backend', 'load s', 'first s', 'warm median s', 'min s', 'max s', 'runs', 'images/s', 'GFLOP/s'];
  const table = [head];
  for (const r of rows) {
    if (r.error) table.push([r.name, `${r.missing ? 'not run' : 'ERROR'}: ${r.error}`]);
    else table.push([r.name, fmt(r.loadMs), fmt(r.firstMs), fmt(r.median), fmt(r.min), fmt(r.max), String(r.n), (r.images / (r.median / 1000)).toFixed(2), ((r.images * gflop) / (r.median / 1000)).toFixed(2)]);
  }
  const widths = head.map((_, i) => Math.max(...table.filter((row) => row.length > 2 || i === 0).map((row) => (row[i] || '').length)));
  for (const row of table) lines.push(row.length === 2 ? `${row[0].padEnd(widths[0])}  ${row[1]}` : row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  if (result.coldStart.length) {
    lines.push('', 'time to the first prediction (load + one classification)');
    for (const c of result.coldStart) lines.push(`  ${c.name.padEnd(16)} cold visit ${fmt(c.coldMs).padStart(8)} s   warm visit ${fmt(c.warmMs).padStart(8)} s`);
  }
  lines.push('');
  const ratio = (a, b, what) => {
    if (by[a] && by[b]) {
      const x = by[b].median / by[a].median;
      lines.push(`${what}: ${x.toFixed(2)}x (${b} ${fmt(by[b].median)} s / ${a} ${fmt(by[a].median)} s)`);
      result.ratios[`${b}/${a}`] = x;
    }
  };
  ratio('ours-webgpu', 'ort-webgpu', 'warm speed-up of ours-webgpu over ORT webgpu');
  ratio('ours-cpu', 'ort-wasm', 'warm speed-up of ours-cpu over ORT wasm');
  const names = rows.filter((r) => !r.error && r.logits.length).map((r) => r.name);
  if (names.length) lines.push(`logits (max |diff| between backends${result.reference ? ' and the reference' : ''}):`);
  const refs = result.reference ? { 'onnxruntime CPU (python)': result.reference.logits_onnxruntime, 'transformers (f32)': result.reference.logits_transformers } : {};
  for (let i = 0; i < names.length; i++) {
    const a = by[names[i]];
    const parts = [];
    for (let j = i + 1; j < names.length; j++) parts.push(`vs ${names[j]} ${maxDiff(a.logits, by[names[j]].logits).toExponential(2)}`);
    for (const [k, v] of Object.entries(refs)) if (v) parts.push(`vs ${k} ${maxDiff(a.logits, v).toExponential(2)}`);
    lines.push(`  ${names[i]} (top-1 ${argmax(a.logits)})${parts.length ? `: ${parts.join(', ')}` : ''}`);
  }
  if (result.notes.length) lines.push('', ...result.notes);
  return lines.join('\n');
}

function renderTable(result) {
  const t = document.createElement('table');
  const head = ['backend', 'load s', 'first s', 'warm median s', 'min s', 'max s', 'runs', 'images/s'];
  const row = (cells, cls) => {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement(cls === 'head' ? 'th' : 'td');
      td.textContent = c;
      if (cls === 'err' && i > 0) {
        td.className = 'err';
        td.colSpan = head.length - 1;
      }
      tr.append(td);
    });
    t.append(tr);
  };
  row(head, 'head');
  for (const r of result.rows) {
    if (r.error) row([r.name, `${r.missing ? 'not run' : 'error'}: ${r.error}`], 'err');
    else row([r.name, fmt(r.loadMs), fmt(r.firstMs), fmt(r.median), fmt(r.min), fmt(r.max), r.n, (r.images / (r.median / 1000)).toFixed(2)]);
  }
  for (const c of result.coldStart) row([`${c.name}: first prediction`, `cold visit ${fmt(c.coldMs)} s`, `warm visit ${fmt(c.warmMs)} s`]);
  $('tables').replaceChildren(t);
}

/** The model the served site uses: models/index.json, written by ./build.sh serve. */
async function defaultModel() {
  const res = await fetch('models/index.json', { cache: 'no-cache' }).catch(() => null);
  if (!res?.ok) throw new Missing('no model is named: run ./build.sh serve (it writes www/models/index.json), or give ?model=URL');
  return new URL((await res.json()).default, new URL('models/', location.href)).href;
}

async function main() {
  document.body.dataset.state = 'running';
  $('status').textContent = 'running…';
  if (cfg.compat) installCompat();
  cfg.model ||= await defaultModel();
  const adapter = await adapterInfo();
  log(`config ${JSON.stringify(cfg)}`);
  log(`WebGPU adapter: ${JSON.stringify(adapter)}`);
  const photoRes = await fetch(cfg.photo).catch(() => null);
  if (!photoRes?.ok) throw new Missing(`the photo ${cfg.photo} is not served: run ./build.sh serve (it copies the sample photos to www/samples/), or give ?photo=URL`);
  const photo = await photoRes.blob();
  const result = {
    config: cfg,
    adapter,
    userAgent: navigator.userAgent,
    crossOriginIsolated: self.crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency,
    rows: [],
    coldStart: [],
    ratios: {},
    notes: [],
  };
  // ORT only where the ONNX export is given (tools/bench-browser.mjs passes ?onnx=).
  let ref = null;
  let pixels = null;
  if (cfg.onnx) {
    const res = await fetch(`${cfg.onnx}reference.json`).catch(() => null);
    if (!res?.ok) throw new Missing(`${cfg.onnx}reference.json is missing: run tools/export_onnx.py (see tools/bench-browser.mjs --help)`);
    ref = await res.json();
    const stem = cfg.photo.split('/').pop().replace(/\.[^.]+$/, '');
    result.reference = ref.images[stem];
    if (!result.reference?.pixels) throw new Missing(`${cfg.onnx}reference.json has no preprocessed pixels for ${stem}: run tools/export_onnx.py --image ${cfg.photo}`);
    pixels = new Float32Array(await (await fetch(`${cfg.onnx}${result.reference.pixels}`)).arrayBuffer());
  } else {
    result.notes.push('ONNX Runtime Web was not run: node tools/bench-browser.mjs sets it up (the ONNX export and onnxruntime-web) and compares.');
  }
  const probe = await load(cfg.model, { backend: 'cpu' });
  result.size = probe.info.image_size;
  result.gflop = probe.info.gflop;
  probe.dispose();
  const threadsName = (base, n, many) => (many ? `${base}-${n}t` : base);
  const contenders = {
    'ours-webgpu': ours('webgpu', photo),
    'ort-webgpu': ref && ortBackend('webgpu', ref, pixels),
  };
  for (const t of cfg.threads) contenders[threadsName('ours-cpu', t, cfg.threads.length > 1)] = ours('cpu', photo, t);
  contenders[threadsName('ort-wasm', cfg.ortThreads, cfg.ortThreads > 1)] = ref && ortBackend('wasm', ref, pixels);
  // 'ours-cpu' and 'ort-wasm' in `only` name every thread count asked for.
  const only = cfg.only.flatMap((n) => (['ours-cpu', 'ort-wasm'].includes(n) ? Object.keys(contenders).filter((k) => k.startsWith(n)) : [n]));
  for (const name of only.filter((n) => n !== 'cold-start' && n !== 'pool')) {
    if (!(name in contenders)) throw new Error(`unknown backend ${name} (known: ${Object.keys(contenders).join(', ')}, pool, cold-start)`);
    if (!contenders[name]) continue;
    try {
      result.rows.push(await measure(name, contenders[name]));
    } catch (err) {
      log(`${name}: FAILED: ${err.message || err}`);
      result.rows.push({ name, error: String(err.message || err).split('\n')[0].slice(0, 300), missing: err instanceof Missing });
    }
    renderTable(result);
  }
  if (cfg.only.includes('pool')) {
    result.rows.push(...(await poolRows(photo)));
    renderTable(result);
  }
  if (cfg.only.includes('cold-start')) {
    const starts = { 'ours (auto)': (cold) => ours('auto', photo)() };
    if (ref) {
      starts['ort-webgpu'] = (cold) => ortBackend('webgpu', ref, pixels, cold ? 'reload' : 'force-cache')();
      starts['ort-wasm'] = (cold) => ortBackend('wasm', ref, pixels, cold ? 'reload' : 'force-cache')();
    }
    for (const [name, open] of Object.entries(starts)) {
      try {
        result.coldStart.push({ name, coldMs: await coldStart(name, open, true), warmMs: await coldStart(name, open, false) });
      } catch (err) {
        log(`${name} cold start: FAILED: ${err.message || err}`);
      }
      renderTable(result);
    }
  }
  const text = report(result);
  log('\n' + text);
  window.benchText = text;
  window.benchResult = result;
  $('status').textContent = 'done';
  document.body.dataset.state = 'done';
}

function start() {
  $('run').disabled = true;
  main()
    .catch((err) => {
      log(err instanceof Missing ? `Cannot run: ${err.message}` : `FAILED: ${err.stack || err}`);
      window.benchError = String(err.message || err);
      $('status').textContent = err instanceof Missing ? `cannot run: ${err.message}` : 'failed';
      document.body.dataset.state = 'error';
    })
    .finally(() => {
      $('run').disabled = false;
    });
}

$('run').addEventListener('click', start);
if (cfg.autorun) start();
