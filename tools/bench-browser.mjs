#!/usr/bin/env node
// Drives www/bench.html in headless Chromium: bit50 vs ONNX Runtime Web (WebGPU and wasm
// providers), same photo, same browser session. A tool, not a test: it prints a table and
// ratios and writes target/bench/browser-<adapter>-<model>.json.
//
//   node tools/bench-browser.mjs [--adapter swiftshader|compat] [--runs 3] [--batch 1]
//        [--threads 1,2] [--budget 300] [--only ours-webgpu,ours-cpu,ort-webgpu,ort-wasm,pool,cold-start]
//        [--model models/bit50-seed0/] [--onnx models/onnx/bit50-seed0/] [--photo cat.png]
//        [--timeout 1200]
//
// --adapter swiftshader: Chromium's default software WebGPU adapter (--enable-unsafe-webgpu).
// --adapter compat: WebGPU compatibility mode, Dawn on OpenGL ES on ANGLE on lavapipe
//   (--use-angle=vulkan --use-webgpu-adapter=opengles, VK_ICD_FILENAMES=lavapipe); the page
//   asks every adapter request for featureLevel 'compatibility' (see ../shared/webgpu-here.md).
// --budget: seconds of warm runs per backend (at least one warm run always happens).
// --batch: images per classify call for bit50 (one GPU submission per batch).
// --threads: thread counts for the CPU paths (ours and ORT's wasm provider), on a
//   cross-origin-isolated page; 'pool' times 8 photos on a page that is not isolated, one
//   worker against two.
// --timeout: the whole run, seconds; the browser is closed and the exit code is 2 when it expires.
//
// Before the first run (see README or the top of tools/export_onnx.py):
//   ./build.sh                                  # www/pkg
//   ./target/release/bit50 random-model --out target/bench/bit50-seed0 --seed 0
//   ./target/release/bit50 convert target/bench/bit50-seed0 --out www/models/bit50-seed0 --dtype f16
//   /work/venv/bin/python tools/export_onnx.py target/bench/bit50-seed0 --match-f16 --image tests/fixtures/photos/cat.png
//   npm install                                 # playwright-core, onnxruntime-web
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './serve.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WWW = path.join(ROOT, 'www');
const ORT_DIST = path.join(ROOT, 'node_modules/onnxruntime-web/dist');
const PHOTOS = path.join(ROOT, 'tests/fixtures/photos');
const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';

const BASE_FLAGS = [
  '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu',
];

function parseArgs(argv) {
  const opts = {
    adapter: 'swiftshader', runs: 3, budget: 300, only: null, timeout: 1200, batch: 1, threads: '1,2',
    model: 'models/bit50-seed0/', onnx: 'models/onnx/bit50-seed0/', photo: 'cat.png',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const key = a.replace(/^--/, '');
    if (a === '--help' || a === '-h') {
      console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\nimport ')[0].replace(/^#!.*\n/, '').replace(/^\/\/ ?/gm, ''));
      process.exit(0);
    }
    if (!a.startsWith('--') || !(key in opts)) throw new Error(`unknown argument ${a} (try --help)`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    opts[key] = typeof opts[key] === 'number' ? Number(v) : v;
    if (typeof opts[key] === 'number' && !Number.isFinite(opts[key])) throw new Error(`${a}: not a number: ${v}`);
  }
  if (!['swiftshader', 'compat'].includes(opts.adapter)) throw new Error(`--adapter must be swiftshader or compat, not ${opts.adapter}`);
  return opts;
}

function chromiumPath() {
  for (const c of [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium']) {
    if (c && fs.existsSync(c)) return c;
  }
  throw new Error("Debian's chromium is missing: apt-get install -y chromium (never a downloaded browser)");
}

function need(file, hint) {
  if (!fs.existsSync(file)) {
    console.error(`missing ${path.relative(ROOT, file)}: ${hint}`);
    process.exit(2);
  }
}

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  need(path.join(WWW, 'pkg/bit50_bg.wasm'), 'run ./build.sh');
  need(path.join(WWW, opts.model, 'manifest.json'), 'bit50 random-model + bit50 convert (see --help)');
  need(path.join(WWW, opts.onnx, 'reference.json'), 'run tools/export_onnx.py (see --help)');
  need(path.join(ORT_DIST, 'ort.webgpu.min.mjs'), 'npm install (onnxruntime-web)');
  need(path.join(PHOTOS, opts.photo), 'a photo of tests/fixtures/photos');
  if (opts.adapter === 'compat') need(LAVAPIPE_ICD, 'apt-get install -y mesa-vulkan-drivers');

  const started = Date.now();
  console.log(`bench-browser: adapter ${opts.adapter}, ${os.cpus().length} CPUs, load average ${load()}`);
  const mounts = { '/ort/': ORT_DIST, '/photos/': PHOTOS };
  const isolated = await startServer({ root: WWW, mounts });
  const plain = await startServer({ root: WWW, mounts, isolation: false });
  const args = [...BASE_FLAGS];
  const env = { ...process.env, NODEVICE_SELECT: '1' };
  if (opts.adapter === 'compat') {
    args.push('--use-angle=vulkan', '--use-webgpu-adapter=opengles');
    env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
  }
  const browser = await chromium.launch({ executablePath: chromiumPath(), args, env, ignoreDefaultArgs: ['--headless'], headless: true });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${opts.timeout} s`)), opts.timeout * 1000);
  });
  const threads = opts.threads.split(',').map(Number);
  /** One run of bench.html on `server` with `extra` query parameters; resolves its result. */
  async function session(server, extra) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('console', (m) => {
      const t = m.text();
      if (t.startsWith('[bench')) console.log(t);
      else if (m.type() === 'error' || m.type() === 'warning') console.log(`  (page ${m.type()}: ${t.slice(0, 300)})`);
    });
    page.on('pageerror', (e) => console.log(`  (page error: ${e.message})`));
    const query = new URLSearchParams({
      model: opts.model, onnx: opts.onnx, photo: `/photos/${opts.photo}`, ort: '/ort/',
      runs: String(opts.runs), budget: String(opts.budget), batch: String(opts.batch), threads: opts.threads,
      ...(opts.adapter === 'compat' ? { compat: '1' } : {}), ...extra,
    });
    await page.goto(`${server.url}bench.html?${query}`);
    await Promise.race([
      page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 0, polling: 1000 }),
      timeout,
    ]);
    const { state, text, result, error } = await page.evaluate(() => ({
      state: document.body.dataset.state, text: window.benchText, result: window.benchResult, error: window.benchError,
    }));
    await context.close();
    if (state !== 'done') throw new Error(`the page failed: ${error}`);
    return { text, result };
  }
  let code = 0;
  try {
    // On a cross-origin-isolated page: every backend, ours at each thread count, ORT at one
    // thread; then ORT again at each further thread count (it starts its threads once a page).
    const only = (opts.only || 'ours-webgpu,ours-cpu,ort-webgpu,ort-wasm,pool,cold-start').split(',');
    const main = await session(isolated, { only: only.filter((n) => n !== 'pool').join(',') });
    const result = main.result;
    for (const n of threads.filter((n) => n > 1)) {
      if (!only.includes('ort-wasm')) break;
      const extra = await session(isolated, { only: 'ort-wasm', ortThreads: String(n) });
      result.rows.push(...extra.result.rows);
    }
    // Several photos on a page that is not isolated: one worker against a pool.
    if (only.includes('pool')) result.rows.push(...(await session(plain, { only: 'pool' })).result.rows);
    const out = path.join(ROOT, 'target/bench', `browser-${opts.adapter}-${path.basename(opts.model.replace(/\/+$/, ''))}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    result.loadAverageAfter = os.loadavg();
    result.command = process.argv.slice(1).join(' ');
    fs.writeFileSync(out, JSON.stringify(result, null, 1));
    const a = result.adapter;
    console.log(`\n== ${opts.adapter}: ${a.available ? `${a.description || '(adapter info empty)'}, featureLevel ${a.featureLevel}, fallback ${a.fallback}, features ${a.features.join(' ') || 'none'}` : 'no WebGPU adapter'}; input ${result.size}x${result.size} (${result.gflop.toFixed(1)} GFLOP); ${result.hardwareConcurrency} CPUs, crossOriginIsolated ${result.crossOriginIsolated}`);
    console.log(main.text);
    console.log(`\n${summary(result.rows, threads)}`);
    console.log(`\n(wrote ${path.relative(ROOT, out)}; ${((Date.now() - started) / 1000).toFixed(0)} s; load average now ${load()})`);
  } catch (err) {
    console.error(`bench-browser: ${err.message}`);
    code = 2;
  } finally {
    clearTimeout(timer);
    await browser.close().catch(() => {});
    await isolated.close();
    await plain.close();
  }
  process.exit(code);
}

/** Every row, and the threads and workers targets of issue #10. */
function summary(rows, threads) {
  const ok = rows.filter((r) => !r.error);
  const by = Object.fromEntries(ok.map((r) => [r.name, r]));
  const s = (ms) => (ms / 1000).toFixed(3);
  const lines = ['backend                               warm median s   min s   max s  images/s'];
  for (const r of ok) lines.push(`${r.name.padEnd(36)}  ${s(r.median).padStart(12)}  ${s(r.min).padStart(6)}  ${s(r.max).padStart(6)}  ${(r.images / (r.median / 1000)).toFixed(2).padStart(8)}`);
  const n = Math.max(...threads);
  const ours1 = by['ours-cpu-1t'] || by['ours-cpu'];
  const oursN = by[`ours-cpu-${n}t`];
  const ortN = by[`ort-wasm-${n}t`];
  if (oursN && ortN) lines.push(`ours at ${n} threads / ORT wasm at ${n} threads: ${(oursN.median / ortN.median).toFixed(2)}x (target <= 0.5)`);
  if (oursN && ours1) lines.push(`ours at ${n} threads vs 1 thread: ${(ours1.median / oursN.median).toFixed(2)}x faster (target >= 1.7)`);
  const pool = ok.filter((r) => r.name.includes(' photos, '));
  if (pool.length === 2) lines.push(`${pool[1].name} vs ${pool[0].name.replace(/.* photos, /, '')}, page not isolated: ${(pool[0].median / pool[1].median).toFixed(2)}x faster (target >= 1.7)`);
  return lines.join('\n');
}

main().catch((err) => {
  console.error(`bench-browser: ${err.message}`);
  process.exit(2);
});
