// workgroup_sum with subgroups: each subgroup adds its lanes' values in registers, then every
// invocation adds the subgroups' sums: two barriers instead of log2(WORKGROUP_SIZE).
// SUBGROUP_SIZE is the device's, and subgroups are contiguous runs of local_invocation_index:
// both checked when the device is opened (src/gpu/kernels.rs, `subgroup_layout`).

override SUBGROUP_SIZE: u32 = 32u;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

fn workgroup_sum(t: u32, value: f32) -> f32 {
    let sum = subgroupAdd(value);
    if (t % SUBGROUP_SIZE == 0u) {
        partial[t / SUBGROUP_SIZE] = sum;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var s = 0u; s < WORKGROUP_SIZE / SUBGROUP_SIZE; s++) {
        total += partial[s];
    }
    workgroupBarrier();
    return total;
}
