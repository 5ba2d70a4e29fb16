// The linear classifier, one invocation per class and image (z).
// Parameters and bindings: classifier_bindings.wgsl.

override WORKGROUP_SIZE: u32 = 64u;

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
