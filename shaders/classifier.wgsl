// The linear classifier: logits = weight @ pooled + bias, weight stored [classes][features]
// (transformers' own layout), one invocation per class and image (z).

override WORKGROUP_SIZE: u32 = 64u;

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

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let image = gid.z;
    if (o >= p.classes) {
        return;
    }
    var sum = bias[o];
    for (var c = 0u; c < p.features; c++) {
        sum += pooled[image * p.features + c] * f32(weight[o * p.features + c]);
    }
    logits[image * p.classes + o] = sum;
}
