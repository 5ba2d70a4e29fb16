// Class activation map: for each pixel of the last feature map, the final
// GroupNorm + ReLU output dotted with one class's classifier row. Its mean over
// the pixels plus that class's bias is the class's logit, so it shows where the
// evidence for the class lies. One invocation per pixel and image (z).
//
// The class of image i is classes[i]; where that is 0xFFFFFFFF, the image's most probable
// class (the first largest logit), so that one submission classifies and explains. The class
// used is written to classes[capacity + i].

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    pixels: u32,
    features: u32,
    classes: u32,
    capacity: u32,  // images the buffers hold
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;           // [image][pixels][features]
@group(0) @binding(2) var<storage, read> affine: array<f32>;        // per image: scale[features], then shift[features]
@group(0) @binding(3) var<storage, read> weight: array<act>;        // [classes][features]
@group(0) @binding(4) var<storage, read> logits: array<f32>;        // [image][classes]
@group(0) @binding(5) var<storage, read_write> classes: array<u32>; // requested[capacity], then used[capacity]
@group(0) @binding(6) var<storage, read_write> map: array<f32>;     // [image][pixels]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = gid.x;
    let image = gid.z;
    if (pixel >= p.pixels) {
        return;
    }
    var chosen = classes[image];
    if (chosen == 0xFFFFFFFFu) {
        chosen = 0u;
        for (var o = 1u; o < p.classes; o++) {
            if (logits[image * p.classes + o] > logits[image * p.classes + chosen]) {
                chosen = o;
            }
        }
    }
    if (pixel == 0u) {
        classes[p.capacity + image] = chosen;
    }
    let a = image * 2u * p.features;
    let x = (image * p.pixels + pixel) * p.features;
    var sum = 0.0;
    for (var c = 0u; c < p.features; c++) {
        let v = max(f32(src[x + c]) * affine[a + c] + affine[a + p.features + c], 0.0);
        sum += v * f32(weight[chosen * p.features + c]);
    }
    map[image * p.pixels + pixel] = sum;
}
