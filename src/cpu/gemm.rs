//! The matrix-product micro-kernels of the CPU path, one per vector width, chosen at run time.
//!
//! A micro-kernel computes one tile of a convolution's output, `MR` pixels x `NR` channels,
//! as `acc[i][j] = sum over d of patch[i * depth + d] * panel[d * NR + j]`: the tile's partial
//! sums stay in vector registers while a packed panel of weights (`NR` output channels,
//! prepared once at load by `pack_panels`) streams by once. The tile's shape suits the width:
//!
//! | kernel   | registers           | tile (pixels x channels) | accumulators |
//! |----------|---------------------|--------------------------|--------------|
//! | portable | 16 x 4 floats (SSE2, wasm simd128) | 4 x 8     | 8            |
//! | avx2     | 16 x 8 floats, FMA  | 6 x 16                   | 12           |
//! | avx512   | 32 x 16 floats, FMA | 12 x 32                  | 24           |
//! | neon     | 32 x 4 floats, FMA  | 8 x 8                    | 16           |
//!
//! The binary is built for the baseline of its target, so the wider kernels are
//! `#[target_feature]` functions, reached only through a [`Kernel`] that feature detection
//! (or a caller asking for one the processor has) made: never an illegal instruction.

use crate::bail;
use crate::error::Result;
use std::sync::atomic::{AtomicU8, Ordering};

/// A micro-kernel: `(patch, depth, panel, acc)`, `patch` holding `MR` rows of `depth`.
pub type Micro<const MR: usize, const NR: usize> = fn(&[f32], usize, &[f32], &mut [[f32; NR]; MR]);

/// A micro-kernel with its kernel, whose vector width the elementwise loops around it use too.
#[derive(Clone, Copy)]
pub struct Tile<const MR: usize, const NR: usize> {
    pub micro: Micro<MR, NR>,
    pub kernel: Kernel,
}

/// Which micro-kernel the CPU path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust that the compiler vectorizes for the build's baseline (SSE2; wasm simd128,
    /// or relaxed SIMD's fused multiply-add in that wasm build).
    Portable,
    /// x86-64 with AVX2 and FMA: 8 floats a vector.
    Avx2,
    /// x86-64 with AVX-512F: 16 floats a vector.
    Avx512,
    /// Arm64 (Advanced SIMD is part of the architecture).
    Neon,
}

pub const KERNELS: [Kernel; 4] = [Kernel::Portable, Kernel::Avx2, Kernel::Avx512, Kernel::Neon];

/// Chosen by `set_kernel` (0: not chosen, else index into KERNELS + 1).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) => "wasm relaxed-simd",
            Kernel::Portable if cfg!(target_arch = "wasm32") => "wasm simd128",
            Kernel::Portable => "portable",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Neon => "neon",
        }
    }

    /// `portable`, `avx2`, `avx512` or `neon` (the names on the command line).
    pub fn parse(name: &str) -> Result<Kernel> {
        match name {
            "portable" => Ok(Kernel::Portable),
            "avx2" => Ok(Kernel::Avx2),
            "avx512" => Ok(Kernel::Avx512),
            "neon" => Ok(Kernel::Neon),
            _ => bail!(BadInput, "CPU kernel {name:?}: expected portable, avx2, avx512 or neon"),
        }
    }

    /// Whether this processor can run it.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The widest kernel this processor runs.
    pub fn detect() -> Kernel {
        [Kernel::Avx512, Kernel::Avx2, Kernel::Neon].into_iter().find(|k| k.supported()).unwrap_or(Kernel::Portable)
    }

    /// Output channels per packed weight panel.
    pub fn panel_width(self) -> usize {
        struct Width;
        impl WithTile for Width {
            type Out = usize;
            fn call<const MR: usize, const NR: usize>(self, _: Tile<MR, NR>) -> usize {
                NR
            }
        }
        self.with_tile(Width)
    }

    /// Calls `w` with this kernel's tile shape and micro-kernel.
    pub fn with_tile<W: WithTile>(self, w: W) -> W::Out {
        assert!(self.supported(), "{} kernel on a processor without it", self.name());
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => w.call::<6, 16>(Tile { micro: x86::avx2, kernel: self }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => w.call::<12, 32>(Tile { micro: x86::avx512, kernel: self }),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => w.call::<8, 8>(Tile { micro: arm::neon, kernel: self }),
            _ => w.call::<4, 8>(Tile { micro: portable, kernel: self }),
        }
    }
}

/// Something generic over a tile shape (the CPU path's convolutions), for `Kernel::with_tile`.
pub trait WithTile {
    type Out;
    fn call<const MR: usize, const NR: usize>(self, tile: Tile<MR, NR>) -> Self::Out;
}

/// The kernel the CPU path uses: as set by `set_kernel`, else the widest this processor has.
pub fn kernel() -> Kernel {
    match CHOSEN.load(Ordering::Relaxed) {
        0 => Kernel::detect(),
        n => KERNELS[n as usize - 1],
    }
}

/// Uses `kernel` for the CPU networks made from now on; refused if the processor lacks it.
pub fn set_kernel(kernel: Kernel) -> Result<()> {
    if !kernel.supported() {
        bail!(BadInput, "this processor cannot run the {} CPU kernel (it has: {})", kernel.name(), supported_names());
    }
    CHOSEN.store(KERNELS.iter().position(|k| *k == kernel).unwrap() as u8 + 1, Ordering::Relaxed);
    Ok(())
}

fn supported_names() -> String {
    KERNELS.iter().filter(|k| k.supported()).map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// `[depth][cout]` weights (row-major) to panels of `nr` output channels, `[panels][depth][nr]`,
/// the last panel padded with zero columns: the micro-kernel then reads its weights front to back.
pub fn pack_panels(weight: &[f32], depth: usize, cout: usize, nr: usize) -> Vec<f32> {
    let panels = cout.div_ceil(nr);
    let mut packed = vec![0.0f32; panels * depth * nr];
    for (p, panel) in packed.chunks_exact_mut(depth * nr).enumerate() {
        let lanes = nr.min(cout - p * nr);
        for (row, dst) in weight.chunks_exact(cout).zip(panel.chunks_exact_mut(nr)) {
            dst[..lanes].copy_from_slice(&row[p * nr..][..lanes]);
        }
    }
    packed
}

/// The portable micro-kernel, 4 x 8. Fixed sizes and bounds proven by slicing before the loop,
/// so that the compiler keeps `acc` in registers and vectorizes over the 8 channels.
#[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
fn portable(patch: &[f32], depth: usize, panel: &[f32], acc: &mut [[f32; 8]; 4]) {
    let (a0, a1, a2, a3) = (&patch[..depth], &patch[depth..2 * depth], &patch[2 * depth..3 * depth], &patch[3 * depth..4 * depth]);
    let mut sums = [[0.0f32; 8]; 4];
    for (d, w) in panel[..depth * 8].chunks_exact(8).enumerate() {
        let x = [a0[d], a1[d], a2[d], a3[d]];
        for i in 0..4 {
            for j in 0..8 {
                sums[i][j] += x[i] * w[j];
            }
        }
    }
    *acc = sums;
}

/// The same with WebAssembly's relaxed SIMD, in the second wasm build (build.sh), which the worker
/// loads where the browser has it: `f32x4.relaxed_madd` is one fused multiply-add where the CPU
/// has them, so a step issues half the instructions (measured 1.2x on the matrix product on AMD
/// Zen 4; mul + add cannot be fused by the compiler, as that would change the rounding).
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
fn portable(patch: &[f32], depth: usize, panel: &[f32], acc: &mut [[f32; 8]; 4]) {
    use core::arch::wasm32::*;
    assert!(patch.len() >= 4 * depth && panel.len() >= depth * 8);
    let mut sums = [[f32x4_splat(0.0); 2]; 4];
    for d in 0..depth {
        // SAFETY: d < depth, and both slices were checked to hold `depth` rows above.
        unsafe {
            let w = panel.as_ptr().add(d * 8) as *const v128;
            let (w0, w1) = (v128_load(w), v128_load(w.add(1)));
            for (i, s) in sums.iter_mut().enumerate() {
                let x = v128_load32_splat(patch.as_ptr().add(i * depth + d) as *const u32);
                s[0] = f32x4_relaxed_madd(x, w0, s[0]);
                s[1] = f32x4_relaxed_madd(x, w1, s[1]);
            }
        }
    }
    // SAFETY: [[v128; 2]; 4] and [[f32; 8]; 4] are both 128 plain bytes, lanes in order.
    *acc = unsafe { core::mem::transmute::<[[v128; 2]; 4], [[f32; 8]; 4]>(sums) };
}

impl<const MR: usize, const NR: usize> Tile<MR, NR> {
    /// Runs `f` compiled for this kernel's vectors: for the loops around the micro-kernel that
    /// the compiler vectorizes (transforms, GroupNorm), which the baseline build keeps to SSE2.
    /// `f` must be an `#[inline(always)]` closure, so that its loops are compiled in here.
    #[inline(always)]
    pub fn widest<R>(self, f: impl FnOnce() -> R) -> R {
        self.kernel.widest(f)
    }
}

impl Kernel {
    /// As [`Tile::widest`].
    #[inline(always)]
    pub fn widest<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            // SAFETY: a `Kernel` other than Portable is made only where the processor has it.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { x86::with_avx512(f) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { x86::with_avx2(f) },
            _ => f(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// 6 x 16 with AVX2 and FMA. Safe to call only through a `Kernel::Avx2` (checked support).
    pub(super) fn avx2(patch: &[f32], depth: usize, panel: &[f32], acc: &mut [[f32; 16]; 6]) {
        assert!(patch.len() >= 6 * depth && panel.len() >= depth * 16);
        // SAFETY: `Kernel::with_tile` asserted that the processor has AVX2 and FMA; the
        // slices hold what the loop reads (checked above).
        unsafe { avx2_tile(patch.as_ptr(), depth, panel.as_ptr(), acc) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile(a: *const f32, depth: usize, w: *const f32, acc: &mut [[f32; 16]; 6]) {
        let mut c = [[_mm256_setzero_ps(); 2]; 6];
        for d in 0..depth {
            let (w0, w1) = (_mm256_loadu_ps(w.add(d * 16)), _mm256_loadu_ps(w.add(d * 16 + 8)));
            for (i, c) in c.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(i * depth + d));
                c[0] = _mm256_fmadd_ps(x, w0, c[0]);
                c[1] = _mm256_fmadd_ps(x, w1, c[1]);
            }
        }
        for (row, c) in acc.iter_mut().zip(c) {
            _mm256_storeu_ps(row.as_mut_ptr(), c[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), c[1]);
        }
    }

    /// 12 x 32 with AVX-512F. Safe to call only through a `Kernel::Avx512` (checked support).
    pub(super) fn avx512(patch: &[f32], depth: usize, panel: &[f32], acc: &mut [[f32; 32]; 12]) {
        assert!(patch.len() >= 12 * depth && panel.len() >= depth * 32);
        // SAFETY: as in `avx2`, for AVX-512F.
        unsafe { avx512_tile(patch.as_ptr(), depth, panel.as_ptr(), acc) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_tile(a: *const f32, depth: usize, w: *const f32, acc: &mut [[f32; 32]; 12]) {
        let mut c = [[_mm512_setzero_ps(); 2]; 12];
        for d in 0..depth {
            let (w0, w1) = (_mm512_loadu_ps(w.add(d * 32)), _mm512_loadu_ps(w.add(d * 32 + 16)));
            for (i, c) in c.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.add(i * depth + d));
                c[0] = _mm512_fmadd_ps(x, w0, c[0]);
                c[1] = _mm512_fmadd_ps(x, w1, c[1]);
            }
        }
        for (row, c) in acc.iter_mut().zip(c) {
            _mm512_storeu_ps(row.as_mut_ptr(), c[0]);
            _mm512_storeu_ps(row.as_mut_ptr().add(16), c[1]);
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    /// 8 x 8 with Advanced SIMD's fused multiply-add (every Arm64 processor has it).
    pub(super) fn neon(patch: &[f32], depth: usize, panel: &[f32], acc: &mut [[f32; 8]; 8]) {
        assert!(patch.len() >= 8 * depth && panel.len() >= depth * 8);
        // SAFETY: NEON is part of aarch64; the slices hold what the loop reads (checked above).
        unsafe {
            let (a, w) = (patch.as_ptr(), panel.as_ptr());
            let mut c = [[vdupq_n_f32(0.0); 2]; 8];
            for d in 0..depth {
                let (w0, w1) = (vld1q_f32(w.add(d * 8)), vld1q_f32(w.add(d * 8 + 4)));
                for (i, c) in c.iter_mut().enumerate() {
                    let x = vld1q_dup_f32(a.add(i * depth + d));
                    c[0] = vfmaq_f32(c[0], x, w0);
                    c[1] = vfmaq_f32(c[1], x, w1);
                }
            }
            for (row, c) in acc.iter_mut().zip(c) {
                vst1q_f32(row.as_mut_ptr(), c[0]);
                vst1q_f32(row.as_mut_ptr().add(4), c[1]);
            }
        }
    }
}
