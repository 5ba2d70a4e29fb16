// Threads for the CPU path where the page is cross-origin isolated: the threaded wasm build
// (atomics, shared memory; build.sh makes it with Rust nightly) and a pool of helper workers,
// each an instance of it on the same memory (src/parallel.rs runs the work on them).
// Elsewhere the single-threaded build runs, with no error; `why` says why.

/** Why `wanted` threads cannot run here, or null where they can. */
export function threadsUnavailable(wanted) {
  if (wanted <= 1) return null;
  if (!self.crossOriginIsolated) return 'the page is not cross-origin isolated (its server sends no COOP/COEP headers, and no service worker adds them)';
  if (typeof SharedArrayBuffer !== 'function') return 'this browser has no SharedArrayBuffer';
  return null;
}

/** A worker from a module URL of any origin (a worker's own URL must be same-origin). */
function moduleWorker(url, name) {
  const blob = URL.createObjectURL(new Blob([`import ${JSON.stringify(url)};`], { type: 'text/javascript' }));
  const worker = new Worker(blob, { type: 'module', name });
  setTimeout(() => URL.revokeObjectURL(blob), 60_000);
  return worker;
}

/**
 * Starts `count` helpers on the threaded build whose glue is at `glueUrl`, sharing `module`
 * and `memory` (the build's `pool_parts()`). Resolves the number that started within 10 s.
 */
export async function startPool(glueUrl, count, [module, memory]) {
  const url = new URL('./pool-worker.js', import.meta.url).href;
  const started = await Promise.all(
    Array.from({ length: count }, (_, i) => new Promise((resolve) => {
      const worker = moduleWorker(url, `bit50 thread ${i + 1}`);
      const timer = setTimeout(() => resolve(false), 10_000);
      worker.onmessage = ({ data }) => {
        clearTimeout(timer);
        if (!data.ready) worker.terminate();
        resolve(data.ready);
      };
      worker.onerror = () => {
        clearTimeout(timer);
        resolve(false);
      };
      worker.postMessage({ glue: glueUrl, module, memory });
    })),
  );
  return started.filter(Boolean).length;
}
