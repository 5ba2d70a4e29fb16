//! The GPU side, as wgpu's examples are laid out: one idea per file.
//! - `device`: the adapter and device, its optional features, buffers and readback;
//! - `kernels`: the WGSL kernels, one host function each, compiled per [`Variant`];
//! - `graph`: the network recorded once at load, and the one run path every call shares;
//! - `tuning`: which variant runs, chosen at load by timing the candidates.

mod device;
mod graph;
pub mod kernels;
mod tuning;

pub use device::{Features, Format, Gpu};
pub use graph::{GpuNetwork, Outputs, Want};
pub use kernels::{ConvKernel, Precision, Variant};
pub use tuning::{fastest_variant, matmul_gflops, precisions};
