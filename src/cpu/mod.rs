//! The fast CPU path: the browser's fallback when WebGPU is missing or slower (a software
//! adapter), and `bit50 classify --cpu`. Same network and same NHWC maps as reference.rs,
//! which it is tested against; the difference is how a convolution runs: as a blocked
//! matrix product, 4 output pixels x 8 output channels per step, so the 32 partial sums
//! stay in registers (WebAssembly SIMD: 8 vectors) while the weights stream by once; and
//! 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (winograd.rs), 2.25x fewer multiplies.

mod winograd;

use crate::model::{Conv, GroupNorm, Network};
use crate::layers::{self, Activation, Forward, GN_EPS};

/// Output pixels per micro-kernel step.
const PIXELS: usize = 4;
/// Output channels per micro-kernel step; every convolution's `cout` is a multiple (config.rs).
const CHANNELS: usize = 8;

/// A network whose convolution weights are packed for this path (so it is not a
/// `Network` any more: reference.rs could not read it).
pub struct CpuNetwork {
    net: Network,
}

impl CpuNetwork {
    /// Repacks every convolution in place, one at a time (no second copy of the weights).
    pub fn new(mut net: Network) -> Self {
        pack(&mut net.stem);
        for block in net.stages.iter_mut().flatten() {
            for conv in [&mut block.conv1, &mut block.conv2, &mut block.conv3].into_iter().chain(block.downsample.as_mut()) {
                pack(conv);
            }
        }
        CpuNetwork { net }
    }

    /// The forward pass of reference.rs, with the same intermediate maps.
    pub fn forward(&self, pixels: &[f32]) -> Forward {
        let net = &self.net;
        let size = net.image_size;
        let x = Activation::from_chw(pixels, 3, size, size);
        let stem = layers::max_pool_3x3_s2(&layers::zero_pad_1(&conv2d(&x, &net.stem, None)));
        let mut x = stem.clone();
        let mut stages = Vec::new();
        for stage in &net.stages {
            for b in stage {
                let pre = group_norm_relu(&x, &b.norm1, net.groups);
                let projected = b.downsample.as_ref().map(|proj| conv2d(&pre, proj, None));
                let h = conv2d(&pre, &b.conv1, None);
                let h = conv2d(&group_norm_relu(&h, &b.norm2, net.groups), &b.conv2, None);
                x = conv2d(&group_norm_relu(&h, &b.norm3, net.groups), &b.conv3, Some(projected.as_ref().unwrap_or(&x)));
            }
            stages.push(x.clone());
        }
        let norm = group_norm_relu(&x, &net.norm, net.groups);
        let pooled = layers::global_average_pool(&norm);
        let logits = layers::linear(&pooled, &net.classifier_weight, &net.classifier_bias);
        Forward { stem, stages, norm, pooled, logits }
    }

    /// The class activation map of `class` (see `layers::class_map`).
    pub fn class_map(&self, forward: &Forward, class: usize) -> Vec<f32> {
        layers::class_map(&self.net, forward, class)
    }
}

/// The matrix-product micro-kernel this build runs.
pub fn kernel_name() -> &'static str {
    if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
        "wasm relaxed-simd"
    } else if cfg!(target_arch = "wasm32") {
        "wasm simd128"
    } else {
        "portable"
    }
}

/// `[kh][kw][cin][cout]` to panels of 8 output channels, `[cout/8][kh*kw*cin][8]`:
/// the micro-kernel then reads its weights front to back. (Winograd's convolutions: their own.)
fn pack(conv: &mut Conv) {
    let (depth, cout) = (conv.k * conv.k * conv.cin, conv.cout);
    assert_eq!(cout % CHANNELS, 0, "output channels must be a multiple of {CHANNELS}");
    if winograd::applies(conv) {
        return winograd::pack(conv);
    }
    let mut panels = Vec::with_capacity(depth * cout);
    for first in (0..cout).step_by(CHANNELS) {
        for row in conv.weight.chunks_exact(cout) {
            panels.extend_from_slice(&row[first..first + CHANNELS]);
        }
    }
    conv.weight = panels;
}

/// Convolution with packed weights, zero padding, plus `residual` (same shape as the output).
/// Each step copies 4 output pixels' receptive fields into one `[4][kh*kw*cin]` patch (zeros
/// where the window leaves the image), then multiplies it by every weight panel.
fn conv2d(x: &Activation, conv: &Conv, residual: Option<&Activation>) -> Activation {
    assert_eq!(x.c, conv.cin);
    if winograd::applies(conv) {
        assert!(residual.is_none(), "BiT adds residuals only after 1x1 convolutions");
        return winograd::conv2d(x, conv);
    }
    let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
    let (cin, cout, depth) = (conv.cin, conv.cout, conv.k * conv.k * conv.cin);
    let mut out = Activation { h: oh, w: ow, c: cout, data: vec![0.0; oh * ow * cout] };
    if let Some(r) = residual {
        assert_eq!((r.h, r.w, r.c), (oh, ow, cout));
    }
    let pixels = oh * ow;
    crate::parallel::for_each_block(&mut out.data, cout, PIXELS, |first_pixel, out_block| {
        let mut patch = vec![0.0f32; PIXELS * depth];
        for (step, out_step) in out_block.chunks_mut(PIXELS * cout).enumerate() {
            let p0 = first_pixel + step * PIXELS;
            let count = out_step.len() / cout;
            for (i, field) in patch.chunks_exact_mut(depth).enumerate() {
                // Past the last pixel, repeat it: computed, never stored.
                let p = (p0 + i).min(pixels - 1);
                let (oy, ox) = (p / ow, p % ow);
                for (tap, dst) in field.chunks_exact_mut(cin).enumerate() {
                    let iy = (oy * conv.stride + tap / conv.k) as isize - conv.pad as isize;
                    let ix = (ox * conv.stride + tap % conv.k) as isize - conv.pad as isize;
                    if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                        dst.fill(0.0);
                    } else {
                        dst.copy_from_slice(&x.data[(iy as usize * x.w + ix as usize) * cin..][..cin]);
                    }
                }
            }
            for (panel_index, panel) in conv.weight.chunks_exact(depth * CHANNELS).enumerate() {
                let acc = micro_kernel(&patch, depth, panel);
                let first = panel_index * CHANNELS;
                for (i, sums) in acc.iter().enumerate().take(count) {
                    let dst = &mut out_step[i * cout + first..][..CHANNELS];
                    dst.copy_from_slice(sums);
                    if let Some(r) = residual {
                        for (d, r) in dst.iter_mut().zip(&r.data[(p0 + i) * cout + first..][..CHANNELS]) {
                            *d += r;
                        }
                    }
                }
            }
        }
    });
    out
}

/// `acc[i][j] = sum over d of patch[i][d] * panel[d][j]`. Written so that the compiler keeps
/// `acc` in 8 SIMD registers: fixed sizes, bounds proven by slicing before the loop.
#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
#[inline(always)]
fn micro_kernel(patch: &[f32], depth: usize, panel: &[f32]) -> [[f32; CHANNELS]; PIXELS] {
    let (a0, a1, a2, a3) = (&patch[..depth], &patch[depth..2 * depth], &patch[2 * depth..3 * depth], &patch[3 * depth..4 * depth]);
    let mut acc = [[0.0f32; CHANNELS]; PIXELS];
    for (d, w) in panel[..depth * CHANNELS].chunks_exact(CHANNELS).enumerate() {
        let x = [a0[d], a1[d], a2[d], a3[d]];
        for i in 0..PIXELS {
            for j in 0..CHANNELS {
                acc[i][j] += x[i] * w[j];
            }
        }
    }
    acc
}

/// The same with WebAssembly's relaxed SIMD, in the second wasm build (build.sh), which the worker
/// loads where the browser has it: `f32x4.relaxed_madd` is one fused multiply-add where the CPU
/// has them, so a step issues half the instructions (measured 1.2x on the matrix product on AMD
/// Zen 4; mul + add cannot be fused by the compiler, as that would change the rounding).
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
#[inline(always)]
fn micro_kernel(patch: &[f32], depth: usize, panel: &[f32]) -> [[f32; CHANNELS]; PIXELS] {
    use core::arch::wasm32::*;
    assert!(patch.len() >= PIXELS * depth && panel.len() >= depth * CHANNELS);
    let mut acc = [[f32x4_splat(0.0); 2]; PIXELS];
    for d in 0..depth {
        // SAFETY: d < depth, and both slices were checked to hold `depth` rows above.
        unsafe {
            let w = panel.as_ptr().add(d * CHANNELS) as *const v128;
            let (w0, w1) = (v128_load(w), v128_load(w.add(1)));
            for (i, sums) in acc.iter_mut().enumerate() {
                let x = v128_load32_splat(patch.as_ptr().add(i * depth + d) as *const u32);
                sums[0] = f32x4_relaxed_madd(x, w0, sums[0]);
                sums[1] = f32x4_relaxed_madd(x, w1, sums[1]);
            }
        }
    }
    // SAFETY: [[v128; 2]; 4] and [[f32; 8]; 4] are both 128 plain bytes, lanes in order.
    unsafe { core::mem::transmute::<[[v128; 2]; PIXELS], [[f32; CHANNELS]; PIXELS]>(acc) }
}

/// GroupNorm (biased variance, two passes as in reference.rs), affine, then ReLU.
fn group_norm_relu(x: &Activation, gn: &GroupNorm, groups: usize) -> Activation {
    let (c, per_group) = (x.c, x.c / groups);
    let n = (x.data.len() / c * per_group) as f64;
    let per_channel = |group_values: &[f64]| -> Vec<f32> { (0..c).map(|ch| group_values[ch / per_group] as f32).collect() };
    let group_sums = |sums: Vec<f64>| -> Vec<f64> { sums.chunks_exact(per_group).map(|g| g.iter().sum()).collect() };
    let mean: Vec<f64> = group_sums(channel_sums::<false>(&x.data, &vec![0.0; c])).iter().map(|s| s / n).collect();
    let var: Vec<f64> = group_sums(channel_sums::<true>(&x.data, &per_channel(&mean))).iter().map(|s| s / n).collect();
    let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
        .map(|ch| {
            let g = ch / per_group;
            let s = gn.weight[ch] as f64 / (var[g] + GN_EPS).sqrt();
            (s as f32, (gn.bias[ch] as f64 - mean[g] * s) as f32)
        })
        .unzip();
    let mut data = Vec::with_capacity(x.data.len());
    for pixel in x.data.chunks_exact(c) {
        // Not f32::max: in WebAssembly that is a call to fmaxf per value; this compare vectorizes.
        data.extend(pixel.iter().zip(&scale).zip(&shift).map(|((v, s), t)| {
            let y = v * s + t;
            if y > 0.0 { y } else { 0.0 }
        }));
    }
    Activation { data, ..*x }
}

/// Per channel, the sum over pixels of `v - center` (or its square): in f32 over 32 pixels
/// at a time, which vectorizes, and in f64 across those partial sums.
fn channel_sums<const SQUARE: bool>(data: &[f32], center: &[f32]) -> Vec<f64> {
    let c = center.len();
    let (mut total, mut partial) = (vec![0.0f64; c], vec![0.0f32; c]);
    for rows in data.chunks(32 * c) {
        partial.fill(0.0);
        for pixel in rows.chunks_exact(c) {
            for ((s, &v), &m) in partial.iter_mut().zip(pixel).zip(center) {
                *s += if SQUARE { (v - m) * (v - m) } else { v - m };
            }
        }
        total.iter_mut().zip(&partial).for_each(|(t, &s)| *t += s as f64);
    }
    total
}

/// This path's matrix-multiply throughput: a 1x1 convolution over `side x side` pixels,
/// (side², k) x (k, n). Median GFLOP/s over `runs`, after untimed runs that warm it up (in a
/// browser the first calls run baseline-compiled code, several times slower, until the
/// optimizing compiler's version is ready); `now` is a clock in milliseconds.
pub fn matmul_gflops(side: usize, k: usize, n: usize, runs: usize, now: impl Fn() -> f64) -> f64 {
    let x = Activation { h: side, w: side, c: k, data: vec![0.5; side * side * k] };
    let mut conv = Conv { k: 1, stride: 1, pad: 0, cin: k, cout: n, weight: vec![0.01; k * n] };
    pack(&mut conv);
    let mut times: Vec<f64> = (0..runs.max(1) + 2)
        .map(|_| {
            let started = now();
            std::hint::black_box(conv2d(&x, &conv, None));
            now() - started
        })
        .skip(2)
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (side * side * k * n) as f64 / times[times.len() / 2].max(1e-3) / 1e6
}
