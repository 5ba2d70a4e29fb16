// Class activation map: for each pixel of the last feature map, the final
// GroupNorm + ReLU output dotted with one class's classifier column. Its mean over
// the pixels plus that class's bias is the class's logit, so it shows where the
// evidence for the class lies.

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    pixels: u32,
    features: u32,
    classes: u32,
    chosen: u32,  // the class whose map is drawn
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;     // [pixels][features]
@group(0) @binding(2) var<storage, read> affine: array<f32>;  // scale[features], then shift[features]
@group(0) @binding(3) var<storage, read> weight: array<f32>;  // [features][classes]
@group(0) @binding(4) var<storage, read_write> map: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = gid.x;
    if (pixel >= p.pixels) {
        return;
    }
    var sum = 0.0;
    for (var c = 0u; c < p.features; c++) {
        let v = max(src[pixel * p.features + c] * affine[c] + affine[p.features + c], 0.0);
        sum += v * weight[c * p.classes + p.chosen];
    }
    map[pixel] = sum;
}
