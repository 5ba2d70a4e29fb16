// Checked when a device with subgroups is opened: for each invocation of one workgroup, its
// subgroup's size, its lane, and the first active invocation of its subgroup. The subgroup
// kernels need subgroups to be contiguous runs of local_invocation_index, which GPUs do but
// WebGPU does not promise.

@group(0) @binding(0) var<storage, read_write> out: array<vec4<u32>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) t: u32, @builtin(subgroup_size) size: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
    out[t] = vec4<u32>(size, lane, subgroupBroadcastFirst(t), 0u);
}
