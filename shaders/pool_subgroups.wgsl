// pool.wgsl with subgroups: each subgroup pools 4 channels, its lanes taking every
// SUBGROUP_SIZE-th pixel, and adds the lanes' sums with subgroupAdd. More invocations share
// the work than one per channel, which suits GPUs with many cores and few channels.
// SUBGROUP_SIZE and the subgroups' layout are checked when the device is opened.

override SUBGROUP_SIZE: u32 = 32u;
const WORKGROUP_SIZE: u32 = 64u;

struct Params {
    pixels: u32,
    features: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act4>;          // [image][pixels][features / 4]
@group(0) @binding(2) var<storage, read> affine: array<vec4<f32>>;  // per image: scale, then shift
@group(0) @binding(3) var<storage, read_write> pooled: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let f4 = p.features / 4u;
    let c4 = wg.x * (WORKGROUP_SIZE / SUBGROUP_SIZE) + t / SUBGROUP_SIZE;
    let lane = t % SUBGROUP_SIZE;
    let image = wg.z;
    var sum = vec4<f32>(0.0);
    if (c4 < f4) {
        let scale = affine[image * 2u * f4 + c4];
        let shift = affine[image * 2u * f4 + f4 + c4];
        for (var i = lane; i < p.pixels; i += SUBGROUP_SIZE) {
            sum += max(vec4<f32>(src[(image * p.pixels + i) * f4 + c4]) * scale + shift, vec4<f32>(0.0));
        }
    }
    let total = subgroupAdd(sum);
    if (lane == 0u && c4 < f4) {
        pooled[image * f4 + c4] = total / f32(p.pixels);
    }
}
