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
    const offline = self.navigator.onLine === false ? ' (this device is offline)' : '';
    throw new CodedError('network', `${what} ${url}: cannot be fetched${offline} (${err.message}); is the server up and does it allow CORS?`);
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
 * Fetches the model at `manifestUrl` into a new `ModelLoader` (the wasm class), every shard
 * checked. Resolves {loader, meta, cachedBytes, cacheFailed}. onProgress({loaded, total, file,
 * fromCache, cachedBytes}).
 */
export async function fetchModel(manifestUrl, ModelLoader, onProgress) {
  const cache = await openCache();
  const manifestBytes = new Uint8Array(await (await fetchOrFail(manifestUrl, 'model manifest')).arrayBuffer());
  const loader = new ModelLoader(manifestBytes, manifestUrl); // throws {code: 'bad-model'}
  const meta = JSON.parse(loader.info());
  const total = meta.total_bytes;
  let done = 0;
  let cachedBytes = 0;
  let cacheFailed = null;
  const report = (file, fromCache) => onProgress({ loaded: done, total, file, fromCache, cachedBytes });
  report(null, false);
  for (const [i, shard] of meta.shards.entries()) {
    const shardUrl = new URL(shard.file, manifestUrl).href;
    const key = `${shardUrl}?sha256=${shard.sha256}`;
    const kept = verified.get(key) || (cache && (await cache.match(key).then((r) => r?.arrayBuffer()).catch(() => null)));
    if (kept) {
      const bytes = new Uint8Array(kept);
      try {
        loader.add_shard(i, bytes, `${shardUrl} (cached)`, await sha256(bytes));
        done += shard.bytes;
        cachedBytes += shard.bytes;
        report(shard.file, true);
        continue;
      } catch {
        verified.delete(key);
        await cache?.delete(key); // a damaged copy: download again
      }
    }
    const res = await fetchOrFail(shardUrl, 'weights shard');
    const before = done;
    const bytes = await readBody(res, shard.bytes, shardUrl, (n) => {
      done += n;
      report(shard.file, false);
    });
    done = before + shard.bytes;
    try {
      loader.add_shard(i, bytes, shardUrl, await sha256(bytes));
    } catch (err) {
      throw new CodedError('checksum', `${err.message} (the file is damaged or does not belong to this manifest)`);
    }
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
  return { loader, meta, cachedBytes, cacheFailed };
}
