// classifier.wgsl with subgroups: each subgroup computes one class, its lanes reading
// neighbouring features of the class's weight row (coalesced) and adding their partial
// dot products with subgroupAdd: many short chains instead of one 2,048-long chain per class.
// SUBGROUP_SIZE and the subgroups' layout are checked when the device is opened.

override SUBGROUP_SIZE: u32 = 32u;
const WORKGROUP_SIZE: u32 = 64u;

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
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let o = wg.x * (WORKGROUP_SIZE / SUBGROUP_SIZE) + t / SUBGROUP_SIZE;
    let lane = t % SUBGROUP_SIZE;
    let image = wg.z;
    var sum = 0.0;
    if (o < p.classes) {
        for (var c = lane; c < p.features; c += SUBGROUP_SIZE) {
            sum += pooled[image * p.features + c] * f32(weight[o * p.features + c]);
        }
    }
    let total = subgroupAdd(sum);
    if (lane == 0u && o < p.classes) {
        logits[image * p.classes + o] = bias[o] + total;
    }
}
