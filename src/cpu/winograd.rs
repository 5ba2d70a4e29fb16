//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2015):
//! each 2x2 block of outputs comes from a 4x4 input tile with 16 multiplications per input
//! and output channel pair instead of 36, so these convolutions (37% of BiT-50's FLOPs) do
//! 2.25x fewer multiply-adds. Weights are transformed once at load (`U = G g Gᵀ`); per image
//! the input tiles are transformed (`V = Bᵀ d B`), multiplied by `U` as 16 independent matrix
//! products over the channels (the same micro-kernel as the direct path), and transformed back
//! (`Y = Aᵀ M A`). The price: `U` holds 16/9 as many values as the 3x3 weights (+26 MB at f32
//! for BiT-50). Numerically F(2x2, 3x3) is benign: logits within 1.0e-5 of transformers.

use super::gemm::Tile;
use super::new_map;
use crate::layers::Activation;
use crate::model::Conv;
use std::mem::MaybeUninit;

/// The 16 positions of a 4x4 transformed tile.
const XI: usize = 16;

/// Whether `conv` runs here: 3x3, stride 1, padding 1.
pub(super) fn applies(conv: &Conv) -> bool {
    conv.k == 3 && conv.stride == 1 && conv.pad == 1
}

/// `[3][3][cin][cout]` to `U = G g Gᵀ` per channel pair, packed `[16][panels][cin][nr]` (the
/// last panel padded with zero columns).
pub(super) fn pack(conv: &mut Conv, nr: usize) {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let (cin, cout) = (conv.cin, conv.cout);
    let panels = cout.div_ceil(nr);
    let mut packed = vec![0.0f32; XI * panels * cin * nr];
    for ci in 0..cin {
        for co in 0..cout {
            let g = |ky: usize, kx: usize| conv.weight[((ky * 3 + kx) * cin + ci) * cout + co] as f64;
            // G g (4x3), then (G g) Gᵀ (4x4).
            let gg: [[f64; 3]; 4] = std::array::from_fn(|i| std::array::from_fn(|kx| G[i][0] * g(0, kx) + G[i][1] * g(1, kx) + G[i][2] * g(2, kx)));
            let (panel, lane) = (co / nr, co % nr);
            for (i, row) in gg.iter().enumerate() {
                for (j, gj) in G.iter().enumerate() {
                    let u = row[0] * gj[0] + row[1] * gj[1] + row[2] * gj[2];
                    packed[(((i * 4 + j) * panels + panel) * cin + ci) * nr + lane] = u as f32;
                }
            }
        }
    }
    conv.weight = packed;
}

/// The convolution of `x` (zero padding) with weights from [`pack`]. Works through blocks of `MR`
/// tiles, in row-major tile order across rows (so that a wide tile, 12 for AVX-512, is not half
/// empty at the end of each short row of a late stage): transform their inputs, multiply by all
/// of `U`, transform back into each tile's 2x2 output pixels; rows of tiles go to different threads.
pub(super) fn conv2d<const MR: usize, const NR: usize>(x: &Activation, conv: &Conv, tile: Tile<MR, NR>) -> Activation {
    let (h, w, cin, cout) = (x.h, x.w, conv.cin, conv.cout);
    let tiles_x = w.div_ceil(2);
    let zeros = vec![0.0f32; cin];
    // M's rows hold whole panels (the last one's padding lanes are computed, never read).
    let (panel_len, cout_padded) = (cin * NR, cout.div_ceil(NR) * NR);
    // One row of tiles makes 2 rows of output pixels (1 at the bottom of an odd height).
    // SAFETY: the tiles of a block's rows cover each of its pixels, and every channel of them.
    unsafe {
        new_map(h, w, cout, 2 * w * cout, 1, |first, rows| {
            tile.widest(
                #[inline(always)]
                || {
                    let (mut v, mut t) = (vec![0.0f32; XI * MR * cin], vec![0.0f32; XI * cin]);
                    let mut m = vec![0.0f32; XI * MR * cout_padded];
                    let mut acc = [[0.0f32; NR]; MR];
                    let mut s = vec![0.0f32; 8 * cout];
                    let tiles = rows.len().div_ceil(2 * w * cout) * tiles_x;
                    // Tile `t` of this block of rows: (row of tiles, column).
                    let at = |t: usize| (first + t / tiles_x, t % tiles_x);
                    for t0 in (0..tiles).step_by(MR) {
                        // V = Bᵀ d B for the block's MR tiles, [16][MR][cin] (past the last tile: rows below
                        // the block, zeros or the next rows, computed, never stored).
                        for i in 0..MR {
                            let (ty, tx) = at(t0 + i);
                            let d: [&[f32]; XI] = std::array::from_fn(|k| {
                                let (y, x_) = ((2 * ty + k / 4) as isize - 1, (2 * tx + k % 4) as isize - 1);
                                if y < 0 || x_ < 0 || y >= h as isize || x_ >= w as isize {
                                    &zeros[..]
                                } else {
                                    &x.data[(y as usize * w + x_ as usize) * cin..][..cin]
                                }
                            });
                            // Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]: columns, then rows.
                            for j in 0..4 {
                                let col = |r: usize| d[r * 4 + j];
                                combine(&mut t[j * cin..][..cin], col(0), col(2), -1.0);
                                combine(&mut t[(4 + j) * cin..][..cin], col(1), col(2), 1.0);
                                combine(&mut t[(8 + j) * cin..][..cin], col(2), col(1), -1.0);
                                combine(&mut t[(12 + j) * cin..][..cin], col(1), col(3), -1.0);
                            }
                            for r in 0..4 {
                                let row = |j: usize| &t[(r * 4 + j) * cin..][..cin];
                                let dst = |j: usize| ((r * 4 + j) * MR + i) * cin;
                                combine(&mut v[dst(0)..][..cin], row(0), row(2), -1.0);
                                combine(&mut v[dst(1)..][..cin], row(1), row(2), 1.0);
                                combine(&mut v[dst(2)..][..cin], row(2), row(1), -1.0);
                                combine(&mut v[dst(3)..][..cin], row(1), row(3), -1.0);
                            }
                        }
                        // M[ξ] = V[ξ] U[ξ] for the 16 positions, [16][MR][cout_padded].
                        for xi in 0..XI {
                            let patch = &v[xi * MR * cin..][..MR * cin];
                            let panels = &conv.weight[xi * cin * cout_padded..][..cin * cout_padded];
                            for (p, panel) in panels.chunks_exact(panel_len).enumerate() {
                                (tile.micro)(patch, cin, panel, &mut acc);
                                for (i, sums) in acc.iter().enumerate() {
                                    m[(xi * MR + i) * cout_padded + p * NR..][..NR].copy_from_slice(sums);
                                }
                            }
                        }
                        // Y = Aᵀ M A, Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]: columns into s [2][4][cout], then rows.
                        for i in 0..MR.min(tiles - t0) {
                            let (ty, tx) = at(t0 + i);
                            let mt = |xi: usize| &m[(xi * MR + i) * cout_padded..][..cout];
                            for j in 0..4 {
                                combine3(&mut s[j * cout..][..cout], mt(j), mt(4 + j), mt(8 + j), 1.0, f32::from);
                                combine3(&mut s[(4 + j) * cout..][..cout], mt(4 + j), mt(8 + j), mt(12 + j), -1.0, f32::from);
                            }
                            for a in 0..2 {
                                if 2 * ty + a >= h {
                                    continue;
                                }
                                let sa = |j: usize| &s[(a * 4 + j) * cout..][..cout];
                                let pixel = |b: usize| ((2 * (ty - first) + a) * w + 2 * tx + b) * cout;
                                combine3(&mut rows[pixel(0)..][..cout], sa(0), sa(1), sa(2), 1.0, MaybeUninit::new);
                                if 2 * tx + 1 < w {
                                    combine3(&mut rows[pixel(1)..][..cout], sa(1), sa(2), sa(3), -1.0, MaybeUninit::new);
                                }
                            }
                        }
                    }
                },
            )
        })
    }
}

/// `out = a + sign * b`, element-wise (vectorizes).
#[inline(always)]
fn combine(out: &mut [f32], a: &[f32], b: &[f32], sign: f32) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + sign * b;
    }
}

/// `out = a + sign * (b + c)` if `sign` is -1, else `a + b + c`; element-wise, stored as `T`
/// (f32, or a value of a map being made).
#[inline(always)]
fn combine3<T>(out: &mut [T], a: &[f32], b: &[f32], c: &[f32], sign: f32, to: impl Fn(f32) -> T) {
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = to(a + sign * (b + c));
    }
}
