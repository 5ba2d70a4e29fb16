// The head's pooling: the final GroupNorm + ReLU applied on the fly, then global
// average pooling into the feature vector (2,048 for BiT-50) the classifier reads.
// One invocation per channel and image (z).

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    pixels: u32,
    features: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;     // [image][pixels][features]
@group(0) @binding(2) var<storage, read> affine: array<f32>;  // per image: scale[features], then shift[features]
@group(0) @binding(3) var<storage, read_write> pooled: array<f32>;  // [image][features]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let image = gid.z;
    if (c >= p.features) {
        return;
    }
    let scale = affine[image * 2u * p.features + c];
    let shift = affine[image * 2u * p.features + p.features + c];
    let base = image * p.pixels * p.features + c;
    var sum = 0.0;
    for (var i = 0u; i < p.pixels; i++) {
        sum += max(f32(src[base + i * p.features]) * scale + shift, 0.0);
    }
    pooled[image * p.features + c] = sum / f32(p.pixels);
}
