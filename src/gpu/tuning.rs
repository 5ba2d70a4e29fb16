//! Which kernels run, chosen at load by measurement: an emulator's ranking of GPU kernels
//! says nothing about a real GPU's, so each candidate is timed on the adapter itself.

use super::device::{Format, Gpu};
use super::kernels::{upload_conv, ConvKernel, Kernels, Precision, Recording, Shape, Variant};
use crate::model::Conv;
use crate::Result;

/// The adapter's matrix-multiply throughput with one of this project's convolution kernels:
/// a 1x1 convolution over `side x side` pixels is an (side², k) x (k, n) matrix product.
/// Median GFLOP/s over `runs` timed submissions of `repeats` dispatches each, awaited through
/// a 4-byte readback; `now` is a clock in milliseconds.
pub async fn matmul_gflops(gpu: &Gpu, variant: Variant, (side, k, n): (usize, usize, usize), repeats: usize, runs: usize, now: impl Fn() -> f64) -> Result<f64> {
    let kernels = Kernels::new(gpu, variant, &[variant.conv_kernel((1, true, false), k)]).await?;
    let format = kernels.format();
    let src = gpu.zeroed("matmul input", side * side * k, format)?;
    let dst = gpu.zeroed("matmul output", side * side * n, format)?;
    // Scale 1 and shift 0: the input norm of a block's 1x1 convolution, on the probe's zeros.
    let affine = gpu.upload("matmul affine", &[vec![1.0f32; k], vec![0.0f32; k]].concat(), Format::F32)?;
    let dummy = gpu.zeroed("unused", 4, Format::F32)?;
    let weight: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let conv = upload_conv(gpu, &Conv { k: 1, stride: 1, pad: 0, cin: k, cout: n, weight }, format, "matmul")?;
    let mut rec = Recording::new(gpu, &kernels);
    rec.conv(&src, Shape { h: side, w: side, c: k }, &conv, Some(&affine), None, &dst, &dummy, "matmul")?;
    let dispatches: Vec<_> = std::iter::repeat_with(|| &rec.dispatches[0]).take(repeats.max(1)).collect();
    let readback = gpu.readback("matmul readback", 4);
    let mut times = Vec::new();
    for run in 0..=runs {
        let started = now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in &dispatches {
                d.encode(&mut pass, 1);
            }
        }
        encoder.copy_buffer_to_buffer(&dst, 0, &readback, 0, 4);
        gpu.queue.submit([encoder.finish()]);
        gpu.read(&[(&readback, 1, Format::F32)]).await?;
        if run > 0 {
            times.push(now() - started); // the first run warms up
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(2.0 * (side * side * k * n * repeats.max(1)) as f64 / times[times.len() / 2].max(1e-3) / 1e6)
}

/// The precisions to try: f32 where the weights are f32 or the adapter has no `shader-f16`;
/// f16 storage, with f32 or f16 arithmetic, where it has and `f16` is allowed.
pub fn precisions(gpu: &Gpu, f16: bool) -> Vec<Precision> {
    if f16 && gpu.features.f16 {
        vec![Precision::F16, Precision::F16Arithmetic]
    } else {
        vec![Precision::F32]
    }
}

/// The fastest variant on this adapter among `precisions`, and the GFLOP/s it reached,
/// timed on a stage-2-sized product (3136 x 256 x 256). Subgroups are used wherever the
/// device has them. Software adapters (`software`, or a CPU device), and anything under
/// 20 GFLOP/s, keep the register kernel without timing the tiled one: barriers cost 5-20x on
/// emulators. Costs a few milliseconds on a GPU, about 0.3 s on a software one (a smaller
/// product there). `on_measured(n)` hears each precision done.
pub async fn fastest_variant(gpu: &Gpu, precisions: &[Precision], software: bool, now: impl Fn() -> f64, on_measured: impl Fn(usize)) -> Result<(Variant, f64)> {
    let subgroups = gpu.features.subgroups;
    let emulator = software || gpu.is_cpu();
    let mut best: Option<(Variant, f64)> = None;
    for (measured, &precision) in precisions.iter().enumerate() {
        let registers = Variant { conv: ConvKernel::Registers, precision, subgroups };
        let mut candidates = vec![registers];
        let gflops = if emulator {
            matmul_gflops(gpu, registers, (16, 256, 256), 4, 3, &now).await?
        } else {
            let first = matmul_gflops(gpu, registers, (56, 256, 256), 1, 2, &now).await?;
            if first >= 20.0 {
                candidates.push(Variant { conv: ConvKernel::Tiled, ..registers });
            }
            first
        };
        let mut timed = vec![(registers, gflops)];
        if candidates.len() > 1 {
            timed.clear();
            for v in candidates {
                timed.push((v, matmul_gflops(gpu, v, (56, 256, 256), 8, 3, &now).await?));
            }
        }
        for (v, g) in timed {
            if best.is_none_or(|(_, b)| g > b) {
                best = Some((v, g));
            }
        }
        on_measured(measured + 1);
    }
    Ok(best.expect("at least one precision"))
}
