// Preparing WebGPU in the worker before wgpu asks for an adapter: whether the adapter is a
// software fallback (the kernels then skip barriers), WebGPU compatibility mode where only it
// reaches a real adapter, and the `subgroups` feature, which wgpu 30 cannot request itself.
// Which path runs (WebGPU or the CPU) is decided in Rust (src/engine.rs), not here.

const isFallback = (adapter) => Boolean(adapter?.info?.isFallbackAdapter || adapter?.isFallbackAdapter);

let compatibilityInstalled = false;
let subgroupsInstalled = false;
/** The adapter prepareWebGPU found, to describe without asking again. */
let found = null;

/**
 * Resolves {software, subgroups, compatibility}: `software`, the adapter wgpu will get is a
 * software fallback; `subgroups`, its device will have the `subgroups` feature;
 * `compatibility`, WebGPU runs in compatibility mode. Without WebGPU, all false.
 */
export async function prepareWebGPU() {
  const gpu = self.navigator.gpu;
  if (!gpu) return { software: false, subgroups: false, compatibility: false };
  let adapter = await gpu.requestAdapter().catch(() => null);
  let compatibility = compatibilityInstalled;
  if (compatibilityInstalled || !adapter || isFallback(adapter)) {
    const compat = await preferCompatibility(gpu);
    if (compat) [adapter, compatibility] = [compat, true];
  }
  if (!adapter) adapter = await gpu.requestAdapter({ forceFallbackAdapter: true }).catch(() => null);
  found = adapter;
  const subgroups = Boolean(adapter?.features?.has('subgroups')) && requestSubgroups();
  return { software: !adapter || isFallback(adapter), subgroups, compatibility };
}

// WebGPU compatibility mode (on OpenGL ES or Direct3D 11) reaches GPUs that core WebGPU does
// not. Where the core adapter is missing or a software fallback and a compatibility adapter is
// not, every later request in this worker (wgpu's included) asks for compatibility mode.
async function preferCompatibility(gpu) {
  const compat = await gpu.requestAdapter({ featureLevel: 'compatibility' }).catch(() => null);
  if (!compat || isFallback(compat)) return null;
  if (!compatibilityInstalled) {
    const request = gpu.requestAdapter.bind(gpu);
    gpu.requestAdapter = (options = {}) => request({ ...options, featureLevel: 'compatibility' });
    compatibilityInstalled = true;
  }
  return compat;
}

// Every device this worker requests gets `subgroups` where its adapter offers it.
function requestSubgroups() {
  if (!subgroupsInstalled && self.GPUAdapter) {
    const request = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = function (descriptor = {}) {
      const features = [...(descriptor.requiredFeatures || [])];
      if (this.features.has('subgroups') && !features.includes('subgroups')) features.push('subgroups');
      return request.call(this, { ...descriptor, requiredFeatures: features });
    };
    subgroupsInstalled = true;
  }
  return subgroupsInstalled;
}

/** "google swiftshader (software fallback adapter)": wgpu's adapter name is empty on the web. */
export function describeAdapter(fallback) {
  try {
    const a = found;
    const i = a?.info;
    if (!i) return fallback;
    const words = [i.vendor, i.architecture, i.device, i.description].filter(Boolean);
    const name = [...new Set(words)].join(' ') || 'unknown GPU';
    return `${name}${i.isFallbackAdapter || a.isFallbackAdapter ? ' (software fallback adapter)' : ''}`;
  } catch {
    return fallback;
  }
}

let watcher = null;
let watching = false;

/**
 * Calls onChange(compiled, asked) as the browser compiles the pipelines asked of it in
 * parallel (createComputePipelineAsync, as src/gpu/kernels.rs does), counted from now until
 * the returned function is called.
 */
export function watchPipelines(onChange) {
  if (!self.GPUDevice) return () => {};
  if (!watching) {
    const create = GPUDevice.prototype.createComputePipelineAsync;
    GPUDevice.prototype.createComputePipelineAsync = function (descriptor) {
      const promise = create.call(this, descriptor);
      watcher?.asked(promise);
      return promise;
    };
    watching = true;
  }
  let asked = 0;
  let compiled = 0;
  let scheduled = false;
  const report = () => watcher === watch && onChange(compiled, asked);
  const watch = {
    // Pipelines are asked for all at once: one report for the lot.
    asked(promise) {
      asked++;
      if (!scheduled) queueMicrotask(() => ((scheduled = false), report()));
      scheduled = true;
      promise.then(
        () => (compiled++, report()),
        () => (compiled++, report()),
      );
    },
  };
  watcher = watch;
  return () => {
    if (watcher === watch) watcher = null;
  };
}
