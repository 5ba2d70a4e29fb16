#!/usr/bin/env node
// A small static server for www/ (used by `./build.sh serve` and the browser tests).
//
//   node tools/serve.mjs [--root www] [--port 8050] [--host 127.0.0.1] [--no-isolation]
//
// Correct MIME types (.wasm, .mjs, .safetensors, .webmanifest), CORS for every file so that
// models and the embed script load from other origins, no directory listings, and nothing
// outside the root. The pages are cross-origin isolated (COOP same-origin, COEP require-corp:
// the CPU path's threads need SharedArrayBuffer), and every file may be embedded by isolated
// pages elsewhere (CORP cross-origin); --no-isolation leaves COOP and COEP out. Every response
// carries the Content-Security-Policy below (index.html repeats it in a <meta> for hosts that
// cannot send headers).
// As a module: `startServer({root, port, mounts, isolation, intercept, csp})` resolves
// `{url, port, requests, close()}`; `requests` lists every path served or refused;
// `intercept(req, res, pathname)` may answer a request itself (returns true), for tests.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/**
 * No inline script and no script from another origin; WebAssembly compiles ('wasm-unsafe-eval');
 * workers start from blob: URLs (bit50.js, lib/threads.js: so that the module works from another
 * origin); connect-src * because a model may come from any origin (?model=URL); thumbnails are
 * blob: and data: images. docs/web.md says what a page embedding the widget needs.
 */
export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  'connect-src *',
  "img-src 'self' blob: data:",
  "style-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export function startServer({ root = 'www', port = 0, host = '127.0.0.1', mounts = {}, quiet = true, isolation = true, intercept = null, csp = CSP } = {}) {
  const roots = [...Object.entries(mounts).map(([prefix, dir]) => [prefix, path.resolve(dir)]), ['/', path.resolve(root)]];
  const requests = [];
  const server = http.createServer((req, res) => {
    const headers = { 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-cache', 'Cross-Origin-Resource-Policy': 'cross-origin' };
    if (csp) headers['Content-Security-Policy'] = csp;
    if (isolation) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400, headers).end('bad request');
      return;
    }
    requests.push(pathname);
    if (intercept?.(req, res, pathname, headers)) return;
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...headers, 'Access-Control-Allow-Methods': 'GET, HEAD', 'Access-Control-Allow-Headers': '*' }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, headers).end('method not allowed');
      return;
    }
    const [prefix, dir] = roots.find(([p]) => pathname.startsWith(p));
    let file = path.join(dir, pathname.slice(prefix.length));
    if (file !== dir && !file.startsWith(dir + path.sep)) {
      res.writeHead(403, headers).end('forbidden');
      return;
    }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        if (!pathname.endsWith('/')) {
          res.writeHead(301, { ...headers, Location: pathname + '/' }).end();
          return;
        }
        file = path.join(file, 'index.html');
        try {
          st = fs.statSync(file);
        } catch (e) {
          err = e;
        }
      }
      if (err || !st.isFile()) {
        if (!quiet) console.log(`404 ${pathname}`);
        res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found');
        return;
      }
      const type = TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream';
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': st.size });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const actual = server.address().port;
      resolve({
        url: `http://${host}:${actual}/`,
        port: actual,
        requests,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const root = arg('--root', 'www');
  const port = Number(arg('--port', process.env.PORT || 8050));
  const host = arg('--host', '127.0.0.1');
  const isolation = !process.argv.includes('--no-isolation');
  startServer({ root, port, host, quiet: false, isolation }).then(
    (s) => console.log(`serving ${path.resolve(root)} at ${s.url} (Ctrl-C to stop)`),
    (e) => {
      console.error(`serve: cannot listen on ${host}:${port}: ${e.message}`);
      process.exit(1);
    },
  );
}
