// bench.js: the browser benchmark page (bench.html). bit50 (through its public API, bit50.js)
// against ONNX Runtime Web's WebGPU and wasm providers, on the same photo in the same session.
//
// For each backend, one after the other (never concurrently): load (download + build,
// pipelines included), first prediction, then warm runs (median, min, max). bit50 is timed
// around `model.classify(photoBlob)` as a page sees it (worker round trip, PNG decode and
// preprocessing included); ORT around `session.run` on the already preprocessed tensor that
// tools/export_onnx.py wrote with transformers' processor (ORT gets no decode or preprocessing
// cost). Logits: bit50's come from classify({topK: classes}) (all classes), compared with
// ORT's and with the reference logits in reference.json.
//
// Results: a table on the page, `window.benchResult` (JSON) and `window.benchText` (plain
// text), and body[data-state] = 'done' | 'error'.
import { load } from './bit50.js';

const q = new URLSearchParams(location.search);
const cfg = {
  model: q.get('model') || 'models/bit50-seed0/',
  onnx: q.get('onnx') || 'models/onnx/bit50-seed0/',
  photo: q.get('photo') || '/photos/cat.png',
  ort: q.get('ort') || '/ort/',
  runs: Math.max(1, Number(q.get('runs') || 3)),
  warmup: Math.max(0, Number(q.get('warmup') ?? 0)),
  budgetMs: Number(q.get('budget') || 300) * 1000,
  compat: q.get('compat') === '1',
  only: (q.get('only') || 'ours-webgpu,ort-webgpu,ort-wasm,ours-cpu').split(',').map((s) => s.trim()).filter(Boolean),
  autorun: q.get('autorun') !== '0',
};
/** Spec §7: BiT-50 at 448x448 is 32.7 GFLOP (scaled by area for other sizes). */
const GFLOP_448 = 32.7;

const $ = (id) => document.getElementById(id);
const t0page = performance.now();
function log(msg) {
  const line = `[bench ${((performance.now() - t0page) / 1000).toFixed(1)}s] ${msg}`;
  console.log(line);
  $('log').textContent += line + '\n';
}

// ---- WebGPU compatibility mode (ANGLE/lavapipe): every adapter request asks for it --------
const SHIM = `
const gpu = self.navigator.gpu;
if (gpu) {
  const request = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = async (options = {}) => {
    const a = await request({ ...options, featureLevel: 'compatibility' });
    const i = a && a.info;
    console.log('[bench] ' + (self.name || 'page') + ' requestAdapter(compatibility): ' + (a ? [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') + (a.featureLevel ? ' featureLevel ' + a.featureLevel : '') + (i.isFallbackAdapter ? ' (fallback)' : '') : 'null'));
    return a;
  };
}
`;

function installCompat() {
  // The page (ORT runs here) ...
  (0, eval)(SHIM);
  // ... and bit50's worker: bit50.js offers no adapter option, so wrap its worker's start so that
  // the shim runs (as a module imported first) before bit50-worker.js.
  const shimUrl = URL.createObjectURL(new Blob([SHIM], { type: 'text/javascript' }));
  const workerUrl = new URL('./bit50-worker.js', import.meta.url).href;
  const NativeWorker = globalThis.Worker;
  globalThis.Worker = class extends NativeWorker {
    constructor(url, options) {
      if (options?.name === 'bit50') {
        const src = `import ${JSON.stringify(shimUrl)};\nimport ${JSON.stringify(workerUrl)};\n`;
        url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
      }
      super(url, options);
    }
  };
}

async function adapterInfo() {
  if (!navigator.gpu) return { available: false };
  const a = await navigator.gpu.requestAdapter().catch(() => null);
  if (!a) return { available: false };
  const i = a.info || {};
  return {
    available: true,
    vendor: i.vendor,
    architecture: i.architecture,
    description: i.description,
    fallback: !!(i.isFallbackAdapter ?? a.isFallbackAdapter),
    featureLevel: a.featureLevel || (cfg.compat ? 'compatibility' : 'core'),
    timestampQuery: a.features.has('timestamp-query'),
    shaderF16: a.features.has('shader-f16'),
  };
}

// ---- statistics ---------------------------------------------------------------------------
function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1], n: s.length };
}

function maxDiff(a, b) {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/** Load, first run, then warm runs within the budget; `open` resolves {run, close, info}. */
async function measure(name, open) {
  log(`${name}: loading`);
  const t0 = performance.now();
  const backend = await open();
  const loadMs = performance.now() - t0;
  log(`${name}: loaded in ${(loadMs / 1000).toFixed(2)} s${backend.info ? ` (${backend.info})` : ''}`);
  const timed = async () => {
    const t = performance.now();
    const logits = await backend.run();
    return [performance.now() - t, logits];
  };
  const [firstMs, logits] = await timed();
  log(`${name}: first prediction ${(firstMs / 1000).toFixed(2)} s, top-1 ${argmax(logits)}`);
  for (let i = 0; i < cfg.warmup; i++) {
    const [ms] = await timed();
    log(`${name}: warm-up ${i + 1}: ${(ms / 1000).toFixed(2)} s`);
  }
  const warm = [];
  const tw = performance.now();
  for (let i = 0; i < cfg.runs; i++) {
    if (i > 0 && performance.now() - tw > cfg.budgetMs) {
      log(`${name}: time budget spent after ${i} warm runs`);
      break;
    }
    const [ms] = await timed();
    warm.push(ms);
    log(`${name}: warm run ${i + 1}: ${(ms / 1000).toFixed(2)} s`);
  }
  // Per-layer GPU time, where the backend can tell (ours on WebGPU with timestamp queries).
  const layers = backend.profile ? await backend.profile() : null;
  if (layers) {
    const total = layers.reduce((s, l) => s + l.ms, 0);
    log(`${name}: GPU time per layer (timestamp queries, one run: ${(total / 1000).toFixed(2)} s)`);
    for (const l of layers) log(`${name}:   ${(l.ms / 1000).toFixed(3).padStart(8)} s ${((100 * l.ms) / total).toFixed(1).padStart(5)}%  ${l.layer}`);
  }
  await backend.close();
  return { name, info: backend.info, loadMs, firstMs, warm, ...stats(warm), layers, logits: Array.from(logits) };
}

// ---- the contenders -------------------------------------------------------------------------
function ours(backend, photo) {
  return async () => {
    const model = await load(cfg.model, { backend });
    const classes = model.info.classes;
    return {
      info: `${model.info.backend}: ${model.info.adapter}${model.info.fallback_reason ? `, ${model.info.fallback_reason}` : ''}`,
      backend: model.info.backend,
      async run() {
        const { top } = await model.classify(photo, { topK: classes });
        const logits = new Float32Array(classes);
        for (const p of top) logits[p.index] = p.logit;
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
    ortModule = await import(`${cfg.ort}ort.webgpu.min.mjs`);
    ortModule.env.wasm.wasmPaths = cfg.ort;
    ortModule.env.wasm.numThreads = 1; // no crossOriginIsolated here: one thread, as bit50's CPU path
    ortModule.env.logLevel = 'error';
  }
  return ortModule;
}

function ortBackend(ep, ref, pixels) {
  return async () => {
    const ort = await ortRuntime();
    const res = await fetch(`${cfg.onnx}${ref.model}`);
    if (!res.ok) throw new Error(`${cfg.onnx}${ref.model}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], graphOptimizationLevel: 'all' });
    const input = new ort.Tensor('float32', pixels, [1, 3, ref.size, ref.size]);
    return {
      info: `onnxruntime-web ${ort.env.versions?.web || ''} ${ep} provider${ep === 'wasm' ? `, ${ort.env.wasm.numThreads} thread, SIMD` : ''}`,
      async run() {
        const out = await session.run({ [ref.input]: input });
        const t = out[ref.output];
        const data = t.location === 'cpu' || !t.location ? t.data : await t.getData();
        return Float32Array.from(data);
      },
      close: () => session.release(),
    };
  };
}

// ---- report -------------------------------------------------------------------------------
const fmt = (ms) => (ms == null || Number.isNaN(ms) ? '–' : (ms / 1000).toFixed(3));

function report(result) {
  const { rows, gflop } = result;
  const by = Object.fromEntries(rows.filter((r) => !r.error).map((r) => [r.name, r]));
  const lines = [];
  const head = ['backend', 'load s', 'first s', 'warm median s', 'min s', 'max s', 'runs', 'GFLOP/s', 'first/warm'];
  const table = [head];
  for (const r of rows) {
    if (r.error) table.push([r.name, `ERROR: ${r.error}`]);
    else table.push([r.name, fmt(r.loadMs), fmt(r.firstMs), fmt(r.median), fmt(r.min), fmt(r.max), String(r.n), (gflop / (r.median / 1000)).toFixed(2), (r.firstMs / r.median).toFixed(2)]);
  }
  const widths = head.map((_, i) => Math.max(...table.map((row) => (row.length > 1 || i === 0 ? (row[i] || '').length : 0))));
  for (const row of table) {
    if (row.length === 2 && row[1].startsWith('ERROR')) lines.push(`${row[0].padEnd(widths[0])}  ${row[1]}`);
    else lines.push(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  }
  lines.push('');
  const ratio = (a, b, what, target) => {
    if (by[a] && by[b]) {
      const x = by[b].median / by[a].median;
      lines.push(`${what}: ${x.toFixed(2)}x [${x >= target ? 'met' : 'MISSED'}] (${b} ${fmt(by[b].median)} s / ${a} ${fmt(by[a].median)} s)`);
      result.ratios[`${b}/${a}`] = x;
    }
  };
  ratio('ours-webgpu', 'ort-webgpu', 'warm speed-up of ours-webgpu over ORT webgpu (target >= 2)', 2);
  // Backend 'auto' times our two paths at load and keeps the faster: what a page gets here.
  const auto = ['ours-webgpu', 'ours-cpu'].filter((n) => by[n]).sort((x, y) => by[x].median - by[y].median)[0];
  if (auto) by[`ours-auto (= ${auto})`] = by[auto];
  ratio(`ours-auto (= ${auto})`, 'ort-wasm', `warm speed-up of what backend 'auto' runs over ORT wasm (target > 1 where WebGPU is a software fallback; adapter flagged fallback: ${result.adapter.fallback})`, 1);
  ratio('ours-cpu', 'ort-wasm', 'warm speed-up of ours-cpu over ORT wasm (target > 1)', 1);
  const o = by['ours-webgpu'];
  if (o) lines.push(`ours-webgpu first/warm: ${(o.firstMs / o.median).toFixed(2)} [${o.firstMs / o.median <= 1.5 ? 'met' : 'MISSED'}] (target <= 1.5)`);
  lines.push('');
  const refs = { 'onnxruntime CPU (python)': result.reference.logits_onnxruntime, 'transformers (f32 weights)': result.reference.logits_transformers };
  const maxAbs = Math.max(...result.reference.logits_onnxruntime.map(Math.abs));
  lines.push(`logits (max |logit| ${maxAbs.toFixed(3)}; reference top-1 ${argmax(result.reference.logits_onnxruntime)}):`);
  const names = rows.filter((r) => !r.error).map((r) => r.name);
  for (let i = 0; i < names.length; i++) {
    const a = by[names[i]];
    const parts = [];
    for (let j = i + 1; j < names.length; j++) parts.push(`vs ${names[j]} ${maxDiff(a.logits, by[names[j]].logits).toExponential(2)}`);
    for (const [k, v] of Object.entries(refs)) if (v) parts.push(`vs ${k} ${maxDiff(a.logits, v).toExponential(2)}`);
    lines.push(`  ${names[i]} (top-1 ${argmax(a.logits)}): max |diff| ${parts.join(', ')}`);
    result.logitDiffs[names[i]] = parts;
  }
  return lines.join('\n');
}

function renderTable(result) {
  const t = document.createElement('table');
  const head = ['backend', 'load s', 'first s', 'warm median s', 'min s', 'max s', 'runs', 'GFLOP/s'];
  t.innerHTML = `<tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr>`;
  for (const r of result.rows) {
    const tr = document.createElement('tr');
    const cells = r.error ? [r.name, `error: ${r.error}`] : [r.name, fmt(r.loadMs), fmt(r.firstMs), fmt(r.median), fmt(r.min), fmt(r.max), r.n, (result.gflop / (r.median / 1000)).toFixed(2)];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      if (r.error) {
        td.className = 'err';
        if (c !== r.name) td.colSpan = head.length - 1;
      }
      tr.append(td);
    }
    t.append(tr);
  }
  $('tables').replaceChildren(t);
}

async function main() {
  document.body.dataset.state = 'running';
  $('status').textContent = 'running…';
  if (cfg.compat) installCompat();
  const adapter = await adapterInfo();
  log(`config ${JSON.stringify(cfg)}`);
  log(`WebGPU adapter: ${JSON.stringify(adapter)}`);
  const ref = await (await fetch(`${cfg.onnx}reference.json`)).json();
  const stem = cfg.photo.split('/').pop().replace(/\.[^.]+$/, '');
  const refImage = ref.images[stem];
  if (!refImage?.pixels) throw new Error(`${cfg.onnx}reference.json has no preprocessed pixels for ${stem}: run tools/export_onnx.py --image ${cfg.photo}`);
  const pixels = new Float32Array(await (await fetch(`${cfg.onnx}${refImage.pixels}`)).arrayBuffer());
  const photoRes = await fetch(cfg.photo);
  if (!photoRes.ok) throw new Error(`${cfg.photo}: HTTP ${photoRes.status}`);
  const photo = await photoRes.blob();
  const result = {
    config: cfg,
    adapter,
    userAgent: navigator.userAgent,
    crossOriginIsolated: self.crossOriginIsolated,
    hardwareConcurrency: navigator.hardwareConcurrency,
    size: ref.size,
    gflop: GFLOP_448 * (ref.size / 448) ** 2,
    reference: refImage,
    rows: [],
    ratios: {},
    logitDiffs: {},
  };
  const contenders = {
    'ours-webgpu': ours('webgpu', photo),
    'ort-webgpu': ortBackend('webgpu', ref, pixels),
    'ort-wasm': ortBackend('wasm', ref, pixels),
    'ours-cpu': ours('cpu', photo),
  };
  for (const name of cfg.only) {
    if (!contenders[name]) throw new Error(`unknown backend ${name} (known: ${Object.keys(contenders).join(', ')})`);
    try {
      result.rows.push(await measure(name, contenders[name]));
    } catch (err) {
      log(`${name}: FAILED: ${err.message || err}`);
      result.rows.push({ name, error: String(err.message || err).split('\n')[0].slice(0, 300) });
    }
    renderTable(result);
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
  main().catch((err) => {
    log(`FAILED: ${err.stack || err}`);
    window.benchError = String(err.message || err);
    $('status').textContent = 'failed';
    document.body.dataset.state = 'error';
  });
}

$('run').addEventListener('click', start);
if (cfg.autorun) start();
