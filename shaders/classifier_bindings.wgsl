// The classifier's interface (prepended to classifier.wgsl and classifier_subgroups.wgsl by
// src/gpu/kernels.rs): logits = weight @ pooled + bias, the weight stored [classes][features]
// (transformers' own layout); the dispatch's z is the image.

struct Params {
    features: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pooled: array<f32>;   // [image][features]
@group(0) @binding(2) var<storage, read> weight: array<act>;   // [classes][features]
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;  // [image][classes]
