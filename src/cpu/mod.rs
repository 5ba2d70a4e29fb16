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
use gemm::{Tile, WithTile};
use std::mem::MaybeUninit;

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
    fn call<const MR: usize, const NR: usize>(self, tile: Tile<MR, NR>) -> Forward {
        let net = self.net;
        let conv = |x: &Activation, c: &Conv, residual: Option<&Activation>| conv2d(x, c, residual, tile);
        let group_norm_relu = |x: Activation, gn: &GroupNorm| group_norm_relu(x, gn, net.groups, tile.kernel);
        let group_norm_relu_copy = |x: &Activation, gn: &GroupNorm| group_norm_relu_copy(x, gn, net.groups, tile.kernel);
        let size = net.image_size;
        let x = Activation::from_chw(self.pixels, 3, size, size);
        let stem = pad_and_max_pool(&conv(&x, &net.stem, None), tile.kernel);
        let mut stages: Vec<Activation> = Vec::new();
        for stage in &net.stages {
            // Each block's output, owned; the first block reads the previous stage's (no copies).
            let mut x: Option<Activation> = None;
            for b in stage {
                let input = x.as_ref().or(stages.last()).unwrap_or(&stem);
                // The block's input stays as it is for the residual; the maps inside are normalized in place.
                let pre = group_norm_relu_copy(input, &b.norm1);
                let projected = b.downsample.as_ref().map(|proj| conv(&pre, proj, None));
                let h = conv(&pre, &b.conv1, None);
                let h = conv(&group_norm_relu(h, &b.norm2), &b.conv2, None);
                x = Some(conv(&group_norm_relu(h, &b.norm3), &b.conv3, Some(projected.as_ref().unwrap_or(input))));
            }
            stages.push(x.unwrap_or_else(|| stages.last().unwrap_or(&stem).clone()));
        }
        let norm = group_norm_relu_copy(stages.last().unwrap_or(&stem), &net.norm);
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
fn conv2d<const MR: usize, const NR: usize>(x: &Activation, conv: &Conv, residual: Option<&Activation>, tile: Tile<MR, NR>) -> Activation {
    assert_eq!(x.c, conv.cin);
    if winograd::applies(conv) {
        assert!(residual.is_none(), "BiT adds residuals only after 1x1 convolutions");
        return winograd::conv2d(x, conv, tile);
    }
    let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
    let (cin, cout, depth) = (conv.cin, conv.cout, conv.k * conv.k * conv.cin);
    if let Some(r) = residual {
        assert_eq!((r.h, r.w, r.c), (oh, ow, cout));
    }
    let in_place = conv.k == 1 && conv.stride == 1 && conv.pad == 0;
    // SAFETY: each block's steps cover its pixels, and each step's panels every channel of them.
    unsafe {
        new_map(oh, ow, cout, cout, MR, |first_pixel, out_block| {
            tile.widest(
                #[inline(always)]
                || {
                    let mut copied = vec![0.0f32; MR * depth];
                    let mut acc = [[0.0f32; NR]; MR];
                    for (step, out_step) in out_block.chunks_mut(MR * cout).enumerate() {
                        let p0 = first_pixel + step * MR;
                        let count = out_step.len() / cout;
                        let patch: &[f32] = if in_place && count == MR {
                            &x.data[p0 * cin..][..MR * cin]
                        } else {
                            for (i, field) in copied.chunks_exact_mut(depth).enumerate() {
                                // Past the last pixel: rows below the map (zeros, or the next rows), computed, never stored.
                                let p = p0 + i;
                                let (oy, ox) = (p / ow, p % ow);
                                let ix0 = (ox * conv.stride) as isize - conv.pad as isize;
                                // One row of the window (k taps of cin, contiguous in NHWC) at a time: one
                                // copy where it lies inside the image (the 7x7 stem's 21 floats), else per tap.
                                for (ky, row) in field.chunks_exact_mut(conv.k * cin).enumerate() {
                                    let iy = (oy * conv.stride + ky) as isize - conv.pad as isize;
                                    if iy < 0 || iy >= x.h as isize {
                                        row.fill(0.0);
                                    } else if ix0 >= 0 && ix0 as usize + conv.k <= x.w {
                                        row.copy_from_slice(&x.data[(iy as usize * x.w + ix0 as usize) * cin..][..conv.k * cin]);
                                    } else {
                                        for (kx, dst) in row.chunks_exact_mut(cin).enumerate() {
                                            let ix = ix0 + kx as isize;
                                            if ix < 0 || ix >= x.w as isize {
                                                dst.fill(0.0);
                                            } else {
                                                dst.copy_from_slice(&x.data[(iy as usize * x.w + ix as usize) * cin..][..cin]);
                                            }
                                        }
                                    }
                                }
                            }
                            &copied
                        };
                        for (panel_index, panel) in conv.weight.chunks_exact(depth * NR).enumerate() {
                            (tile.micro)(patch, depth, panel, &mut acc);
                            let first = panel_index * NR;
                            let lanes = NR.min(cout - first);
                            for (i, sums) in acc.iter().enumerate().take(count) {
                                let dst = &mut out_step[i * cout + first..][..lanes];
                                match residual {
                                    Some(r) => {
                                        for ((d, &v), &r) in dst.iter_mut().zip(sums).zip(&r.data[(p0 + i) * cout + first..][..lanes]) {
                                            d.write(v + r);
                                        }
                                    }
                                    None => {
                                        for (d, &v) in dst.iter_mut().zip(sums) {
                                            d.write(v);
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            )
        })
    }
}

/// The stem's padding and pooling (layers::zero_pad_1, then max_pool_3x3_s2) in one pass over the
/// map, split over the threads: a window that reaches into the padding takes its zero.
fn pad_and_max_pool(x: &Activation, kernel: Kernel) -> Activation {
    let (oh, ow, c) = ((x.h - 1) / 2 + 1, (x.w - 1) / 2 + 1, x.c);
    // SAFETY: every channel of every pixel of each block's rows is written.
    unsafe {
        new_map(oh, ow, c, ow * c, 1, |first_row, rows| {
            kernel.widest(
                #[inline(always)]
                || {
                    let mut max = vec![0.0f32; c];
                    for (r, out_row) in rows.chunks_exact_mut(ow * c).enumerate() {
                        let oy = first_row + r;
                        for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
                            // Rows and columns 2 * o - 1 ..= 2 * o + 1 of the map, those inside it.
                            let ys = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(x.h);
                            let xs = (2 * ox).saturating_sub(1)..(2 * ox + 2).min(x.w);
                            max.fill(if ys.len() < 3 || xs.len() < 3 { 0.0 } else { f32::NEG_INFINITY });
                            for y in ys {
                                for v in x.data[(y * x.w + xs.start) * c..(y * x.w + xs.end) * c].chunks_exact(c) {
                                    for (m, &v) in max.iter_mut().zip(v) {
                                        *m = if v > *m { v } else { *m };
                                    }
                                }
                            }
                            for (o, &m) in out.iter_mut().zip(&max) {
                                o.write(m);
                            }
                        }
                    }
                },
            )
        })
    }
}

/// A new `h x w x c` map whose values `fill` writes, block by block as `parallel::for_each_block`
/// hands them out (`unit` and `align` as there): not zeroed first, which would be one more pass
/// over memory, on one thread.
///
/// # Safety
/// `fill` must write every value of each block it is given.
unsafe fn new_map(h: usize, w: usize, c: usize, unit: usize, align: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Activation {
    let len = h * w * c;
    let mut data = Vec::with_capacity(len);
    crate::parallel::for_each_block(&mut data.spare_capacity_mut()[..len], unit, align, fill);
    // SAFETY: the blocks cover all `len` values, and `fill` wrote each (the caller's promise).
    unsafe { data.set_len(len) };
    Activation { h, w, c, data }
}

/// GroupNorm (biased variance), affine, then ReLU, in place.
fn group_norm_relu(mut x: Activation, gn: &GroupNorm, groups: usize, kernel: Kernel) -> Activation {
    let (scale, shift) = group_norm_affine(&x, gn, groups, kernel);
    crate::parallel::for_each_block(&mut x.data, x.c, 1, |_, block| {
        kernel.widest(
            #[inline(always)]
            || {
                for pixel in block.chunks_exact_mut(scale.len()) {
                    for ((v, s), t) in pixel.iter_mut().zip(&scale).zip(&shift) {
                        *v = relu(*v * s + t);
                    }
                }
            },
        )
    });
    x
}

/// The same into a new map, `x` left as it is (a block's input, kept for its residual): one
/// pass, where a copy normalized in place would take two.
fn group_norm_relu_copy(x: &Activation, gn: &GroupNorm, groups: usize, kernel: Kernel) -> Activation {
    let (scale, shift) = group_norm_affine(x, gn, groups, kernel);
    let c = x.c;
    // SAFETY: every value of a block is written, from the same one of `x`.
    unsafe {
        new_map(x.h, x.w, c, c, 1, |first, block| {
            kernel.widest(
                #[inline(always)]
                || {
                    for (dst, src) in block.chunks_exact_mut(c).zip(x.data[first * c..].chunks_exact(c)) {
                        for (((d, &v), s), t) in dst.iter_mut().zip(src).zip(&scale).zip(&shift) {
                            d.write(relu(v * s + t));
                        }
                    }
                },
            )
        })
    }
}

/// Not f32::max: in WebAssembly that is a call to fmaxf per value; this compare vectorizes.
#[inline(always)]
fn relu(y: f32) -> f32 {
    if y > 0.0 {
        y
    } else {
        0.0
    }
}

/// Per channel, GroupNorm's `scale` and `shift` (`y = x * scale + shift`), from each group's
/// mean and biased variance over its channels and every pixel.
fn group_norm_affine(x: &Activation, gn: &GroupNorm, groups: usize, kernel: Kernel) -> (Vec<f32>, Vec<f32>) {
    let (c, pixels) = (x.c, x.h * x.w);
    let per_group = c / groups;
    // In 16 fixed parts, so that the statistics (and the logits) are the same on any number of threads.
    let moments = crate::parallel::map_ranges(pixels, 16, |range| Moments::of(&x.data[range.start * c..range.end * c], c, kernel))
        .into_iter()
        .reduce(Moments::merge)
        .unwrap_or_default();
    let mut scale = vec![0.0f32; c];
    let mut shift = vec![0.0f32; c];
    for g in 0..groups {
        let channels = g * per_group..(g + 1) * per_group;
        let mean = moments.mean[channels.clone()].iter().sum::<f64>() / per_group as f64;
        // The group's squared deviations: within each channel, plus each channel's mean's from the group's.
        let m2: f64 = channels.clone().map(|ch| moments.m2[ch] + moments.n * (moments.mean[ch] - mean).powi(2)).sum();
        let var = m2 / (moments.n * per_group as f64);
        for ch in channels {
            let s = gn.weight[ch] as f64 / (var + GN_EPS).sqrt();
            scale[ch] = s as f32;
            shift[ch] = (gn.bias[ch] as f64 - mean * s) as f32;
        }
    }
    (scale, shift)
}

/// Per channel, over some pixels: their count, mean and sum of squared deviations from it.
#[derive(Default)]
struct Moments {
    n: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    /// Of `data`'s pixels (`c` channels each), in one pass over memory: a chunk of pixels small
    /// enough to stay in cache is read twice in f32 (its mean, then the deviations from it),
    /// and the chunks are merged in f64.
    fn of(data: &[f32], c: usize, kernel: Kernel) -> Moments {
        kernel.widest(
            #[inline(always)]
            || Self::of_here(data, c),
        )
    }

    #[inline(always)]
    fn of_here(data: &[f32], c: usize) -> Moments {
        let chunk_pixels = (16384 / c).clamp(8, 64);
        let (mut sum, mut dev) = (vec![0.0f32; c], vec![0.0f32; c]);
        let mut total = Moments { n: 0.0, mean: vec![0.0; c], m2: vec![0.0; c] };
        for chunk in data.chunks(chunk_pixels * c) {
            let n = (chunk.len() / c) as f32;
            sum.fill(0.0);
            for pixel in chunk.chunks_exact(c) {
                sum.iter_mut().zip(pixel).for_each(|(s, &v)| *s += v);
            }
            sum.iter_mut().for_each(|s| *s /= n);
            dev.fill(0.0);
            for pixel in chunk.chunks_exact(c) {
                for ((d, &v), &m) in dev.iter_mut().zip(pixel).zip(&sum) {
                    *d += (v - m) * (v - m);
                }
            }
            // `merge` of this chunk into the total, in place.
            let (a, b) = (total.n, n as f64);
            total.n += b;
            for (((mean, m2), &mb), &db) in total.mean.iter_mut().zip(&mut total.m2).zip(&sum).zip(&dev) {
                let delta = mb as f64 - *mean;
                *mean += delta * b / total.n;
                *m2 += db as f64 + delta * delta * a * b / total.n;
            }
        }
        total
    }

    /// Both sets of pixels together (Chan, Golub and LeVeque's pairwise update).
    fn merge(self, other: Moments) -> Moments {
        if self.n == 0.0 {
            return other;
        }
        if other.n == 0.0 {
            return self;
        }
        let n = self.n + other.n;
        let (a, b) = (self.n, other.n);
        let mean = self.mean.iter().zip(&other.mean).map(|(ma, mb)| ma + (mb - ma) * b / n).collect();
        let m2 =
            self.m2.iter().zip(&other.m2).zip(self.mean.iter().zip(&other.mean)).map(|((qa, qb), (ma, mb))| qa + qb + (mb - ma).powi(2) * a * b / n).collect();
        Moments { n, mean, m2 }
    }
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
        fn call<const MR: usize, const NR: usize>(self, tile: Tile<MR, NR>) -> f64 {
            let Time { side, k, n, runs, now } = self;
            let x = Activation { h: side, w: side, c: k, data: vec![0.5; side * side * k] };
            let mut conv = Conv { k: 1, stride: 1, pad: 0, cin: k, cout: n, weight: vec![0.01; k * n] };
            pack(&mut conv, NR);
            let mut times: Vec<f64> = (0..runs.max(1) + 2)
                .map(|_| {
                    let started = now();
                    std::hint::black_box(conv2d(&x, &conv, None, tile));
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

/// Each of this path's operations against reference.rs (f64 statistics, plain loops), on shapes
/// the network's own do not have: odd sizes, channel counts that fill no tile, one group.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    /// Values in [-1, 1) from a fixed xorshift sequence.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn map(h: usize, w: usize, c: usize, seed: u32) -> Activation {
        Activation { h, w, c, data: values(h * w * c, seed) }
    }

    fn max_difference(a: &Activation, b: &Activation) -> f32 {
        assert_eq!((a.h, a.w, a.c), (b.h, b.w, b.c));
        a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// `conv` packed for `kernel`'s tile and run, plus `residual`.
    fn conv_with(kernel: Kernel, x: &Activation, conv: &Conv, residual: Option<&Activation>) -> Activation {
        struct Packed<'a>(&'a Activation, Conv, Option<&'a Activation>);
        impl WithTile for Packed<'_> {
            type Out = Activation;
            fn call<const MR: usize, const NR: usize>(self, tile: Tile<MR, NR>) -> Activation {
                let Packed(x, mut conv, residual) = self;
                pack(&mut conv, NR);
                conv2d(x, &conv, residual, tile)
            }
        }
        kernel.with_tile(Packed(x, conv.clone(), residual))
    }

    fn supported() -> Vec<Kernel> {
        KERNELS.into_iter().filter(|k| k.supported()).collect()
    }

    #[test]
    fn convolutions_match_the_reference() {
        // (h, w, cin, cout, k, stride): the stem's 7x7/2, Winograd's 3x3/1 with odd edges,
        // 3x3/2, 1x1 in place and strided, channel counts that fill no tile.
        // Also padding BiT never uses (1x1 padded, 3x3/1 unpadded), which neither the in-place
        // patch nor Winograd may take.
        let shapes = [
            (9, 7, 3, 13, 7, 2, 3),
            (9, 11, 5, 17, 3, 1, 1),
            (1, 1, 4, 9, 3, 1, 1),
            (8, 6, 16, 40, 3, 2, 1),
            (5, 5, 33, 9, 1, 1, 0),
            (7, 6, 12, 20, 1, 2, 0),
            (4, 5, 8, 9, 1, 1, 1),
            (6, 5, 4, 9, 3, 1, 0),
        ];
        for (i, &(h, w, cin, cout, k, stride, pad)) in shapes.iter().enumerate() {
            let x = map(h, w, cin, i as u32);
            let conv = Conv { k, stride, pad, cin, cout, weight: values(k * k * cin * cout, 100 + i as u32) };
            let want = reference::conv2d(&x, &conv);
            let residual = (k == 1).then(|| map(want.h, want.w, cout, 200 + i as u32));
            assert_eq!(winograd::applies(&conv), (k, stride, pad) == (3, 1, 1));
            let mut want_with = want.clone();
            if let Some(r) = &residual {
                want_with.data.iter_mut().zip(&r.data).for_each(|(v, r)| *v += r);
            }
            for kernel in supported() {
                let got = conv_with(kernel, &x, &conv, None);
                assert!(max_difference(&got, &want) < 1e-4, "{} {h}x{w}x{cin} -> {cout}, {k}x{k}/{stride} pad {pad}: {}", kernel.name(), max_difference(&got, &want));
                if let Some(r) = &residual {
                    let got = conv_with(kernel, &x, &conv, Some(r));
                    assert!(max_difference(&got, &want_with) < 1e-4, "{} with a residual: {}", kernel.name(), max_difference(&got, &want_with));
                }
            }
        }
    }

    #[test]
    fn group_norm_matches_the_reference_even_far_from_zero() {
        // (h, w, c, groups, offset, spread, bound). Far from zero, a variance taken as E[x²] - E[x]²
        // in f32 would lose every digit: the spread there is 1/6000 of the offset. The CPU path
        // normalizes as x * scale + shift in f32, so its error grows with |x| / std: 1x1 pixels
        // with one channel a group have std 0 (scale 1 / sqrt(eps)), the offset maps std / 10000.
        let cases = [
            (5, 7, 24, 8, 0.0, 1.0, 1e-5),
            (3, 3, 12, 1, 0.0, 1.0, 1e-5),
            (1, 1, 8, 8, 0.0, 1.0, 1e-4),
            (13, 11, 20, 4, 300.0, 0.05, 3e-3),
            (40, 40, 6, 2, -300.0, 0.05, 3e-3),
        ];
        for (i, &(h, w, c, groups, offset, spread, bound)) in cases.iter().enumerate() {
            let mut x = map(h, w, c, 300 + i as u32);
            x.data.iter_mut().for_each(|v| *v = offset + spread * *v);
            let gn = GroupNorm { weight: values(c, 400 + i as u32), bias: values(c, 500 + i as u32) };
            let want = reference::group_norm_relu(&x, &gn, groups);
            for kernel in supported() {
                let copied = group_norm_relu_copy(&x, &gn, groups, kernel);
                let in_place = group_norm_relu(x.clone(), &gn, groups, kernel);
                for got in [copied, in_place] {
                    let difference = max_difference(&got, &want);
                    assert!(difference < bound, "{} {h}x{w}x{c}, {groups} groups, offset {offset}: {difference}", kernel.name());
                }
            }
        }
    }

    #[test]
    fn padding_and_pooling_match_the_layers() {
        for (i, &(h, w, c)) in [(1, 1, 3), (2, 3, 5), (7, 5, 9), (8, 8, 16), (9, 4, 1)].iter().enumerate() {
            let mut x = map(h, w, c, 600 + i as u32);
            x.data.iter_mut().for_each(|v| *v -= 0.5); // mostly negative: where the padding's zero wins
            let want = layers::max_pool_3x3_s2(&layers::zero_pad_1(&x));
            for kernel in supported() {
                assert_eq!(pad_and_max_pool(&x, kernel).data, want.data, "{} {h}x{w}x{c}", kernel.name());
            }
        }
    }

    #[test]
    fn matmul_gflops_is_flops_over_the_median_time() {
        // A clock that moves 1, 2, 3, ... ms at successive calls: run r (start at call 2r, end at
        // call 2r + 1) takes 2r + 2 ms. Two untimed runs, then 6, 8, 10 and 12 ms: the median
        // taken is the upper one, 10.
        let calls = std::cell::Cell::new(0.0f64);
        let clock = || {
            let step = calls.get();
            calls.set(step + 1.0);
            (1..=step as usize + 1).sum::<usize>() as f64
        };
        let (side, k, n) = (3, 5, 7);
        assert_eq!(matmul_gflops(side, k, n, 4, clock), 2.0 * (side * side * k * n) as f64 / 10.0 / 1e6);
    }

    #[test]
    fn kernels_parse_by_name_and_each_runs_its_own_tile() {
        for (name, kernel) in [("portable", Kernel::Portable), ("avx2", Kernel::Avx2), ("avx512", Kernel::Avx512), ("neon", Kernel::Neon)] {
            assert_eq!(Kernel::parse(name).unwrap(), kernel);
        }
        let err = Kernel::parse("sse").unwrap_err().message;
        assert!(err.contains("\"sse\"") && err.contains("expected portable, avx2, avx512 or neon"), "{err}");
        // The tile (rows x panel width) of each kernel: a kernel that fell back to the portable
        // 4x8 would still be right, only slow.
        struct Shape;
        impl WithTile for Shape {
            type Out = (usize, usize, Kernel);
            fn call<const MR: usize, const NR: usize>(self, tile: Tile<MR, NR>) -> (usize, usize, Kernel) {
                (MR, NR, tile.kernel)
            }
        }
        for (kernel, mr, nr) in [(Kernel::Portable, 4, 8), (Kernel::Avx2, 6, 16), (Kernel::Avx512, 12, 32), (Kernel::Neon, 8, 8)] {
            if kernel.supported() {
                assert_eq!(kernel.with_tile(Shape), (mr, nr, kernel), "{}", kernel.name());
                assert_eq!(kernel.panel_width(), nr);
            }
        }
    }

    #[test]
    fn the_chosen_kernel_is_the_one_used_and_a_missing_one_is_refused() {
        set_kernel(Kernel::detect()).unwrap();
        assert_eq!(kernel(), Kernel::detect());
        assert_eq!(kernel_name(), Kernel::detect().name());
        let missing = KERNELS.into_iter().find(|k| !k.supported()).expect("no processor has both x86's and Arm's kernels");
        let err = set_kernel(missing).unwrap_err().message;
        assert!(err.contains(missing.name()) && supported().iter().all(|k| err.contains(k.name())), "{err}");
        assert_eq!(kernel(), Kernel::detect());
    }
}
