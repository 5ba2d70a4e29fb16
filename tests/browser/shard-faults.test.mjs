// A model shard that arrives wrong: too short, too long, missing (404), from another origin
// without CORS, or a host's web page served with 200 instead of the safetensors data. Each load
// fails with a message that names the shard and the cause; a good model then loads and works.
// (A manifest that is missing, and a shard with a flipped byte, are in page.test.mjs.)
import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, serve, openPage, waitModel, messages, WWW, TINY } from './helpers.mjs';

const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);
const NOT_FOUND_PAGE = '<!DOCTYPE html>\n<html><head><title>Page not found</title></head><body><h1>404</h1><p>Sorry, nothing here.</p></body></html>\n';
let scratch;
let shard;
let server;
let other;
let browser;
let page;

/** A copy of the tiny model in scratch/name, its shard changed by `edit` (or removed: null). */
function variant(name, edit) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(path.join(WWW, TINY))) fs.copyFileSync(path.join(WWW, TINY, f), path.join(dir, f));
  const file = path.join(dir, shard);
  if (edit) fs.writeFileSync(file, edit(fs.readFileSync(file)));
  else fs.rmSync(file);
  return `/${name}/`;
}

before(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bit50-shards-'));
  const manifest = JSON.parse(fs.readFileSync(path.join(WWW, TINY, 'manifest.json'), 'utf8'));
  assert.equal(manifest.shards.length, 1);
  shard = manifest.shards[0].file;
  const mounts = {};
  for (const [name, edit] of Object.entries({
    short: (b) => b.subarray(0, b.length - 1000),
    long: (b) => Buffer.concat([b, Buffer.alloc(4096, 7)]),
    missing: null,
    html: () => Buffer.from(NOT_FOUND_PAGE),
  })) mounts[variant(name, edit)] = path.join(scratch, name);
  // The web page as a host sends it: text/html, status 200.
  const intercept = (req, res, pathname, headers) => {
    if (pathname !== `/html/${shard}`) return false;
    res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' }).end(NOT_FOUND_PAGE);
    return true;
  };
  server = await serve(mounts, { intercept });
  // Another origin that serves the manifest with CORS, and the shard without.
  other = await serve({}, {
    intercept: (req, res, pathname, headers) => {
      if (pathname !== `/${TINY}${shard}`) return false;
      const { 'Access-Control-Allow-Origin': _, ...rest } = headers;
      const bytes = fs.readFileSync(path.join(WWW, TINY, shard));
      res.writeHead(200, { ...rest, 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length }).end(bytes);
      return true;
    },
  });
  browser = await launch();
  page = await openPage(browser, `${server.url}index.html?model=${TINY}`);
  assert.ok(await waitModel(page), page.logs.join('\n'));
});

after(async () => {
  await browser?.close();
  await server?.close();
  await other?.close();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** load(url) through the API: the error's code and message, or null when it loads. */
function loadError(url) {
  return page.evaluate(async (url) => {
    const { load } = await import('./bit50.js');
    try {
      (await load(url, { backend: 'cpu' })).dispose();
      return null;
    } catch (err) {
      return { code: err.code, message: err.message };
    }
  }, url);
}

test('each fault of a shard is named with its cause', async () => {
  const shardUrl = (base) => new URL(`${base}${shard}`, server.url).href;
  const size = fs.statSync(path.join(WWW, TINY, shard)).size;
  const cases = {
    '/short/': ['checksum', new RegExp(`^${shardUrl('/short/')}: ${size - 1000} bytes, manifest says ${size}`)],
    '/long/': ['checksum', new RegExp(`^${shardUrl('/long/')}: larger than the ${size} bytes the manifest says`)],
    '/missing/': ['not-found', new RegExp(`^weights shard ${shardUrl('/missing/')}: HTTP 404 \\(not found`)],
    '/html/': ['not-found', new RegExp(`^weights shard ${shardUrl('/html/')}: the server sent a web page \\(text/html; charset=utf-8\\), not the shard: a host's "not found" page\\?`)],
    [`${other.url}${TINY}`]: ['network', new RegExp(`^weights shard ${other.url}${TINY}${shard}: cannot be fetched \\(.+\\): the server is down, or it sends no CORS header \\(Access-Control-Allow-Origin\\)`)],
  };
  for (const [url, [code, pattern]] of Object.entries(cases)) {
    const err = await loadError(url);
    assert.ok(err, `${url} loaded`);
    assert.equal(err.code, code, `${url}: ${err.message}`);
    assert.match(err.message, pattern);
  }
  // The other origin was asked for the shard: it was its answer that could not be read.
  assert.ok(other.requests.includes(`/${TINY}${shard}`));
});

test('on the page: the web page instead of a shard is said in a message, and a good model then loads', async () => {
  await page.locator('.model-picker summary').click();
  await page.locator('#model-url').fill('html/');
  await page.locator('#model-form button').click();
  await page.waitForFunction(() => [...document.querySelectorAll('.message')].some((m) => /web page/.test(m.textContent)), null, { timeout: 60_000 });
  const text = (await messages(page)).join('\n');
  assert.match(text, new RegExp(`Weights not found\\. weights shard ${server.url}html/${shard}: the server sent a web page`));
  assert.match(text, /Still using tiny\./);
  // The good model still works, and loads again.
  assert.equal(await page.evaluate(() => document.body.dataset.model), 'ready');
  assert.equal(await loadError(TINY), null);
});
