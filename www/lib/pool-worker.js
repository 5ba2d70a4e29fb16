// One helper of the WebAssembly thread pool (lib/threads.js): instantiates the threaded build
// on the engine's shared memory, says so, then works for the pool until it is terminated.
self.onmessage = async ({ data: { glue, module, memory } }) => {
  try {
    const wasm = await import(glue);
    wasm.initSync({ module, memory });
    self.postMessage({ ready: true });
    wasm.pool_helper(); // waits for jobs (Atomics.wait): never returns
  } catch (err) {
    self.postMessage({ ready: false, error: String(err.message || err) });
  }
};
