// Fetching a converted model in the worker: the manifest, then each shard with progress,
// checked (size, sha256) by the wasm module's ModelLoader and kept in the Cache Storage, so
// that the next visit, and a retry after the network dropped, downloads only what is missing.
import { CodedError } from './errors.js';

const CACHE = 'bit50-weights-v1';

// Shards verified in this worker that the Cache Storage could not keep (quota, storage off):
// a retry after a failure reuses them instead of downloading them again.
const verified = new Map();

async function openCache() {
  try {
    return await caches.open(CACHE);
  } catch {
    return null; // opaque origins, storage disabled: download every time
  }
}

async function fetchOrFail(url, what) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-cache' });
  } catch (err) {
    // The browser does not say which (a page may not learn more of another origin).
    const offline = self.navigator.onLine === false ? ' (this device is offline)' : '';
    const why = new URL(url).origin === self.location.origin ? 'is the server up?' : 'the server is down, or it sends no CORS header (Access-Control-Allow-Origin) that lets this page read it';
    throw new CodedError('network', `${what} ${url}: cannot be fetched${offline} (${err.message}): ${why}`);
  }
  if (!res.ok) {
    const code = res.status === 404 ? 'not-found' : 'network';
    throw new CodedError(code, `${what} ${url}: HTTP ${res.status}${res.status === 404 ? ' (not found: is the model URL right?)' : ''}`);
  }
  return res;
}

/** Reads a response body into one buffer, reporting each chunk. */
async function readBody(res, expected, url, onChunk) {
  if (!res.body) {
    const buf = new Uint8Array(await res.arrayBuffer());
    onChunk(buf.length);
    return buf;
  }
  let buf = new Uint8Array(expected);
  let n = 0;
  const reader = res.body.getReader();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new CodedError('network', `${url}: the download broke off after ${n} of ${expected} bytes (${err.message}); loading again resumes with the shards already checked`);
    }
    const { done, value } = chunk;
    if (done) break;
    if (n + value.length > buf.length) {
      if (n + value.length > expected + 1024) {
        await reader.cancel();
        throw new CodedError('checksum', `${url}: larger than the ${expected} bytes the manifest says`);
      }
      const bigger = new Uint8Array(n + value.length);
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    buf.set(value, n);
    n += value.length;
    onChunk(value.length);
  }
  return n === buf.length ? buf : buf.slice(0, n);
}

/** An HTML page where a shard was expected (a host that answers a missing file with a web page
 * and status 200). Asked only of bytes that failed their checksum: a good shard served with a
 * wrong Content-Type still loads. A safetensors file starts with its header's length (8 bytes,
 * little-endian), never with these characters. */
function isHtml(res, bytes) {
  const start = new TextDecoder().decode(bytes.subarray(0, 64)).trimStart().toLowerCase();
  return /^text\/html\b/i.test(res.headers.get('Content-Type') || '') || /^<(!doctype|html|head|body|!--)/.test(start);
}

// A shard's sha256 by WebCrypto (native code; hashing 50 MB in WebAssembly takes 1.5 s),
// or undefined where the page is not a secure context, and the wasm side hashes it itself.
async function sha256(bytes) {
  if (!globalThis.crypto?.subtle) return undefined;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The manifest URL for a model URL (a folder, or its manifest.json). */
export function manifestUrlOf(url) {
  return new URL(/\.json($|\?)/.test(url) ? url : url.replace(/\/?$/, '/manifest.json'), self.location.href).href;
}

/**
 * The manifest's bytes: from the network, kept in the Cache Storage beside the shards; from
 * there when the network fails (offline, a second visit works with the weights it cached).
 */
export async function fetchManifest(manifestUrl) {
  const cache = await openCache();
  try {
    const bytes = new Uint8Array(await (await fetchOrFail(manifestUrl, 'model manifest')).arrayBuffer());
    await cache?.put(manifestUrl, new Response(bytes, { headers: { 'Content-Type': 'application/json' } })).catch(() => {});
    return bytes;
  } catch (err) {
    const kept = err.code === 'network' && (await cache?.match(manifestUrl).catch(() => null));
    if (!kept) throw err;
    return new Uint8Array(await kept.arrayBuffer());
  }
}

/**
 * Fetches every shard of the model at `manifestUrl` (`meta`: the ModelLoader's info), from
 * the Cache Storage where it is there, and hands each to `addShard(index, bytes, url, sha256)`
 * (which checks it, and throws if it is damaged). Resolves {cachedBytes, cacheFailed}.
 * onProgress({loaded, total, file, fromCache, cachedBytes}).
 */
export async function fetchShards(manifestUrl, meta, addShard, onProgress) {
  const cache = await openCache();
  const total = meta.total_bytes;
  let done = 0;
  let cachedBytes = 0;
  let cacheFailed = null;
  const report = (file, fromCache) => onProgress({ phase: 'downloading', loaded: done, total, file, fromCache, cachedBytes });
  report(null, false);
  for (const [i, shard] of meta.shards.entries()) {
    const shardUrl = new URL(shard.file, manifestUrl).href;
    const key = `${shardUrl}?sha256=${shard.sha256}`;
    const kept = verified.get(key) || (cache && (await cache.match(key).then((r) => r?.arrayBuffer()).catch(() => null)));
    if (kept) {
      const bytes = new Uint8Array(kept);
      const digest = await sha256(bytes);
      // A damaged copy fails its checksum (code 'checksum') and is downloaded again; anything
      // else the loader refuses is the model's fault.
      const ok = await addShard(i, bytes, `${shardUrl} (cached)`, digest).then(
        () => true,
        (err) => {
          if (err.code !== 'checksum') throw err;
          return false;
        },
      );
      if (ok) {
        done += shard.bytes;
        cachedBytes += shard.bytes;
        report(shard.file, true);
        continue;
      }
      verified.delete(key);
      await cache?.delete(key);
    }
    const res = await fetchOrFail(shardUrl, 'weights shard');
    const before = done;
    let bytes = new Uint8Array(0);
    // Bytes that fail their checksum because they are a web page are said to be one.
    const webPage = (err) => {
      if (err.code !== 'checksum' || !isHtml(res, bytes)) throw err;
      throw new CodedError('not-found', `weights shard ${shardUrl}: the server sent a web page (${res.headers.get('Content-Type') || 'HTML'}), not the shard: a host's "not found" page? Is the model URL right?`);
    };
    bytes = await readBody(res, shard.bytes, shardUrl, (n) => {
      done += n;
      report(shard.file, false);
    }).catch(webPage);
    done = before + shard.bytes;
    await addShard(i, bytes, shardUrl, await sha256(bytes)).catch(webPage);
    try {
      if (!cache) throw new Error('the Cache Storage is not available here');
      await cache.put(key, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
    } catch (err) {
      // Quota exceeded, storage off: the model still runs; the next visit downloads again.
      cacheFailed = String(err.message || err);
      verified.set(key, bytes.buffer);
    }
    report(shard.file, false);
  }
  verified.clear(); // every shard is in the loader now: nothing to resume
  return { cachedBytes, cacheFailed };
}
