// The page's service worker: the app offline, installable, and cross-origin isolated on any host.
//
// - Offline: the app shell (sw-shell.js lists it, with a version that build.sh derives from
//   the files' contents) is cached whole at install, and served from that cache: a visit never
//   runs a mix of two deploys' files. The model's weights are kept by the worker itself
//   (lib/model-files.js, Cache Storage). Other same-origin requests go to the network, and to
//   the cache when it fails.
// - Updates: a new deploy installs beside the old one and waits; the page's next visit asks
//   it to take over and reloads (app.js). An install that fails halfway leaves the old version
//   as it was.
// - Isolation: every same-origin response gets COOP/COEP, as a server would send them, so that
//   the CPU path's threads (SharedArrayBuffer) work on hosts that cannot set headers.
importScripts('sw-shell.js'); // self.SHELL = {version, files}

const CACHE = `bit50-shell-${self.SHELL.version}`;
const base = new URL('./', self.location).href;
const shell = new Set(self.SHELL.files.map((f) => new URL(f, base).href));

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll([...shell].map((url) => new Request(url, { cache: 'reload' })))));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith('bit50-shell-') && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data === 'activate') self.skipWaiting();
});

/** The response with the headers that make a page cross-origin isolated. */
function isolated(response) {
  if (!response || response.type === 'opaque' || response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Cross-Origin-Resource-Policy', 'cross-origin');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

async function respond(request) {
  const url = new URL(request.url);
  url.search = '';
  const key = url.href.endsWith('/') ? new URL('index.html', url).href : url.href;
  if (shell.has(key)) {
    const cached = await caches.match(key, { cacheName: CACHE });
    if (cached) return isolated(cached);
  }
  try {
    return isolated(await fetch(request));
  } catch (err) {
    const cached = await caches.match(request, { ignoreSearch: true });
    if (cached) return isolated(cached);
    throw err;
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(respond(request));
});
