// Convolution as an implicit GEMM over NHWC activations (no im2col buffer).
// Each invocation computes 4 consecutive output pixels x 8 output channels (two vec4),
// keeping the 4x8 tile in registers: no workgroup memory, no barriers.
//
// The input's GroupNorm + ReLU is applied as each value is loaded (per-channel
// scale and shift from gn_stats.wgsl), and the residual is added in the epilogue,
// so a pre-activation bottleneck never writes its normalized activations out.
// Padding pads the normalized input with zeros, so padded taps are simply skipped.

// Constants, parameters, bindings and helpers: conv_bindings.wgsl.
override WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * p.threads_x;
    let co8 = index % (p.cout4 / 2u);
    let group = index / (p.cout4 / 2u);
    let co4 = co8 * 2u;
    if (group >= p.pixel_groups) {
        return;
    }
    let pixels = p.out_h * p.out_w;
    let image = gid.z;
    let src_base = image * p.in_h * p.in_w * p.cin4;
    let affine_base = image * 2u * p.cin4;

    // Top-left input coordinate of each of the 4 output pixels (the last group may repeat a pixel).
    var oy: array<i32, 4>;
    var ox: array<i32, 4>;
    for (var i = 0u; i < 4u; i++) {
        let pixel = min(group * 4u + i, pixels - 1u);
        oy[i] = i32((pixel / p.out_w) * p.stride) - i32(p.pad);
        ox[i] = i32((pixel % p.out_w) * p.stride) - i32(p.pad);
    }

    var acc: array<vec4<f32>, 4>;   // channels co4 .. co4+3
    var acc2: array<vec4<f32>, 4>;  // channels co4+4 .. co4+7
    for (var ky = 0u; ky < KERNEL; ky++) {
        for (var kx = 0u; kx < KERNEL; kx++) {
            // Start of each pixel's input channels, or -1 where the tap falls in the padding.
            var base: array<i32, 4>;
            for (var i = 0u; i < 4u; i++) {
                let iy = oy[i] + i32(ky);
                let ix = ox[i] + i32(kx);
                let inside = KERNEL == 1u || (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w));
                base[i] = select(-1, (iy * i32(p.in_w) + ix) * i32(p.cin4), inside);
            }
            let tap = (ky * KERNEL + kx) * p.cin4 * 4u;
            for (var c4 = 0u; c4 < p.cin4; c4++) {
                let row = (tap + c4 * 4u) * p.cout4 + co4;
                let w0 = weight[row];
                let w1 = weight[row + p.cout4];
                let w2 = weight[row + 2u * p.cout4];
                let w3 = weight[row + 3u * p.cout4];
                let u0 = weight[row + 1u];
                let u1 = weight[row + 1u + p.cout4];
                let u2 = weight[row + 1u + 2u * p.cout4];
                let u3 = weight[row + 1u + 3u * p.cout4];
                var scale = vec4<f32>(1.0);
                var shift = vec4<f32>(0.0);
                if (NORM_INPUT) {
                    scale = affine[affine_base + c4];
                    shift = affine[affine_base + p.cin4 + c4];
                }
                for (var i = 0u; i < 4u; i++) {
                    if (base[i] >= 0) {
                        var v = vec4<f32>(src[src_base + u32(base[i]) + c4]);
                        if (NORM_INPUT) {
                            v = max(v * scale + shift, vec4<f32>(0.0));
                        }
                        acc[i] = madd(acc[i], v, w0, w1, w2, w3);
                        acc2[i] = madd(acc2[i], v, u0, u1, u2, u3);
                    }
                }
            }
        }
    }

    let dst_base = image * pixels * p.cout4;
    for (var i = 0u; i < 4u; i++) {
        let pixel = group * 4u + i;
        if (pixel < pixels) {
            store_outputs(dst_base + pixel * p.cout4 + co4, acc[i], acc2[i]);
        }
    }
}
