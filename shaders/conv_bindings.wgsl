// The convolutions' shared interface (prepended to conv.wgsl and conv_tiled.wgsl by
// src/gpu/kernels.rs, after the prelude that defines the storage types `act4` and the
// multiply type `mul4`): specialization constants, parameters, bindings, the epilogue.
//
// The kernel size is a pipeline constant so that loops unroll and a 1x1 convolution
// (no padding) drops the bounds checks. The dispatch's z is the image within the batch.
override KERNEL: u32;
override NORM_INPUT: bool = true;
override ADD_RESIDUAL: bool = false;

struct Params {
    in_h: u32,
    in_w: u32,
    cin4: u32,          // input channels / 4
    cout4: u32,         // output channels / 4 (a multiple of 2)
    out_h: u32,
    out_w: u32,
    _kernel: u32,       // (the KERNEL constant)
    stride: u32,
    pad: u32,
    pixel_groups: u32,  // ceil(out_h * out_w / 4)
    threads_x: u32,     // invocations per row of the dispatch grid
    _unused: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act4>;           // [image][in_h][in_w][cin4]
@group(0) @binding(2) var<storage, read> weight: array<act4>;        // [k][k][cin][cout4]
@group(0) @binding(3) var<storage, read> affine: array<vec4<f32>>;   // per image: scale[cin4], then shift[cin4]
@group(0) @binding(4) var<storage, read> residual: array<act4>;      // [image][out_h][out_w][cout4]
@group(0) @binding(5) var<storage, read_write> dst: array<act4>;

// The input's GroupNorm + ReLU (where NORM_INPUT), as a value is loaded: `base` is the
// image's first affine entry.
fn normalized(v: act4, c4: u32, base: u32) -> vec4<f32> {
    var x = vec4<f32>(v);
    if (NORM_INPUT) {
        x = max(x * affine[base + c4] + affine[base + p.cin4 + c4], vec4<f32>(0.0));
    }
    return x;
}

// One step of the 4-input-channel outer product: `v`'s 4 channels times 4 rows of weights,
// multiplied in `mul4` (f32, or f16 on the f16-arithmetic path) and summed into f32.
fn madd(acc: vec4<f32>, v: vec4<f32>, w0: act4, w1: act4, w2: act4, w3: act4) -> vec4<f32> {
    let x = mul4(v);
    return acc + vec4<f32>(x.x * mul4(w0) + x.y * mul4(w1) + x.z * mul4(w2) + x.w * mul4(w3));
}

// One output pixel's 8 channels (two vec4 from vec4 index `at`), plus the residual.
fn store_outputs(at: u32, out: vec4<f32>, out2: vec4<f32>) {
    var a = out;
    var b = out2;
    if (ADD_RESIDUAL) {
        a += vec4<f32>(residual[at]);
        b += vec4<f32>(residual[at + 1u]);
    }
    dst[at] = act4(a);
    dst[at + 1u] = act4(b);
}
