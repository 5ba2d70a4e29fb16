// GroupNorm statistics: one workgroup per group computes the mean and the biased
// variance over the group's channels and all pixels (two passes, for accuracy), and
// folds them with the affine weight and bias into a per-channel scale and shift.
// The consumer applies relu(x * scale + shift) as it loads x.

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
@group(0) @binding(1) var<storage, read> src: array<f32>;          // [pixels][channels]
@group(0) @binding(2) var<storage, read> gamma: array<f32>;        // [channels]
@group(0) @binding(3) var<storage, read> beta: array<f32>;         // [channels]
@group(0) @binding(4) var<storage, read_write> affine: array<f32>; // scale[channels], then shift[channels]

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

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let first = wid.x * p.per_group;
    let count = p.pixels * p.per_group;

    var sum = 0.0;
    for (var e = t; e < count; e += WORKGROUP_SIZE) {
        sum += src[(e / p.per_group) * p.channels + first + e % p.per_group];
    }
    let mean = workgroup_sum(t, sum) / f32(count);

    var squares = 0.0;
    for (var e = t; e < count; e += WORKGROUP_SIZE) {
        let d = src[(e / p.per_group) * p.channels + first + e % p.per_group] - mean;
        squares += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(t, squares) / f32(count) + p.eps);

    for (var c = first + t; c < first + p.per_group; c += WORKGROUP_SIZE) {
        let scale = gamma[c] * inv_std;
        affine[c] = scale;
        affine[p.channels + c] = beta[c] - mean * scale;
    }
}
