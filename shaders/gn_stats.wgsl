// GroupNorm statistics: one workgroup per group and image computes the mean and the biased
// variance over the group's channels and all pixels (two passes, for accuracy, in f32
// whatever the storage), and folds them with the affine weight and bias into a per-channel
// scale and shift. The consumer applies relu(x * scale + shift) as it loads x.
// `workgroup_sum` comes from reduce.wgsl or, where the device has subgroups, reduce_subgroups.wgsl.

const WORKGROUP_SIZE: u32 = 256u;

struct Params {
    pixels: u32,
    channels: u32,
    per_group: u32,  // channels / groups
    _unused: u32,
    eps: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;           // [image][pixels][channels]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;         // [channels]
@group(0) @binding(3) var<storage, read> beta: array<f32>;          // [channels]
@group(0) @binding(4) var<storage, read_write> affine: array<f32>;  // per image: scale[channels], then shift[channels]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let first = wid.x * p.per_group;
    let count = p.pixels * p.per_group;
    let image = wid.z;
    let base = image * p.pixels * p.channels + first;

    var sum = 0.0;
    for (var e = t; e < count; e += WORKGROUP_SIZE) {
        sum += f32(src[base + (e / p.per_group) * p.channels + e % p.per_group]);
    }
    let mean = workgroup_sum(t, sum) / f32(count);

    var squares = 0.0;
    for (var e = t; e < count; e += WORKGROUP_SIZE) {
        let d = f32(src[base + (e / p.per_group) * p.channels + e % p.per_group]) - mean;
        squares += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(t, squares) / f32(count) + p.eps);

    let out = image * 2u * p.channels;
    for (var c = first + t; c < first + p.per_group; c += WORKGROUP_SIZE) {
        let scale = gamma[c] * inv_std;
        affine[out + c] = scale;
        affine[out + p.channels + c] = beta[c] - mean * scale;
    }
}
