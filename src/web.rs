//! The WebAssembly surface (wasm-bindgen), used by `www/bit50-worker.js`.
//!
//! JavaScript fetches the manifest and shards (with progress and the Cache Storage),
//! hands each shard to a [`ModelLoader`], which checks its size and sha256. [`plan_engine`]
//! chooses the path first (the engine policy, `engine.rs`: WebGPU or the CPU path), so that on
//! WebGPU each shard's tensors go to the GPU as it arrives; [`finish_engine`] then makes the
//! engine. Every call takes RGBA pixels decoded by the browser; the preprocessing after
//! that is the crate's own, so results match the native `bit50 classify`. Errors reach
//! JavaScript as `Error`s with a `code` (the error's kind).

use crate::engine::{Backend, Engine, Options, Phase, Plan};
use crate::gpu::{Features, Gpu, Outputs, Want};
use crate::head::{self, Head, ModelRef, TrainingSet};
use crate::model::{parameters, Network, Tensor, TensorMap};
use crate::preprocess;
use crate::weights::{for_each_tensor, Manifest};
use std::collections::{BTreeMap, BTreeSet};
use crate::{bail, config::PreprocessorConfig, Error, ErrorKind, Result, WithKind};
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


/// A model on its way in: the manifest, then (once [`plan_engine`] has chosen the path) each
/// shard as it arrives, checked, and on the GPU path its tensors uploaded at once and dropped
/// (so the weights never sit in WebAssembly memory twice); [`finish_engine`] makes the engine.
#[wasm_bindgen]
pub struct ModelLoader {
    manifest: Manifest,
    source: String,
    config: crate::config::BitConfig,
    preprocessor: PreprocessorConfig,
    /// Every parameter's name and kernel-layout shape.
    parameters: BTreeMap<String, Vec<usize>>,
    received: BTreeSet<String>,
    plan: Option<Plan>,
    /// The CPU path's weights, as they arrive.
    tensors: TensorMap,
    lost: Arc<Mutex<Option<String>>>,
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
    pub fn new(manifest: &[u8], source: &str) -> std::result::Result<ModelLoader, JsValue> {
        let bad = |e: Error| js_error(e.or_kind(ErrorKind::BadModel));
        let manifest = Manifest::parse(manifest, source).map_err(bad)?;
        // Fail early on a model we cannot build, before downloading anything.
        let config = manifest.bit_config(source).map_err(bad)?;
        let preprocessor = manifest.preprocessor_config(source).map_err(bad)?;
        if manifest.labels.len() != config.num_classes() {
            return Err(bad(Error::from(format!("{source}: {} labels for {} classes", manifest.labels.len(), config.num_classes()))));
        }
        let parameters = parameters(&config).into_iter().map(|p| (p.name.clone(), p.kernel_shape())).collect();
        Ok(ModelLoader {
            manifest,
            source: source.to_string(),
            config,
            preprocessor,
            parameters,
            received: BTreeSet::new(),
            plan: None,
            tensors: TensorMap::new(),
            lost: Arc::new(Mutex::new(None)),
        })
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

    /// Checks shard `index` (size and sha256) and takes in its tensors; `source` is its URL;
    /// `sha256` the digest WebCrypto computed, if the page has it (hex).
    pub fn add_shard(&mut self, index: usize, bytes: Vec<u8>, source: &str, sha256: Option<String>) -> std::result::Result<(), JsValue> {
        let shard = self.manifest.shards.get(index).ok_or_else(|| js_error(Error::new(ErrorKind::BadModel, format!("{}: no shard {index}", self.source))))?;
        Manifest::verify_shard(shard, &bytes, sha256, source).map_err(js_error)?;
        let (parameters, received, tensors) = (&self.parameters, &mut self.received, &mut self.tensors);
        let mut gpu = match &mut self.plan {
            Some(Plan::Gpu(net)) => Some(net),
            Some(Plan::Cpu { .. }) => None,
            None => return Err(js_error(Error::from("add_shard before plan_engine".to_string()))),
        };
        let take = |name: String, tensor: Tensor| -> Result<()> {
            let Some(shape) = parameters.get(&name) else {
                bail!(BadModel, "{source}: unexpected tensor {name}");
            };
            if &tensor.shape != shape {
                bail!(BadModel, "{source}: tensor {name} has shape {:?}, expected {shape:?}", tensor.shape);
            }
            if !received.insert(name.clone()) {
                bail!(BadModel, "{source}: tensor {name} appears twice");
            }
            match gpu.as_deref_mut() {
                Some(net) => net.upload(&name, &tensor.data),
                None => {
                    tensors.insert(name, tensor);
                    Ok(())
                }
            }
        };
        for_each_tensor(&bytes, source, take).kind(ErrorKind::BadModel).map_err(js_error)
    }
}

/// Chooses the path (the engine policy: see `engine`) before the weights arrive, and on the
/// GPU records the network. `backend` is "webgpu", "cpu" or "auto"; `software`: the WebGPU
/// adapter is a fallback (an emulator); `subgroups`: the worker asked the device for the
/// `subgroups` feature (wgpu 30 cannot); `batch`: images per GPU submission; `on_phase(phase,
/// done, total)` hears what it is doing: "preparing" (the GPU: opening it, compiling the
/// network's kernels), or "measuring" (`done` of `total` timings).
#[wasm_bindgen]
pub async fn plan_engine(mut loader: ModelLoader, backend: String, software: bool, subgroups: bool, batch: usize, on_phase: js_sys::Function) -> std::result::Result<ModelLoader, JsValue> {
    let options = Options {
        backend: Backend::parse(&backend).map_err(js_error)?,
        software,
        features: Features { subgroups, ..Features::ALL },
        batch: batch.clamp(1, 64),
        ..Options::default()
    };
    let lost = loader.lost.clone();
    let on_gpu = |gpu: &Gpu| {
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
    };
    let report = |phase: Phase| {
        let (name, done, total) = match phase {
            Phase::Preparing => ("preparing", 0, 0),
            Phase::Measuring { done, total } => ("measuring", done, total),
        };
        let _ = on_phase.call3(&JsValue::NULL, &name.into(), &(done as u32).into(), &(total as u32).into());
    };
    let skeleton = Network::skeleton(&loader.config, loader.preprocessor.crop);
    loader.plan = Some(Engine::plan(&skeleton, loader.manifest.dtype, &options, on_gpu, now_ms, report).await.map_err(js_error)?);
    Ok(loader)
}

/// The engine, once every shard is in.
#[wasm_bindgen]
pub fn finish_engine(loader: ModelLoader) -> std::result::Result<WebEngine, JsValue> {
    let ModelLoader { manifest, source, config, preprocessor, plan, tensors, lost, .. } = loader;
    let plan = plan.ok_or_else(|| js_error(Error::from("finish_engine before plan_engine".to_string())))?;
    let image_size = preprocessor.crop;
    let network = || Network::from_tensors(&config, image_size, tensors, &source);
    let engine = Engine::finish(plan, network, &source).kind(ErrorKind::BadModel).map_err(js_error)?;
    let skeleton = Network::skeleton(&config, image_size);
    let shape = (image_size, skeleton.features(), skeleton.classes());
    let sha256 = manifest.model_sha256();
    let inner = Inner { name: manifest.name, sha256, labels: manifest.labels, preprocessor, engine, lost: lost.clone(), shape, gflop: skeleton.flops() / 1e9 };
    Ok(WebEngine { inner: Rc::new(RefCell::new(inner)), lost })
}

/// The image limits (pixels, file bytes), for the worker to refuse a file before decoding it.
#[wasm_bindgen]
pub fn limits() -> String {
    serde_json::json!({ "max_pixels": preprocess::MAX_PIXELS }).to_string()
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

struct Inner {
    name: String,
    /// The model's identity, which heads record.
    sha256: String,
    labels: Vec<String>,
    preprocessor: PreprocessorConfig,
    engine: Engine,
    lost: Arc<Mutex<Option<String>>>,
    /// (image size, features, classes)
    shape: (usize, usize, usize),
    /// Floating-point operations of one image, in billions.
    gflop: f64,
}

#[derive(Serialize)]
struct Info<'a> {
    name: &'a str,
    /// The model's identity (`Manifest::model_sha256`), which heads record.
    sha256: &'a str,
    labels: &'a [String],
    backend: &'static str,
    adapter: String,
    /// The GPU kernels: "registers" or "tiled" convolutions.
    kernels: Option<&'static str>,
    /// "f32", "f16" (f16 storage) or "f16-arithmetic", on the GPU.
    precision: Option<&'static str>,
    /// Whether the GPU reductions use subgroups.
    subgroups: bool,
    /// Images per GPU submission.
    batch: usize,
    fallback_reason: Option<&'a str>,
    image_size: usize,
    features: usize,
    classes: usize,
    /// Billions of floating-point operations per image.
    gflop: f64,
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

/// A loaded network; every method resolves a Promise and rejects with an `Error` whose
/// `code` is the error's kind (docs/web.md). Calls must not overlap (the worker queues them).
#[wasm_bindgen(js_name = Engine)]
pub struct WebEngine {
    inner: Rc<RefCell<Inner>>,
    lost: Arc<Mutex<Option<String>>>,
}

impl Inner {
    fn check_lost(&self) -> Result<()> {
        match &*self.lost.lock().unwrap() {
            Some(msg) => Err(Error::new(ErrorKind::DeviceLost, format!("device-lost: {msg}"))),
            None => Ok(()),
        }
    }

    fn model_ref(&self) -> ModelRef {
        ModelRef { name: self.name.clone(), sha256: self.sha256.clone() }
    }

    fn pixels(&self, width: u32, height: u32, rgba: &[u8], source: &str) -> Result<Vec<f32>> {
        let img = preprocess::from_rgba(width, height, rgba, source)?;
        Ok(preprocess::preprocess(&img, &self.preprocessor))
    }

    async fn run(&mut self, images: &[&[f32]], want: Want) -> Result<Vec<Outputs>> {
        self.check_lost()?;
        let out = self.engine.run(images, want).await;
        self.check_lost()?;
        out
    }
}

/// An `Error` for JavaScript, its `code` the error's kind.
fn js_error(e: Error) -> JsValue {
    let error = js_sys::Error::new(&e.message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &e.kind.code().into());
    error.into()
}

fn promise<F>(f: F) -> js_sys::Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    wasm_bindgen_futures::future_to_promise(async move { f.await.map_err(js_error) })
}

fn busy() -> Error {
    Error::new(ErrorKind::Other, "busy: one call at a time")
}

/// One image of a batch from JavaScript: `{width, height, data: Uint8Array (RGBA), name}`.
fn read_image(value: &JsValue) -> Result<(u32, u32, Vec<u8>, String)> {
    let get = |key: &str| js_sys::Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let name = get("name").as_string().unwrap_or_else(|| "image".into());
    let (Some(width), Some(height)) = (get("width").as_f64(), get("height").as_f64()) else {
        return Err(Error::new(ErrorKind::BadInput, format!("{name}: no width and height")));
    };
    let data = get("data").dyn_into::<js_sys::Uint8Array>().map_err(|_| Error::new(ErrorKind::BadInput, format!("{name}: no RGBA bytes")))?;
    Ok((width as u32, height as u32, data.to_vec(), name))
}

#[wasm_bindgen(js_class = Engine)]
impl WebEngine {
    /// JSON: see `Info`.
    pub fn info(&self) -> String {
        let inner = self.inner.borrow();
        let gpu = inner.engine.gpu();
        let variant = gpu.map(|g| g.variant());
        let (image_size, features, classes) = inner.shape;
        let info = Info {
            name: &inner.name,
            sha256: &inner.sha256,
            labels: &inner.labels,
            backend: if gpu.is_some() { "webgpu" } else { "cpu" },
            adapter: gpu.map_or_else(|| "WebAssembly on the CPU".to_string(), |g| g.gpu.describe()),
            kernels: variant.map(|v| v.conv.name()),
            precision: variant.map(|v| v.precision.name()),
            subgroups: variant.is_some_and(|v| v.subgroups),
            batch: inner.engine.batch(),
            fallback_reason: inner.engine.reason.as_deref(),
            image_size,
            features,
            classes,
            gflop: inner.gflop,
        };
        serde_json::to_string(&info).expect("serializes")
    }

    /// Classifies a batch, `images` an array of `{width, height, data, name}` (RGBA), in as few
    /// GPU submissions as the batch size allows. Resolves a JSON array with, per image, either
    /// `{"top": [{index, label, prob, logit}]}` or `{"error": {code, message}}`: one bad
    /// image fails alone.
    pub fn classify(&self, images: js_sys::Array, top_k: usize) -> js_sys::Promise {
        self.classify_images(images, top_k, None)
    }

    /// `classify`, with your own classes too: each result also has `"custom": [{index, label,
    /// prob}]`, most probable first. The head must have been loaded for this model (`load_head`).
    pub fn classify_with_head(&self, images: js_sys::Array, top_k: usize, head: &WebHead) -> js_sys::Promise {
        self.classify_images(images, top_k, Some(head.head.clone()))
    }

    fn classify_images(&self, images: js_sys::Array, top_k: usize, head: Option<Head>) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| busy())?;
            if let Some(head) = &head {
                head.check_model(&inner.model_ref(), inner.shape.1, "the head")?;
            }
            let prepared: Vec<Result<Vec<f32>>> = images
                .iter()
                .map(|value| read_image(&value).and_then(|(w, h, rgba, name)| inner.pixels(w, h, &rgba, &name)))
                .collect();
            let good: Vec<&[f32]> = prepared.iter().filter_map(|p| p.as_ref().ok().map(|v| v.as_slice())).collect();
            let mut outputs = inner.run(&good, Want { pooled: head.is_some(), ..Want::default() }).await?.into_iter();
            let results: Vec<serde_json::Value> = prepared
                .iter()
                .map(|p| match p {
                    Ok(_) => {
                        let out = outputs.next().expect("one output per good image");
                        let mut result = serde_json::json!({ "top": crate::top_k(&out.logits, &inner.labels, top_k.max(1)) });
                        if let (Some(head), Some(features)) = (&head, &out.pooled) {
                            result["custom"] = serde_json::json!(head.classify(features));
                        }
                        result
                    }
                    Err(e) => serde_json::json!({ "error": { "code": e.kind.code(), "message": e.message } }),
                })
                .collect();
            Ok(JsValue::from_str(&serde_json::to_string(&results).expect("serializes")))
        })
    }

    /// Resolves the pooled features as a Float32Array; with `mirror`, those of the image's
    /// mirror image (what a head trained with flips also learns from).
    pub fn embed(&self, width: u32, height: u32, rgba: Vec<u8>, source: String, mirror: bool) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| busy())?;
            let mut pixels = inner.pixels(width, height, &rgba, &source)?;
            if mirror {
                pixels = preprocess::mirror(&pixels, inner.shape.0);
            }
            let out = inner.run(&[&pixels], Want { pooled: true, ..Want::default() }).await?.remove(0);
            Ok(js_sys::Float32Array::from(&out.pooled.expect("asked for")[..]).into())
        })
    }

    /// Resolves `[headerJson, Float32Array]`: the class activation map of `class`
    /// and where the network's input crop lies in the image.
    pub fn explain(&self, width: u32, height: u32, rgba: Vec<u8>, class: usize, source: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| busy())?;
            let classes = inner.shape.2;
            if class >= classes {
                bail!(BadInput, "class index {class} is out of range (the model has {classes} classes)");
            }
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            let out = inner.run(&[&pixels], Want { class_map: Some(Some(class)), ..Want::default() }).await?.remove(0);
            let (_, map) = out.class_map.expect("asked for");
            let side = (map.len() as f64).sqrt().round() as usize;
            let min = map.iter().copied().fold(f32::INFINITY, f32::min);
            let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let p = &inner.preprocessor;
            let (rw, rh) = preprocess::resized_size(width, height, p.shortest_edge);
            let (left, top) = ((rw - p.crop as u64) / 2, (rh - p.crop as u64) / 2);
            let (sx, sy) = (width as f64 / rw as f64, height as f64 / rh as f64);
            let crop = Crop { x: left as f64 * sx, y: top as f64 * sy, width: p.crop as f64 * sx, height: p.crop as f64 * sy };
            let label = inner.labels.get(class).cloned().unwrap_or_else(|| format!("LABEL_{class}"));
            let header = HeatmapHeader { index: class, label, width: side, height: side, min, max, crop };
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
            let mut inner = inner.try_borrow_mut().map_err(|_| busy())?;
            let pixels = inner.pixels(width, height, &rgba, &source)?;
            inner.check_lost()?;
            let layers = inner.engine.profile(&pixels).await?;
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

    /// Reads a head file (its text as bytes; `source` names it in errors) and checks that it
    /// belongs to this model: a head trained on another one is refused (`other-model`).
    pub fn load_head(&self, bytes: &[u8], source: &str) -> std::result::Result<WebHead, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| js_error(busy()))?;
        let head = Head::parse(bytes, source).map_err(js_error)?;
        head.check_model(&inner.model_ref(), inner.shape.1, source).map_err(js_error)?;
        Ok(WebHead { head })
    }

    /// Trains a head on this model's features: see `train_head`.
    pub fn fit_head(&self, classes: &str, rows: Vec<f32>, class: Vec<u32>, example: Vec<u32>, options: &str) -> std::result::Result<WebHead, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| js_error(busy()))?;
        train_head(classes, inner.shape.1, rows, class, example, options, &inner.name, &inner.sha256)
    }

    /// Whether the GPU device was lost (the engine must then be rebuilt).
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap().clone()
    }

    /// Test hook: destroys the GPU device, as a driver reset would.
    pub fn lose_device(&self) {
        if let Ok(inner) = self.inner.try_borrow() {
            if let Some(net) = inner.engine.gpu() {
                net.gpu.device.destroy();
            }
        }
    }
}

/// A head (your own classes): trained by `train_head` or `Engine.fit_head`, or read by
/// `Engine.load_head`.
#[wasm_bindgen(js_name = Head)]
pub struct WebHead {
    head: Head,
}

#[wasm_bindgen(js_class = Head)]
impl WebHead {
    /// The head file's text (docs/web.md: the same format as `bit50 fit` writes).
    pub fn to_json(&self) -> String {
        self.head.to_json()
    }

    /// JSON: `{classes, features, model: {name, sha256}, training}` (training may be null).
    pub fn summary(&self) -> String {
        let h = &self.head;
        serde_json::json!({ "classes": h.classes, "features": h.features, "model": h.model, "training": h.training }).to_string()
    }

    /// Probabilities of the head's classes for one feature vector (`features` long), JSON
    /// `[{index, label, prob}]`, most probable first.
    pub fn classify_features(&self, features: &[f32]) -> std::result::Result<String, JsValue> {
        if features.len() != self.head.features {
            return Err(js_error(Error::new(ErrorKind::BadInput, format!("{} features given; the head takes {}", features.len(), self.head.features))));
        }
        Ok(serde_json::to_string(&self.head.classify(features)).expect("serializes"))
    }
}

/// Checks the labels of a head to be trained (a JSON array), before any photo is embedded.
#[wasm_bindgen]
pub fn check_head_labels(classes: &str) -> std::result::Result<(), JsValue> {
    let classes: Vec<String> = serde_json::from_str(classes).map_err(|e| js_error(Error::new(ErrorKind::BadInput, format!("classes (a JSON array of labels): {e}"))))?;
    head::check_classes(&classes).map_err(js_error)
}

#[derive(serde::Deserialize)]
struct FitOptions {
    l2: Option<f64>,
    #[serde(default)]
    flips: bool,
    #[serde(default)]
    loo: bool,
}

/// Trains a head: `classes` a JSON array of labels; `rows` the features of every view
/// (`[views][features]`), `class` the class of each view and `example` the number of the
/// example it shows (0, 1, 2...: a photo and its mirror image share one); `options` JSON
/// `{l2: number|null, flips, loo}`; the model it belongs to by name and sha256.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub fn train_head(classes: &str, features: usize, rows: Vec<f32>, class: Vec<u32>, example: Vec<u32>, options: &str, model_name: &str, model_sha256: &str) -> std::result::Result<WebHead, JsValue> {
    let bad = |what: &str, e: serde_json::Error| js_error(Error::new(ErrorKind::BadInput, format!("{what}: {e}")));
    let classes: Vec<String> = serde_json::from_str(classes).map_err(|e| bad("classes (a JSON array of labels)", e))?;
    let options: FitOptions = serde_json::from_str(options).map_err(|e| bad("options", e))?;
    let set = TrainingSet::from_flat(features, rows, class.into_iter().map(|c| c as usize).collect(), example.into_iter().map(|e| e as usize).collect()).map_err(js_error)?;
    let model = ModelRef { name: model_name.into(), sha256: model_sha256.into() };
    let head = head::train(&classes, &set, &head::Options { l2: options.l2, flips: options.flips, loo: options.loo }, &model).map_err(js_error)?;
    Ok(WebHead { head })
}
