//! The network's plain building blocks that the CPU reference and the fast CPU path share:
//! activation maps, the stem's padding and pooling, global average pooling, the classifier
//! and the class activation map. Convolutions and GroupNorm are not here: each path has
//! its own (reference.rs the plain oracle, cpu/ the fast one).

use crate::model::Network;

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

/// ConstantPad2d(1, value 0): BiT's stand-in for SAME padding before the stem's pool.
pub fn zero_pad_1(x: &Activation) -> Activation {
    let (h, w) = (x.h + 2, x.w + 2);
    let mut data = vec![0.0; h * w * x.c];
    for y in 0..x.h {
        let src = &x.data[y * x.w * x.c..(y + 1) * x.w * x.c];
        data[((y + 1) * w + 1) * x.c..][..x.w * x.c].copy_from_slice(src);
    }
    Activation { h, w, c: x.c, data }
}

/// MaxPool 3x3, stride 2, no padding, floor mode.
pub fn max_pool_3x3_s2(x: &Activation) -> Activation {
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

pub fn global_average_pool(x: &Activation) -> Vec<f32> {
    let pixels = x.h * x.w;
    (0..x.c)
        .map(|c| ((0..pixels).map(|p| x.data[p * x.c + c] as f64).sum::<f64>() / pixels as f64) as f32)
        .collect()
}

/// `logits = pooled @ W + b` with W stored `[in][out]`.
pub fn linear(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let out = bias.len();
    let mut y: Vec<f64> = bias.iter().map(|&b| b as f64).collect();
    for (i, &v) in x.iter().enumerate() {
        for (o, &w) in y.iter_mut().zip(&weight[i * out..(i + 1) * out]) {
            *o += v as f64 * w as f64;
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

