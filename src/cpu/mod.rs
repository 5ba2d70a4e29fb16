//! The fast CPU path: the browser's fallback when WebGPU is missing or slower (a software
//! adapter), and `bit50 classify --cpu`. Same network and same NHWC maps as reference.rs,
//! which it is tested against; the difference is how a convolution runs: as a blocked
//! matrix product, a tile of output pixels x output channels per step, so the partial sums
//! stay in registers while the weights stream by once (gemm.rs: one micro-kernel per vector
//! width, chosen at run time); and 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3)
//! (winograd.rs), 2.25x fewer multiplies.

mod gemm;
mod winograd;

pub use gemm::{kernel, set_kernel, Kernel, KERNELS};

use crate::error::Result;
use crate::layers::{self, Activation, Forward, GN_EPS};
use crate::model::{Conv, GroupNorm, Network};
use gemm::{Micro, WithTile};

/// A network whose convolution weights are packed for one micro-kernel (so it is not a
/// `Network` any more: reference.rs could not read it).
pub struct CpuNetwork {
    net: Network,
    kernel: Kernel,
}

impl CpuNetwork {
    /// Packed for [`kernel()`]: the widest this processor has, or the one `set_kernel` chose.
    pub fn new(net: Network) -> Self {
        Self::with_kernel(net, kernel()).expect("kernel() is always supported")
    }

    /// Packed for `kernel`, which this processor must have. Repacks every convolution in place,
    /// one at a time (no second copy of the weights).
    pub fn with_kernel(mut net: Network, kernel: Kernel) -> Result<Self> {
        if !kernel.supported() {
            set_kernel(kernel)?; // refused, with the message naming what the processor has
        }
        let nr = kernel.panel_width();
        pack(&mut net.stem, nr);
        for block in net.stages.iter_mut().flatten() {
            for conv in [&mut block.conv1, &mut block.conv2, &mut block.conv3].into_iter().chain(block.downsample.as_mut()) {
                pack(conv, nr);
            }
        }
        Ok(CpuNetwork { net, kernel })
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The forward pass of reference.rs, with the same intermediate maps.
    pub fn forward(&self, pixels: &[f32]) -> Forward {
        self.kernel.with_tile(Run { net: &self.net, pixels })
    }

    /// The class activation map of `class` (see `layers::class_map`).
    pub fn class_map(&self, forward: &Forward, class: usize) -> Vec<f32> {
        layers::class_map(&self.net, forward, class)
    }
}

/// The forward pass with one tile shape.
struct Run<'a> {
    net: &'a Network,
    pixels: &'a [f32],
}

impl WithTile for Run<'_> {
    type Out = Forward;
    fn call<const MR: usize, const NR: usize>(self, micro: Micro<MR, NR>) -> Forward {
        let net = self.net;
        let conv = |x: &Activation, c: &Conv, residual: Option<&Activation>| conv2d(x, c, residual, micro);
        let size = net.image_size;
        let x = Activation::from_chw(self.pixels, 3, size, size);
        let stem = layers::max_pool_3x3_s2(&layers::zero_pad_1(&conv(&x, &net.stem, None)));
        let mut stages: Vec<Activation> = Vec::new();
        for stage in &net.stages {
            // Each block's output, owned; the first block reads the previous stage's (no copies).
            let mut x: Option<Activation> = None;
            for b in stage {
                let input = x.as_ref().or(stages.last()).unwrap_or(&stem);
                // The block's input stays as it is for the residual; the maps inside are normalized in place.
                let pre = group_norm_relu(input.clone(), &b.norm1, net.groups);
                let projected = b.downsample.as_ref().map(|proj| conv(&pre, proj, None));
                let h = conv(&pre, &b.conv1, None);
                let h = conv(&group_norm_relu(h, &b.norm2, net.groups), &b.conv2, None);
                x = Some(conv(&group_norm_relu(h, &b.norm3, net.groups), &b.conv3, Some(projected.as_ref().unwrap_or(input))));
            }
            stages.push(x.unwrap_or_else(|| stages.last().unwrap_or(&stem).clone()));
        }
        let norm = group_norm_relu(stages.last().unwrap_or(&stem).clone(), &net.norm, net.groups);
        let pooled = layers::global_average_pool(&norm);
        let logits = layers::linear(&pooled, &net.classifier_weight, &net.classifier_bias);
        Forward { stem, stages, norm, pooled, logits }
    }
}

/// The micro-kernel this process uses (`bench` prints it).
pub fn kernel_name() -> &'static str {
    kernel().name()
}

/// `[kh][kw][cin][cout]` to panels of `nr` output channels, `[cout/nr][kh*kw*cin][nr]` (gemm.rs).
/// Winograd's convolutions: their own.
fn pack(conv: &mut Conv, nr: usize) {
    if winograd::applies(conv) {
        return winograd::pack(conv, nr);
    }
    conv.weight = gemm::pack_panels(&conv.weight, conv.k * conv.k * conv.cin, conv.cout, nr);
}

/// Convolution with packed weights, zero padding, plus `residual` (same shape as the output).
/// Each step multiplies `MR` output pixels' receptive fields, `[MR][kh*kw*cin]`, by every
/// weight panel: read in place for a 1x1 stride-1 convolution (NHWC rows are its patch),
/// else copied into a patch (zeros where the window leaves the image).
fn conv2d<const MR: usize, const NR: usize>(x: &Activation, conv: &Conv, residual: Option<&Activation>, micro: Micro<MR, NR>) -> Activation {
    assert_eq!(x.c, conv.cin);
    if winograd::applies(conv) {
        assert!(residual.is_none(), "BiT adds residuals only after 1x1 convolutions");
        return winograd::conv2d(x, conv, micro);
    }
    let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
    let (cin, cout, depth) = (conv.cin, conv.cout, conv.k * conv.k * conv.cin);
    let mut out = Activation { h: oh, w: ow, c: cout, data: vec![0.0; oh * ow * cout] };
    if let Some(r) = residual {
        assert_eq!((r.h, r.w, r.c), (oh, ow, cout));
    }
    let pixels = oh * ow;
    let in_place = conv.k == 1 && conv.stride == 1 && conv.pad == 0;
    crate::parallel::for_each_block(&mut out.data, cout, MR, |first_pixel, out_block| {
        let mut copied = vec![0.0f32; MR * depth];
        let mut acc = [[0.0f32; NR]; MR];
        for (step, out_step) in out_block.chunks_mut(MR * cout).enumerate() {
            let p0 = first_pixel + step * MR;
            let count = out_step.len() / cout;
            let patch: &[f32] = if in_place && count == MR {
                &x.data[p0 * cin..][..MR * cin]
            } else {
                for (i, field) in copied.chunks_exact_mut(depth).enumerate() {
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
                &copied
            };
            for (panel_index, panel) in conv.weight.chunks_exact(depth * NR).enumerate() {
                micro(patch, depth, panel, &mut acc);
                let first = panel_index * NR;
                let lanes = NR.min(cout - first);
                for (i, sums) in acc.iter().enumerate().take(count) {
                    let dst = &mut out_step[i * cout + first..][..lanes];
                    dst.copy_from_slice(&sums[..lanes]);
                    if let Some(r) = residual {
                        for (d, r) in dst.iter_mut().zip(&r.data[(p0 + i) * cout + first..][..lanes]) {
                            *d += r;
                        }
                    }
                }
            }
        }
    });
    out
}

/// GroupNorm (biased variance, two passes as in reference.rs), affine, then ReLU, in place;
/// the statistics on one thread, their application split over the threads.
fn group_norm_relu(mut x: Activation, gn: &GroupNorm, groups: usize) -> Activation {
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
    crate::parallel::for_each_block(&mut x.data, c, 1, |_, block| {
        for pixel in block.chunks_exact_mut(c) {
            for ((v, s), t) in pixel.iter_mut().zip(&scale).zip(&shift) {
                // Not f32::max: in WebAssembly that is a call to fmaxf per value; this compare vectorizes.
                let y = *v * s + t;
                *v = if y > 0.0 { y } else { 0.0 };
            }
        }
    });
    x
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
/// (side², k) x (k, n), with [`kernel()`]. Median GFLOP/s over `runs`, after untimed runs that
/// warm it up (in a browser the first calls run baseline-compiled code, several times slower,
/// until the optimizing compiler's version is ready); `now` is a clock in milliseconds.
pub fn matmul_gflops(side: usize, k: usize, n: usize, runs: usize, now: impl Fn() -> f64) -> f64 {
    struct Time<F> {
        side: usize,
        k: usize,
        n: usize,
        runs: usize,
        now: F,
    }
    impl<F: Fn() -> f64> WithTile for Time<F> {
        type Out = f64;
        fn call<const MR: usize, const NR: usize>(self, micro: Micro<MR, NR>) -> f64 {
            let Time { side, k, n, runs, now } = self;
            let x = Activation { h: side, w: side, c: k, data: vec![0.5; side * side * k] };
            let mut conv = Conv { k: 1, stride: 1, pad: 0, cin: k, cout: n, weight: vec![0.01; k * n] };
            pack(&mut conv, NR);
            let mut times: Vec<f64> = (0..runs.max(1) + 2)
                .map(|_| {
                    let started = now();
                    std::hint::black_box(conv2d(&x, &conv, None, micro));
                    now() - started
                })
                .skip(2)
                .collect();
            times.sort_by(f64::total_cmp);
            2.0 * (side * side * k * n) as f64 / times[times.len() / 2].max(1e-3) / 1e6
        }
    }
    kernel().with_tile(Time { side, k, n, runs, now })
}
