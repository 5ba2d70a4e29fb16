// The sum of one value per invocation over a workgroup of WORKGROUP_SIZE (a power of two),
// by a tree in workgroup memory: log2(WORKGROUP_SIZE) barriers.

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn workgroup_sum(t: u32, value: f32) -> f32 {
    partial[t] = value;
    workgroupBarrier();
    for (var width = WORKGROUP_SIZE / 2u; width > 0u; width = width / 2u) {
        if (t < width) {
            partial[t] += partial[t + width];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
