//! bit50: the BiT-50 image classifier (google/bit-50, ResNet-v2 50x1) on WebGPU,
//! natively through wgpu and in the browser through WebAssembly.
//!
//! The pipeline, one module per step:
//! [`config`] (the published config files) -> [`weights`] (the web weight format and
//! its converters) -> [`preprocess`] (image to tensor, as the reference processor) ->
//! [`gpu`] (WGSL kernels) or [`cpu`] (blocked matrix products, the fallback), chosen by
//! [`engine`] -> [`top_k`], and [`head`]: your own classes, a linear head on the pooled features. [`reference`] is the plain CPU oracle both are tested against;
//! [`layers`] holds the simple layers they share, [`parallel`] how the CPU splits work.

pub mod config;
pub mod cpu;
pub mod engine;
mod error;
pub mod gpu;
pub mod head;
pub mod layers;
pub mod model;
pub mod parallel;
pub mod preprocess;
pub mod reference;
pub mod weights;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Context, Error, ErrorKind, Result, WithKind};

/// One class of a prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub prob: f32,
    pub logit: f32,
}

/// The `k` most probable classes (softmax over all logits), most probable first.
pub fn top_k(logits: &[f32], labels: &[String], k: usize) -> Vec<Prediction> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let total: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Prediction {
            index: i,
            label: labels.get(i).cloned().unwrap_or_else(|| format!("LABEL_{i}")),
            prob: ((logits[i] as f64 - max).exp() / total) as f32,
            logit: logits[i],
        })
        .collect()
}
