// Every core and every visit (issue #10): the page isolated by its service worker where the
// host sends no COOP/COEP, then threaded; a second visit with the network off; installable;
// a new deploy picked up on the next visit and never mixed with the old; a deploy that fails
// to install leaves the old one working; a download that breaks off resumes; storage quota
// exceeded; threads asked for where the page is not isolated; a pool of workers there.
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, serve, openPage, waitModel, cardResult, dropFiles, messages, bit50Cli, PHOTOS, ROOT, TINY, WWW } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 180_000 }, fn);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-offline-'));

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** Evaluates `fn` until it returns truthy, across reloads of the page. */
async function until(page, fn, arg, timeout = 60_000) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      const v = await page.evaluate(fn, arg);
      if (v) return v;
    } catch {} // the page is reloading
    if (Date.now() > end) throw new Error(`timed out waiting for ${fn}`);
    await sleep(200);
  }
}

/** A copy of the site (models linked, not copied) to deploy new versions of. */
function siteCopy(name) {
  const dir = path.join(scratch, name);
  fs.cpSync(WWW, dir, { recursive: true, filter: (src) => !src.startsWith(path.join(WWW, 'models')) });
  fs.symlinkSync(path.join(WWW, 'models'), path.join(dir, 'models'));
  execFileSync('node', [path.join(ROOT, 'tools/write-sw-shell.mjs'), dir]);
  return dir;
}

/** A new deploy of the copy: markers in app.js and styles.css, and the shell list again. */
function deploy(dir, version) {
  fs.appendFileSync(path.join(dir, 'app.js'), `\nwindow.deployMarker = ${version};\n`);
  fs.appendFileSync(path.join(dir, 'styles.css'), `\n:root { --deploy: ${version}; }\n`);
  execFileSync('node', [path.join(ROOT, 'tools/write-sw-shell.mjs'), dir]);
}

const versions = (page) => page.evaluate(() => [window.deployMarker ?? 0, Number(getComputedStyle(document.documentElement).getPropertyValue('--deploy') || 0)]);

test('a page served without COOP/COEP is isolated once its service worker takes over, and runs threaded', async () => {
  const server = await serve({ '/photos/': PHOTOS }, { isolation: false });
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  try {
    await until(page, () => self.crossOriginIsolated && document.body.dataset.model === 'ready');
    const { info, cores } = await page.evaluate(() => ({ info: window.bit50.model.info, cores: navigator.hardwareConcurrency }));
    assert.equal(info.threads, Math.min(8, cores), `threads: ${JSON.stringify(info)}`);
    assert.ok(info.threads >= 2, 'these machines have 2 cores');
    const model = await page.evaluate(async () => {
      const { load } = await import('./bit50.js');
      const m = await load('models/tiny/', { backend: 'cpu' });
      const r = await m.classify(await (await fetch('/photos/cat.png')).blob());
      const info = m.info;
      m.dispose();
      return { threads: info.threads, top: r.top[0].index };
    });
    assert.ok(model.threads >= 2);
    assert.equal(model.top, JSON.parse(bit50Cli(['classify', '--model', path.join(WWW, TINY), '--json', path.join(PHOTOS, 'cat.png')])).top[0].index);
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('a second visit works with the network off: the page, the model, a dropped photo', async () => {
  const server = await serve();
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  try {
    await waitModel(page);
    await until(page, () => navigator.serviceWorker.controller && navigator.serviceWorker.ready.then(() => true));
    // Offline, and the server gone too: Chromium 148 under Playwright 1.65 does not apply the
    // offline emulation to a worker started after the reload (the model's worker fetched the
    // manifest from the server), nor to navigator.onLine in the document the service worker served.
    await page.context().setOffline(true);
    await server.close();
    await page.reload();
    const info = await waitModel(page);
    assert.equal(info?.fromCache, true, 'the weights came from the Cache Storage');
    await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
    const r = await cardResult(page, 'cat.png');
    assert.ok(r.done, r.state);
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('the page is installable: a web app manifest, its icons, a service worker', async () => {
  const server = await serve();
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  try {
    await waitModel(page);
    await until(page, () => navigator.serviceWorker.controller);
    const cdp = await page.context().newCDPSession(page);
    const { errors } = await cdp.send('Page.getAppManifest');
    assert.deepEqual(errors, []);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    // Playwright's contexts are incognito, where Chromium installs nothing: every other check passed.
    assert.deepEqual(installabilityErrors.filter((e) => e.errorId !== 'in-incognito'), []);
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('a new deploy is picked up on the next visit, and no visit runs a mix of the two', async () => {
  const site = siteCopy('deploy');
  const server = await serve({}, { root: site });
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  try {
    await waitModel(page);
    await until(page, () => navigator.serviceWorker.controller);
    assert.deepEqual(await versions(page), [0, 0]);
    deploy(site, 2);
    // The browser finds the new service worker on a visit and installs it beside the old one;
    // a following visit hands over to it. Every visit is one version, whole.
    let seen = [0, 0];
    for (let visit = 0; visit < 4 && seen[0] !== 2; visit++) {
      await page.reload();
      await until(page, () => document.body.dataset.model === 'ready' && window.bit50);
      seen = await versions(page);
      assert.equal(seen[0], seen[1], `visit ${visit}: app.js of version ${seen[0]} beside styles.css of version ${seen[1]}`);
      await sleep(500);
    }
    assert.deepEqual(seen, [2, 2], 'the new deploy runs');
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('a deploy that fails to install halfway leaves the old version working, online and offline', async () => {
  const site = siteCopy('broken');
  let broken = false;
  // Once the new deploy is out, one of its files cannot be fetched.
  const intercept = (req, res, pathname, headers) => {
    if (!broken || pathname !== '/icons/icon-512.png') return false;
    res.writeHead(503, headers).end('unavailable');
    return true;
  };
  const server = await serve({}, { root: site, intercept });
  const page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  try {
    await waitModel(page);
    await until(page, () => navigator.serviceWorker.controller);
    deploy(site, 3);
    broken = true;
    for (let visit = 0; visit < 3; visit++) {
      await page.reload();
      await until(page, () => document.body.dataset.model === 'ready' && window.bit50);
      assert.deepEqual(await versions(page), [0, 0], 'the old version, whole');
      await sleep(500);
    }
    await page.context().setOffline(true);
    await page.reload();
    await until(page, () => document.body.dataset.model === 'ready');
    assert.deepEqual(await versions(page), [0, 0]);
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('a download that breaks off says so, and loading again resumes with the shards already checked', async () => {
  // The full-size model in f16: two shards.
  const hf = path.join(scratch, 'hf');
  const model = path.join(scratch, 'full16');
  bit50Cli(['random-model', '--out', hf, '--seed', '0']);
  bit50Cli(['convert', hf, '--out', model, '--dtype', 'f16']);
  const manifest = JSON.parse(fs.readFileSync(path.join(model, 'manifest.json'), 'utf8'));
  assert.ok(manifest.shards.length >= 2);
  const last = manifest.shards.at(-1).file;
  let drops = 1;
  const intercept = (req, res, pathname, headers) => {
    if (pathname !== `/full16/${last}` || drops-- <= 0) return false;
    const bytes = fs.readFileSync(path.join(model, last));
    res.writeHead(200, { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length });
    res.write(bytes.subarray(0, 1 << 20), () => res.destroy());
    return true;
  };
  const server = await serve({ '/full16/': model }, { intercept });
  const page = await openPage(browser, `${server.url}bench.html?autorun=0`);
  try {
    const first = await page.evaluate(async () => {
      const { load } = await import('./bit50.js');
      try {
        await load('/full16/', { backend: 'cpu' });
        return null;
      } catch (err) {
        return { code: err.code, message: err.message };
      }
    });
    assert.equal(first?.code, 'network', JSON.stringify(first));
    assert.match(first.message, /broke off.*resumes/);
    const count = (file) => server.requests.filter((p) => p === `/full16/${file}`).length;
    const before = manifest.shards.map((s) => count(s.file));
    const info = await page.evaluate(async () => {
      const { load } = await import('./bit50.js');
      const m = await load('/full16/', { backend: 'cpu' });
      const info = m.info;
      m.dispose();
      return info;
    });
    assert.equal(info.classes, 1000);
    const after = manifest.shards.map((s) => count(s.file));
    assert.deepEqual(after.slice(0, -1), before.slice(0, -1), 'the shards checked before the break are not downloaded again');
    assert.equal(after.at(-1), before.at(-1) + 1, 'the broken shard is downloaded again');
  } finally {
    await page.context().close();
    await server.close();
  }
});

test('storage quota exceeded: the model still runs, and the page says it could not keep the weights', async () => {
  const server = await serve();
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url.replace(/\/$/, ''), quotaSize: 64 * 1024 });
    await page.goto(`${server.url}index.html?model=${TINY}`);
    const info = await waitModel(page);
    assert.match(info.cacheFailed || '', /\S/, 'the worker noticed');
    assert.ok((await messages(page)).some((m) => /could not be kept/.test(m)), (await messages(page)).join('\n'));
    await dropFiles(page, [path.join(PHOTOS, 'cat.png')]);
    assert.ok((await cardResult(page, 'cat.png')).done);
  } finally {
    await context.close();
    await server.close();
  }
});

test('where the page is not isolated: one thread, and why; a pool of workers takes a batch, in order, and stops when cancelled', async () => {
  const server = await serve({ '/photos/': PHOTOS }, { isolation: false });
  // bench.html registers no service worker: the page stays as its server sends it.
  const page = await openPage(browser, `${server.url}bench.html?autorun=0`);
  try {
    const got = await page.evaluate(async (url) => {
      const { load } = await import('./bit50.js');
      const names = ['cat.png', 'coffee.jpg', 'rocket-exif.jpg', 'astronaut-alpha.png', 'camera-gray.png', 'cat.png'];
      const files = await Promise.all(names.map(async (n) => (await fetch(`/photos/${n}`)).blob()));
      const pooled = await load(url, { backend: 'cpu', threads: 4, workers: 2 });
      const single = await load(url, { backend: 'cpu', threads: 1, workers: 1 });
      const order = [];
      const batch = await pooled.classify(files, { onResult: (r, i) => order.push(i) });
      const alone = [];
      for (const f of files) alone.push(await single.classify(f));
      // Cancelled after the first result: the photos not started are given up.
      const controller = new AbortController();
      const cancelled = await pooled.classify(files, { signal: controller.signal, onResult: () => controller.abort() });
      const result = { isolated: self.crossOriginIsolated, info: pooled.info, batch: batch.map((r) => r.top), alone: alone.map((r) => r.top), order, cancelled: cancelled.map((r) => r.error?.code || 'done') };
      pooled.dispose();
      single.dispose();
      return result;
    }, TINY);
    assert.equal(got.isolated, false);
    assert.equal(got.info.threads, 1);
    assert.match(got.info.threadsReason, /not cross-origin isolated/);
    assert.equal(got.info.workers, 2);
    assert.deepEqual(got.batch, got.alone, 'each photo gets what it gets alone, in the order given');
    assert.equal(got.order.length, 6);
    assert.ok(got.cancelled.includes('cancelled') && got.cancelled.includes('done'), JSON.stringify(got.cancelled));
    assert.ok(got.cancelled.filter((c) => c === 'done').length <= 3, `at most one photo per worker and the one in flight: ${got.cancelled}`);
  } finally {
    await page.context().close();
    await server.close();
  }
});
