// Shared setup for the browser tests: a static server for www/, Debian's Chromium driven
// by playwright-core (never a downloaded browser), and the native CLI for expected values.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../tools/serve.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WWW = path.join(ROOT, 'www');
export const PHOTOS = path.join(ROOT, 'tests/fixtures/photos');
export const TINY = 'models/tiny/';
export const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');

export const BASE_FLAGS = [
  '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function chromiumPath() {
  for (const c of [process.env.CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium']) {
    if (c && fs.existsSync(c)) return c;
  }
  throw new Error("Debian's chromium is missing: apt-get install -y chromium (never a downloaded browser)");
}

export const LAVAPIPE_ICD = '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';

/** Launches Chromium; webgpu: false leaves out --enable-unsafe-webgpu (no adapter);
 * compatibility: a WebGPU compatibility-mode adapter that is not a fallback (Dawn on OpenGL ES
 * on ANGLE on lavapipe), beside the core adapter, SwiftShader (../shared/webgpu-here.md). */
export async function launch({ webgpu = true, camera = false, compatibility = false } = {}) {
  const args = [...BASE_FLAGS];
  const env = { ...process.env };
  if (webgpu) args.push('--enable-unsafe-webgpu');
  if (camera) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  if (compatibility) {
    if (!fs.existsSync(LAVAPIPE_ICD)) throw new Error('lavapipe is missing: apt-get install -y mesa-vulkan-drivers');
    args.push('--use-angle=vulkan', '--use-webgpu-adapter=opengles');
    env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
  }
  return chromium.launch({ executablePath: chromiumPath(), args, env, ignoreDefaultArgs: ['--headless'], headless: true });
}

/** A server for www/ (or `root`) on a free 127.0.0.1 port; mounts: {'/prefix/': dir};
 * options as tools/serve.mjs's startServer takes them (isolation, intercept). */
export function serve(mounts = {}, { root = WWW, ...options } = {}) {
  for (const f of ['pkg/bit50_bg.wasm', 'pkg/bit50_relaxed_bg.wasm']) {
    if (!fs.existsSync(path.join(WWW, f))) throw new Error(`www/${f} is not built: run ./build.sh`);
  }
  if (!fs.existsSync(path.join(WWW, TINY, 'manifest.json'))) throw new Error('www/models/tiny is missing: bit50 convert tests/fixtures/tiny --out www/models/tiny');
  return startServer({ root, mounts, ...options });
}

/** A page that records console errors, uncaught page errors and Content-Security-Policy
 * violations ('CSP violation: directive URL') in page.logs. */
export async function openPage(browser, url, { permissions = [] } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  if (permissions.length) await context.grantPermissions(permissions);
  await context.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.effectiveDirective} ${e.blockedURI}`)));
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  return page;
}

/** The demo page with the tiny model in a browser of its own, for a test file's before/after:
 * served with `mounts` and `serving` (see serve), launched with `launching` (see launch), and
 * waited for until the model is ready unless `wait` is false. close() ends both. */
export async function openDemo({ mounts = {}, serving = {}, launching = {}, permissions = [], wait = true } = {}) {
  const server = await serve(mounts, serving);
  let browser;
  try {
    browser = await launch(launching);
    const page = await openPage(browser, `${server.url}index.html?model=${TINY}`, { permissions });
    if (wait && !(await waitModel(page))) throw new Error(`the demo's model did not load:\n${page.logs.join('\n')}`);
    return { server, browser, page, close: async () => { await browser.close(); await server.close(); } };
  } catch (e) {
    await browser?.close();
    await server.close();
    throw e;
  }
}

/** Runs the native `bit50` command (BIT50, else target/release/bit50); its stdout. */
export function bit50Cli(args) {
  const cli = process.env.BIT50 || path.join(ROOT, 'target/release/bit50');
  return execFileSync(cli, args, { encoding: 'utf8', env: { ...process.env, NODEVICE_SELECT: '1' } });
}

/** `bit50 classify --json` on a file (the native reference for the page's results). */
export function nativeClassify(file, model = path.join(WWW, TINY), extra = []) {
  const out = bit50Cli(['classify', '--model', model, '--json', '--top', '5', ...extra, file]);
  return JSON.parse(out.trim().split('\n').pop());
}

/** Drops files (paths, or {name, type, bytes | size (zeros)}) with real drag events carrying a DataTransfer. */
export async function dropFiles(page, files, selector = 'body') {
  const payload = files.map((f) => ({
    name: typeof f === 'string' ? path.basename(f) : f.name,
    type: typeof f === 'string' ? mime(f) : f.type,
    b64: f.size ? '' : (typeof f === 'string' ? fs.readFileSync(f) : f.bytes).toString('base64'),
    size: f.size || 0,
  }));
  await page.evaluate(
    ({ payload, selector }) => {
      const dt = new DataTransfer();
      for (const f of payload) {
        const bytes = f.size ? new Uint8Array(f.size) : Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], f.name, { type: f.type }));
      }
      const target = selector.startsWith('__') ? window[selector] : document.querySelector(selector);
      for (const type of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true, composed: true }));
      }
    },
    { payload, selector },
  );
}

export function mime(file) {
  const ext = path.extname(file).toLowerCase();
  return { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.txt': 'text/plain' }[ext] || 'application/octet-stream';
}

/** Waits until the page's model is ready (or failed), returns the info. */
export async function waitModel(page, timeout = 120_000) {
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.model), null, { timeout });
  return page.evaluate(() => window.bit50.model?.info ?? null);
}

/** Waits until the newest card named `name` is done or failed; returns its state and top-k. */
export async function cardResult(page, name, timeout = 120_000) {
  await page.waitForFunction(
    (name) => [...document.querySelectorAll('.card')].some((c) => c.querySelector('.name').textContent === name && /\b(done|failed)\b/.test(c.className)),
    name,
    { timeout },
  );
  return page.evaluate((name) => {
    const el = [...document.querySelectorAll('.card')].find((c) => c.querySelector('.name').textContent === name && /\b(done|failed)\b/.test(c.className));
    return { done: el.classList.contains('done'), state: el.querySelector('.state').textContent, top: el.dataset.top ? JSON.parse(el.dataset.top) : null, id: el.id };
  }, name);
}

/** The texts of the page's visible messages. */
export function messages(page) {
  return page.evaluate(() => [...document.querySelectorAll('#messages .message')].map((m) => m.textContent));
}

export function expectSameTop(got, want, { probTol = 1e-3 } = {}) {
  const g = got.map((p) => p.index);
  const w = want.map((p) => p.index);
  if (JSON.stringify(g) !== JSON.stringify(w)) {
    throw new Error(`top-5 differs: page ${JSON.stringify(got)} vs native ${JSON.stringify(want)}`);
  }
  for (let i = 0; i < got.length; i++) {
    if (got[i].label !== want[i].label) throw new Error(`label ${i}: ${got[i].label} vs ${want[i].label}`);
    if (Math.abs(got[i].prob - want[i].prob) > probTol) throw new Error(`prob ${i}: ${got[i].prob} vs ${want[i].prob}`);
  }
}

export function saveArtifact(name, data) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  fs.writeFileSync(file, data);
  return file;
}
