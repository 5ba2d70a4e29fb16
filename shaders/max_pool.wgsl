// The stem's ConstantPad2d(1, value 0) followed by MaxPool 3x3 / stride 2 without padding:
// taps that fall in the padding count as 0, so border maxima are clamped at >= 0.
// All 9 taps count (a value or the padding's 0), so the start value never survives.

override WORKGROUP_SIZE: u32 = 64u;

struct Params {
    in_h: u32,
    in_w: u32,
    c4: u32,
    out_w: u32,
    total: u32,      // out_h * out_w * c4
    threads_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act4>;         // [image][in_h][in_w][c4]
@group(0) @binding(2) var<storage, read_write> dst: array<act4>;   // [image][out_h][out_w][c4]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * p.threads_x;
    if (index >= p.total) {
        return;
    }
    let c4 = index % p.c4;
    let pixel = index / p.c4;
    let src_base = gid.z * p.in_h * p.in_w * p.c4;
    // Coordinates in the padded map are (2*o + k); in the unpadded map, one less.
    let y0 = i32((pixel / p.out_w) * 2u) - 1;
    let x0 = i32((pixel % p.out_w) * 2u) - 1;
    var best = act4(-60000.0);
    for (var ky = 0; ky < 3; ky++) {
        for (var kx = 0; kx < 3; kx++) {
            let y = y0 + ky;
            let x = x0 + kx;
            if (y >= 0 && y < i32(p.in_h) && x >= 0 && x < i32(p.in_w)) {
                best = max(best, src[src_base + (u32(y) * p.in_w + u32(x)) * p.c4 + c4]);
            } else {
                best = max(best, act4(0.0));
            }
        }
    }
    dst[gid.z * p.total + index] = best;
}
