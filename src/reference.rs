//! The reference forward pass on the CPU, written to be read beside spec §3.
//! It is the oracle the GPU kernels are tested against, so it stays plain:
//! one function per operation, activations as `[height][width][channels]`.

use crate::layers::{global_average_pool, linear, max_pool_3x3_s2, zero_pad_1, Activation, Forward, GN_EPS};
use crate::model::{Block, Conv, GroupNorm, Network};

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
pub fn conv2d(x: &Activation, conv: &Conv) -> Activation {
    assert_eq!(x.c, conv.cin);
    let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
    let cout = conv.cout;
    let mut data = vec![0.0f32; oh * ow * cout];
    // Output rows are independent: split them across threads.
    crate::parallel::for_each_block(&mut data, ow * cout, 1, |first_row, rows| {
        for (oy, row) in rows.chunks_mut(ow * cout).enumerate().map(|(i, r)| (first_row + i, r)) {
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
        }
    });
    Activation { h: oh, w: ow, c: cout, data }
}

/// GroupNorm (biased variance over each group's channels and all pixels), affine, then ReLU.
pub fn group_norm_relu(x: &Activation, gn: &GroupNorm, groups: usize) -> Activation {
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
