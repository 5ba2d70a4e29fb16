//! The reference forward pass on the CPU, written to be read beside spec §3.
//! It is the oracle the GPU kernels are tested against, so it stays plain:
//! one function per operation, activations as `[height][width][channels]`.

use crate::model::{Block, Conv, GroupNorm, Network};

/// GroupNorm epsilon (spec §1).
pub const GN_EPS: f64 = 1e-5;

/// An activation map, channels innermost (NHWC with N = 1).
#[derive(Debug, Clone)]
pub struct Activation {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

/// Outputs of one forward pass, with the intermediate maps the tests compare.
pub struct Forward {
    pub stem: Activation,
    pub stages: Vec<Activation>,
    /// After the final GroupNorm + ReLU.
    pub norm: Activation,
    pub pooled: Vec<f32>,
    pub logits: Vec<f32>,
}

impl Activation {
    /// From a `[c][h][w]` tensor (the processor's layout).
    pub fn from_chw(chw: &[f32], c: usize, h: usize, w: usize) -> Self {
        let mut data = vec![0.0; chw.len()];
        for ch in 0..c {
            for p in 0..h * w {
                data[p * c + ch] = chw[ch * h * w + p];
            }
        }
        Activation { h, w, c, data }
    }

    /// Back to `[c][h][w]`, the order transformers' tensors flatten in.
    pub fn to_chw(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.data.len()];
        for p in 0..self.h * self.w {
            for ch in 0..self.c {
                out[ch * self.h * self.w + p] = self.data[p * self.c + ch];
            }
        }
        out
    }
}

/// Runs the network on a `[3][size][size]` input.
pub fn forward(net: &Network, pixels: &[f32]) -> Forward {
    let size = net.image_size;
    let x = Activation::from_chw(pixels, 3, size, size);
    // Stem: WSConv 7x7/2, zero pad 1, max pool 3x3/2 (no norm, no ReLU: pre-activation net).
    let stem = max_pool_3x3_s2(&zero_pad_1(&conv2d(&x, &net.stem)));
    let mut x = stem.clone();
    let mut stages = Vec::new();
    for stage in &net.stages {
        for block in stage {
            x = bottleneck(&x, block, net.groups);
        }
        stages.push(x.clone());
    }
    let norm = group_norm_relu(&x, &net.norm, net.groups);
    let pooled = global_average_pool(&norm);
    let logits = linear(&pooled, &net.classifier_weight, &net.classifier_bias);
    Forward { stem, stages, norm, pooled, logits }
}

/// Class activation map of `class`: each pixel of the final (normalized) feature map
/// dotted with the class's classifier column. Its mean plus the bias is the logit.
pub fn class_map(net: &Network, forward: &Forward, class: usize) -> Vec<f32> {
    let classes = net.classes();
    let x = &forward.norm;
    (0..x.h * x.w)
        .map(|p| {
            let features = &x.data[p * x.c..(p + 1) * x.c];
            features.iter().enumerate().map(|(c, &v)| v as f64 * net.classifier_weight[c * classes + class] as f64).sum::<f64>() as f32
        })
        .collect()
}

/// Pre-activation bottleneck: the projection shortcut reads the pre-activated input,
/// the identity shortcut the raw input; no activation after the add.
fn bottleneck(x: &Activation, b: &Block, groups: usize) -> Activation {
    let pre = group_norm_relu(x, &b.norm1, groups);
    let shortcut = match &b.downsample {
        Some(proj) => conv2d(&pre, proj),
        None => x.clone(),
    };
    let h = conv2d(&pre, &b.conv1);
    let h = conv2d(&group_norm_relu(&h, &b.norm2, groups), &b.conv2);
    let mut h = conv2d(&group_norm_relu(&h, &b.norm3, groups), &b.conv3);
    for (o, s) in h.data.iter_mut().zip(&shortcut.data) {
        *o += s;
    }
    h
}

/// Convolution with already standardized `[k][k][cin][cout]` weights, zero padding, no bias.
fn conv2d(x: &Activation, conv: &Conv) -> Activation {
    assert_eq!(x.c, conv.cin);
    let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
    let cout = conv.cout;
    let mut data = vec![0.0f32; oh * ow * cout];
    // Output rows are independent: split them across threads.
    parallel_rows(&mut data, ow * cout, |oy, row| {
        for ox in 0..ow {
            let out = &mut row[ox * cout..(ox + 1) * cout];
            for ky in 0..conv.k {
                let iy = (oy * conv.stride + ky) as isize - conv.pad as isize;
                if iy < 0 || iy >= x.h as isize {
                    continue;
                }
                for kx in 0..conv.k {
                    let ix = (ox * conv.stride + kx) as isize - conv.pad as isize;
                    if ix < 0 || ix >= x.w as isize {
                        continue;
                    }
                    let input = &x.data[(iy as usize * x.w + ix as usize) * x.c..][..x.c];
                    let taps = &conv.weight[(ky * conv.k + kx) * x.c * cout..][..x.c * cout];
                    for (&v, w) in input.iter().zip(taps.chunks_exact(cout)) {
                        for (o, &w) in out.iter_mut().zip(w) {
                            *o += v * w;
                        }
                    }
                }
            }
        }
    });
    Activation { h: oh, w: ow, c: cout, data }
}

/// GroupNorm (biased variance over each group's channels and all pixels), affine, then ReLU.
fn group_norm_relu(x: &Activation, gn: &GroupNorm, groups: usize) -> Activation {
    let per_group = x.c / groups;
    let pixels = x.h * x.w;
    let mut out = x.clone();
    for g in 0..groups {
        let channels = g * per_group..(g + 1) * per_group;
        let values = || (0..pixels).flat_map(|p| channels.clone().map(move |c| x.data[p * x.c + c] as f64));
        let n = (pixels * per_group) as f64;
        let mean = values().sum::<f64>() / n;
        let var = values().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let inv_std = 1.0 / (var + GN_EPS).sqrt();
        for p in 0..pixels {
            for c in channels.clone() {
                let v = (x.data[p * x.c + c] as f64 - mean) * inv_std * gn.weight[c] as f64 + gn.bias[c] as f64;
                out.data[p * x.c + c] = v.max(0.0) as f32;
            }
        }
    }
    out
}

/// ConstantPad2d(1, value 0): BiT's stand-in for SAME padding before the stem's pool.
pub(crate) fn zero_pad_1(x: &Activation) -> Activation {
    let (h, w) = (x.h + 2, x.w + 2);
    let mut data = vec![0.0; h * w * x.c];
    for y in 0..x.h {
        let src = &x.data[y * x.w * x.c..(y + 1) * x.w * x.c];
        data[((y + 1) * w + 1) * x.c..][..x.w * x.c].copy_from_slice(src);
    }
    Activation { h, w, c: x.c, data }
}

/// MaxPool 3x3, stride 2, no padding, floor mode.
pub(crate) fn max_pool_3x3_s2(x: &Activation) -> Activation {
    let (h, w) = ((x.h - 3) / 2 + 1, (x.w - 3) / 2 + 1);
    let mut data = vec![f32::NEG_INFINITY; h * w * x.c];
    for oy in 0..h {
        for ox in 0..w {
            for ky in 0..3 {
                for kx in 0..3 {
                    let src = &x.data[((oy * 2 + ky) * x.w + ox * 2 + kx) * x.c..][..x.c];
                    for (o, &v) in data[(oy * w + ox) * x.c..][..x.c].iter_mut().zip(src) {
                        *o = o.max(v);
                    }
                }
            }
        }
    }
    Activation { h, w, c: x.c, data }
}

pub(crate) fn global_average_pool(x: &Activation) -> Vec<f32> {
    let pixels = x.h * x.w;
    (0..x.c)
        .map(|c| ((0..pixels).map(|p| x.data[p * x.c + c] as f64).sum::<f64>() / pixels as f64) as f32)
        .collect()
}

/// `logits = pooled @ W + b` with W stored `[in][out]`.
pub(crate) fn linear(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let out = bias.len();
    let mut y: Vec<f64> = bias.iter().map(|&b| b as f64).collect();
    for (i, &v) in x.iter().enumerate() {
        for (o, &w) in y.iter_mut().zip(&weight[i * out..(i + 1) * out]) {
            *o += v as f64 * w as f64;
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

/// Calls `f(row_index, row)` for each `row_len` chunk of `data`, on all cores where threads exist.
fn parallel_rows(data: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = if cfg!(target_arch = "wasm32") {
        1
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    };
    let rows = data.len() / row_len;
    if threads <= 1 || rows < 2 {
        data.chunks_mut(row_len).enumerate().for_each(|(i, r)| f(i, r));
        return;
    }
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|s| {
        for (t, chunk) in data.chunks_mut(per_thread * row_len).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (i, r) in chunk.chunks_mut(row_len).enumerate() {
                    f(t * per_thread + i, r);
                }
            });
        }
    });
}
