// The head's pooling: the final GroupNorm + ReLU applied on the fly, then global
// average pooling into the 2,048-d feature vector the classifier reads.

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    pixels: u32,
    features: u32,
    classes: u32,
    _unused: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;     // [pixels][features]
@group(0) @binding(2) var<storage, read> affine: array<f32>;  // scale[features], then shift[features]
@group(0) @binding(3) var<storage, read_write> pooled: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.features) {
        return;
    }
    let scale = affine[c];
    let shift = affine[p.features + c];
    var sum = 0.0;
    for (var i = 0u; i < p.pixels; i++) {
        sum += max(src[i * p.features + c] * scale + shift, 0.0);
    }
    pooled[c] = sum / f32(p.pixels);
}
