// classifier.wgsl with subgroups: each subgroup computes one class, its lanes reading
// neighbouring features of the class's weight row (coalesced) and adding their partial
// dot products with subgroupAdd: many short chains instead of one 2,048-long chain per class.
// SUBGROUP_SIZE and the subgroups' layout are checked when the device is opened.

override SUBGROUP_SIZE: u32 = 32u;
const WORKGROUP_SIZE: u32 = 64u;

// Parameters and bindings: classifier_bindings.wgsl.

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
