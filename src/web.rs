//! The WebAssembly surface (wasm-bindgen), used by `www/bit50-worker.js`.
//!
//! JavaScript fetches the manifest and shards (with progress and the Cache Storage),
//! hands each shard to a [`ModelLoader`], which checks its size and sha256, then
//! [`build_engine`] turns the loader into an [`Engine`] on WebGPU, or on the CPU
//! (cpu.rs) when WebGPU is missing or refuses. Every Engine
//! call takes RGBA pixels decoded by the browser; the preprocessing after that is
//! the crate's own, so results match the native `bit50 classify`.

use crate::cpu::CpuNetwork;
use crate::gpu::{ConvKernels, Gpu, GpuNetwork};
use crate::model::Network;
use crate::preprocess;
use crate::weights::Manifest;
use crate::{config::PreprocessorConfig, Error, Result};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("bit50 panicked: {info}").into());
    }));
}

fn js_err(e: Error) -> JsError {
    JsError::new(&e.0)
}

/// A manifest and the shards received so far, each checked against it.
#[wasm_bindgen]
pub struct ModelLoader {
    manifest: Manifest,
    source: String,
    shards: Vec<Option<Vec<u8>>>,
}

#[derive(Serialize)]
struct ManifestInfo<'a> {
    name: &'a str,
    dtype: crate::weights::Dtype,
    labels: &'a [String],
    shards: &'a [crate::weights::Shard],
    total_bytes: u64,
    untrained: bool,
}

#[wasm_bindgen]
impl ModelLoader {
    /// Parses `manifest.json`; `source` (its URL) names it in errors.
    #[wasm_bindgen(constructor)]
    pub fn new(manifest: &[u8], source: &str) -> std::result::Result<ModelLoader, JsError> {
        let manifest = Manifest::parse(manifest, source).map_err(js_err)?;
        // Fail early on a config we cannot build, before downloading anything.
        manifest.bit_config(source).map_err(js_err)?;
        manifest.preprocessor_config(source).map_err(js_err)?;
        let shards = vec![None; manifest.shards.len()];
        Ok(ModelLoader { manifest, source: source.to_string(), shards })
    }

    /// JSON: `{name, dtype, labels, shards: [{file, bytes, sha256}], total_bytes, untrained}`.
    pub fn info(&self) -> String {
        let info = ManifestInfo {
            name: &self.manifest.name,
            dtype: self.manifest.dtype,
            labels: &self.manifest.labels,
            shards: &self.manifest.shards,
            total_bytes: self.manifest.shards.iter().map(|s| s.bytes).sum(),
            untrained: self.manifest.untrained,
        };
        serde_json::to_string(&info).expect("serializes")
    }

    /// Checks shard `index` (size and sha256) and keeps it; `source` is its URL; `sha256` the
    /// digest WebCrypto computed, if the page has it (hex).
    pub fn add_shard(&mut self, index: usize, bytes: Vec<u8>, source: &str, sha256: Option<String>) -> std::result::Result<(), JsError> {
        let shard = self.manifest.shards.get(index).ok_or_else(|| JsError::new(&format!("{}: no shard {index}", self.source)))?;
        Manifest::verify_shard(shard, &bytes, sha256, source).map_err(js_err)?;
        self.shards[index] = Some(bytes);
        Ok(())
    }
}

/// Builds the network from a complete loader. `backend` is "webgpu", "cpu" or "auto" (both
/// timed briefly at load, the faster kept; the CPU where WebGPU fails; the reason in
/// `Engine::info`). `software`: the WebGPU adapter is a fallback (an emulator).
#[wasm_bindgen]
pub async fn build_engine(loader: ModelLoader, backend: String, software: bool) -> std::result::Result<Engine, JsError> {
    let ModelLoader { manifest, source, shards } = loader;
    let shards: Vec<Vec<u8>> = shards
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.ok_or_else(|| Error(format!("{source}: shard {} was not loaded", manifest.shards[i].file))))
        .collect::<Result<_>>()
        .map_err(js_err)?;
    let model = manifest.into_model(&shards, &source).map_err(js_err)?;
    drop(shards);
    let mut fallback_reason = None;
    let lost = Arc::new(Mutex::new(None::<String>));
    let shape = (model.network.image_size, model.network.features(), model.network.classes());
    let run = if backend == "cpu" {
        fallback_reason = Some("the CPU path was requested".to_string());
        Backend::Cpu(CpuNetwork::new(model.network))
    } else {
        match open_gpu(&model.network, &lost, software).await {
            Ok((net, gpu)) if backend == "auto" => {
                // The CPU path's throughput on a product of the same kind (about 10 ms); the
                // faster path runs. A real GPU wins by far; emulators usually lose.
                let cpu = crate::cpu::matmul_gflops(32, 256, 256, 3, now_ms);
                if cpu > gpu {
                    fallback_reason = Some(format!(
                        "measured at load: {gpu:.2} GFLOP/s on this WebGPU adapter{}, {cpu:.2} on the CPU, so the CPU path runs",
                        if software { " (a software one)" } else { "" }
                    ));
                    Backend::Cpu(CpuNetwork::new(model.network))
                } else {
                    Backend::Gpu(Box::new(net))
                }
            }
            Ok((net, _)) => Backend::Gpu(Box::new(net)),
            Err(e) if backend != "webgpu" => {
                fallback_reason = Some(e.0);
                Backend::Cpu(CpuNetwork::new(model.network))
            }
            Err(e) => return Err(js_err(e)),
        }
    };
    let lost_flag = lost.clone();
    let inner = Inner { name: model.name, labels: model.labels, preprocessor: model.preprocessor, run, fallback_reason, lost, shape };
    Ok(Engine { inner: Rc::new(RefCell::new(inner)), lost: lost_flag })
}

/// `performance.now()` (in a window or a worker), else `Date.now()`: milliseconds.
fn now_ms() -> f64 {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let now = performance.and_then(|p| {
        let f: js_sys::Function = js_sys::Reflect::get(&p, &"now".into()).ok()?.dyn_into().ok()?;
        f.call0(&p).ok()?.as_f64()
    });
    now.unwrap_or_else(js_sys::Date::now)
}

/// The network on WebGPU, with the faster kernels for the adapter and their measured GFLOP/s
/// (see `gpu::fastest_kernels`; `software`: a fallback adapter).
async fn open_gpu(net: &Network, lost: &Arc<Mutex<Option<String>>>, software: bool) -> Result<(GpuNetwork, f64)> {
    let gpu = Gpu::new().await?;
    let on_lost = lost.clone();
    gpu.device.set_device_lost_callback(move |reason, message| {
        *on_lost.lock().unwrap() = Some(format!("GPU device lost ({reason:?}): {message}"));
    });
    let on_error = lost.clone();
    // wgpu's default handler panics, which would kill the whole module.
    gpu.device.on_uncaptured_error(Arc::new(move |e| {
        web_sys::console::error_1(&format!("bit50: WebGPU error: {e}").into());
        on_error.lock().unwrap().get_or_insert_with(|| format!("WebGPU error: {e}"));
    }));
    let (kernels, gflops) = crate::gpu::fastest_kernels(&gpu, software, now_ms).await?;
    Ok((GpuNetwork::new(gpu, net, kernels).await?, gflops))
}

enum Backend {
    Gpu(Box<GpuNetwork>),
    /// The CPU path (cpu.rs), when WebGPU is missing or slower.
    Cpu(CpuNetwork),
}

struct Inner {
    name: String,
    labels: Vec<String>,
    preprocessor: PreprocessorConfig,
    run: Backend,
    fallback_reason: Option<String>,
    lost: Arc<Mutex<Option<String>>>,
    /// (image size, features, classes)
    shape: (usize, usize, usize),
}

#[derive(Serialize)]
struct Info<'a> {
    name: &'a str,
    labels: &'a [String],
    backend: &'static str,
    adapter: String,
    /// The convolution kernels on WebGPU: "tiled" (workgroup memory) or "registers".
    kernels: Option<&'static str>,
    fallback_reason: Option<&'a str>,
    image_size: usize,
    features: usize,
    classes: usize,
}

#[derive(Serialize)]
struct Classified {
    top: Vec<crate::Prediction>,
}

/// Where the network's square input lies in the original image, in its pixels.
#[derive(Serialize)]
struct Crop {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
}

#[derive(Serialize)]
struct HeatmapHeader {
    index: usize,
    label: String,
    width: usize,
    height: usize,
    min: f32,
    max: f32,
    crop: Crop,
}

/// A loaded network; every method resolves a Promise. Calls must not overlap
/// (the worker queues them).
#[wasm_bindgen]
pub struct Engine {
    inner: Rc<RefCell<Inner>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl Inner {
    fn check_lost(&self) -> Result<()> {
        match &*self.lost.lock().unwrap() {
            Some(msg) => Err(Error(format!("device-lost: {msg}"))),
            None => Ok(()),
        }
    }

    fn pixels(&self, width: u32, height: u32, rgba: &[u8], source: &str) -> Result<Vec<f32>> {
        let img = preprocess::from_rgba(width, height, rgba, source)?;
        Ok(preprocess::preprocess(&img, &self.preprocessor))
    }

    async fn logits(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        self.check_lost()?;
        let out = match &mut self.run {
            Backend::Gpu(net) => net.logits(pixels).await,
            Backend::Cpu(net) => Ok(net.forward(pixels).logits),
        };
        self.check_lost()?;
        out
    }

    async fn pooled(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        self.check_lost()?;
        let out = match &mut self.run {
            Backend::Gpu(net) => net.embed(pixels).await.map(|(_, pooled)| pooled),
            Backend::Cpu(net) => Ok(net.forward(pixels).pooled),
        };
        self.check_lost()?;
        out
    }

    /// Class activation map of `class`, `[h][w]`: the final feature map (after
    /// GroupNorm + ReLU) dotted with the class's classifier column.
    async fn class_map(&mut self, pixels: &[f32], class: usize) -> Result<(usize, usize, Vec<f32>)> {
        self.check_lost()?;
        let classes = self.shape.2;
        if class >= classes {
            crate::bail!("class index {class} is out of range (the model has {classes} classes)");
        }
        let out = match &mut self.run {
            Backend::Gpu(net) => net.explain(pixels, class).await.map(|(_, map)| map),
            Backend::Cpu(net) => {
                let f = net.forward(pixels);
                Ok(net.class_map(&f, class))
            }
        }?;
        self.check_lost()?;
        let side = (out.len() as f64).sqrt().round() as usize;
        if side * side != out.len() {
            crate::bail!("class map of {} values is not square", out.len());
        }
        Ok((side, side, out))
    }
}

fn promise<F>(f: F) -> js_sys::Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    wasm_bindgen_futures::future_to_promise(async move { f.await.map_err(|e| JsError::new(&e.0).into()) })
}

#[wasm_bindgen]
impl Engine {
    /// JSON: `{name, labels, backend: "webgpu"|"cpu", adapter, fallback_reason, image_size, features, classes}`.
    pub fn info(&self) -> String {
        let inner = self.inner.borrow();
        let (backend, adapter, kernels) = match &inner.run {
            Backend::Gpu(gpu) => {
                let kernels = if gpu.kernels() == ConvKernels::Tiled { "tiled" } else { "registers" };
                ("webgpu", gpu.gpu.describe(), Some(kernels))
            }
            Backend::Cpu(_) => ("cpu", "WebAssembly on the CPU".to_string(), None),
        };
        let (image_size, features, classes) = inner.shape;
        let info = Info {
            name: &inner.name,
            labels: &inner.labels,
            backend,
            adapter,
            kernels,
            fallback_reason: inner.fallback_reason.as_deref(),
            image_size,
            features,
            classes,
        };
        serde_json::to_string(&info).expect("serializes")
    }

    /// Resolves a JSON string `{"top": [{index, label, prob, logit}]}`.
    pub fn classify(&self, width: u32, height: u32, rgba: Vec<u8>, top_k: usize, source: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| Error("busy: one call at a time".into()))?;
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            drop(rgba);
            let logits = inner.logits(&pixels).await?;
            let top = crate::top_k(&logits, &inner.labels, top_k.max(1));
            Ok(JsValue::from_str(&serde_json::to_string(&Classified { top }).expect("serializes")))
        })
    }

    /// Resolves the pooled features as a Float32Array.
    pub fn embed(&self, width: u32, height: u32, rgba: Vec<u8>, source: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| Error("busy: one call at a time".into()))?;
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            let pooled = inner.pooled(&pixels).await?;
            Ok(js_sys::Float32Array::from(&pooled[..]).into())
        })
    }

    /// Resolves `[headerJson, Float32Array]`: the class activation map of `class`
    /// and where the network's input crop lies in the image.
    pub fn explain(&self, width: u32, height: u32, rgba: Vec<u8>, class: usize, source: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| Error("busy: one call at a time".into()))?;
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            let (h, w, map) = inner.class_map(&pixels, class).await?;
            let min = map.iter().copied().fold(f32::INFINITY, f32::min);
            let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let p = &inner.preprocessor;
            let (rw, rh) = preprocess::resized_size(width, height, p.shortest_edge);
            let (left, top) = ((rw - p.crop) / 2, (rh - p.crop) / 2);
            let (sx, sy) = (width as f64 / rw as f64, height as f64 / rh as f64);
            let crop = Crop { x: left as f64 * sx, y: top as f64 * sy, width: p.crop as f64 * sx, height: p.crop as f64 * sy };
            let label = inner.labels.get(class).cloned().unwrap_or_else(|| format!("LABEL_{class}"));
            let header = HeatmapHeader { index: class, label, width: w, height: h, min, max, crop };
            let out = js_sys::Array::new();
            out.push(&JsValue::from_str(&serde_json::to_string(&header).expect("serializes")));
            out.push(&js_sys::Float32Array::from(&map[..]));
            Ok(out.into())
        })
    }

    /// Resolves a JSON string: GPU time per kind of layer, `[{"layer", "ms"}]`, from
    /// timestamp queries around every dispatch; `null` on the CPU path or where the
    /// adapter has no timestamp queries.
    pub fn profile(&self, width: u32, height: u32, rgba: Vec<u8>, source: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| Error("busy: one call at a time".into()))?;
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            inner.check_lost()?;
            let layers = match &mut inner.run {
                Backend::Gpu(net) => net.profile(&pixels).await?,
                Backend::Cpu(_) => None,
            };
            inner.check_lost()?;
            #[derive(Serialize)]
            struct Layer {
                layer: String,
                ms: f64,
            }
            let layers: Option<Vec<Layer>> = layers.map(|l| l.into_iter().map(|(layer, ms)| Layer { layer, ms }).collect());
            Ok(JsValue::from_str(&serde_json::to_string(&layers).expect("serializes")))
        })
    }

    /// Whether the GPU device was lost (the engine must then be rebuilt).
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap().clone()
    }

    /// Test hook: destroys the GPU device, as a driver reset would.
    pub fn lose_device(&self) {
        if let Ok(inner) = self.inner.try_borrow() {
            if let Backend::Gpu(net) = &inner.run {
                net.gpu.device.destroy();
            }
        }
    }
}
