// The convolutions' shared interface (prepended to conv.wgsl and conv_tiled.wgsl by
// src/gpu/network.rs): the specialization constants, parameters, bindings and the epilogue.
//
// The kernel size is a pipeline constant so that loops unroll and a 1x1 convolution
// (no padding) drops the bounds checks.
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
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;      // [in_h][in_w][cin4]
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;   // [k][k][cin][cout4]
@group(0) @binding(3) var<storage, read> affine: array<vec4<f32>>;   // scale[cin4], then shift[cin4]
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>; // [out_h][out_w][cout4]
@group(0) @binding(5) var<storage, read_write> dst: array<vec4<f32>>;

// One output pixel's 8 channels (two vec4 from vec4 index `at`), plus the residual.
fn store_outputs(at: u32, out: vec4<f32>, out2: vec4<f32>) {
    var a = out;
    var b = out2;
    if (ADD_RESIDUAL) {
        a += residual[at];
        b += residual[at + 1u];
    }
    dst[at] = a;
    dst[at + 1u] = b;
}
