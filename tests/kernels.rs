//! Each WGSL kernel on its own against the CPU reference, on awkward shapes (odd sizes, one
//! group, stride 2, a batch of several images), in every variant the device runs: so that a
//! kernel bug is named by its kernel, not only by a whole-network parity failure.
//! GPU tests run on lavapipe here and in CI (f16 and subgroups of 8 included).

use bit50::gpu::kernels::{submit, upload_conv, ConvKernel, Kernel, Kernels, Precision, Recording, Shape, Variant, HEAD_KERNELS};
use bit50::gpu::{Features, Format, Gpu};
use bit50::layers::{self, Activation};
use bit50::model::Conv;
use bit50::reference;
use std::sync::OnceLock;

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(Gpu::new(Features::ALL)).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)"))
}

/// Every variant this device runs.
fn variants() -> Vec<Variant> {
    let g = gpu();
    assert!(g.features.f16 && g.features.subgroups, "lavapipe offers shader-f16 and subgroups; this device: {:?}", g.features);
    let mut out = Vec::new();
    for conv in [ConvKernel::Registers, ConvKernel::Tiled] {
        for precision in [Precision::F32, Precision::F16, Precision::F16Arithmetic] {
            for subgroups in [false, true] {
                out.push(Variant { conv, precision, subgroups });
            }
        }
    }
    out
}

/// Every kernel of `variant`: each convolution kind (tiled where the variant has it) and the head.
fn all_kernels(variant: Variant) -> Kernels {
    let mut kernels = HEAD_KERNELS.to_vec();
    for spec in [(7, false, false), (1, true, false), (3, true, false), (1, true, true), (1, false, false), (3, false, false)] {
        kernels.extend([Kernel::Conv(spec), variant.conv_kernel(spec, 16)]);
    }
    pollster::block_on(Kernels::new(gpu(), variant, &kernels)).unwrap()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// What the GPU holds of `x` in `format` (f16 rounds).
fn stored(x: &[f32], format: Format) -> Vec<f32> {
    match format {
        Format::F32 => x.to_vec(),
        Format::F16 => x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
    }
}

fn read(buffer: &wgpu::Buffer, elements: usize, format: Format) -> Vec<f32> {
    let g = gpu();
    let bytes = (elements as u64 * format.bytes()).next_multiple_of(4);
    let readback = g.readback("test readback", bytes);
    let mut encoder = g.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &readback, 0, bytes);
    g.queue.submit([encoder.finish()]);
    pollster::block_on(g.read(&[(&readback, elements, format)])).unwrap().remove(0)
}

/// Largest |a - b| relative to the largest |b| (at least 1).
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn tolerance(p: Precision) -> f32 {
    match p {
        Precision::F32 => 2e-6,
        Precision::F16 => 2e-3,
        Precision::F16Arithmetic => 5e-3,
    }
}

struct ConvCase {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    norm: bool,
    residual: bool,
}

/// conv.wgsl and conv_tiled.wgsl: `conv(relu(x * scale + shift)) + residual` for a batch of 3.
#[test]
fn convolutions_match_the_reference() {
    let cases = [
        ConvCase { h: 5, w: 7, cin: 16, cout: 8, k: 1, stride: 1, norm: true, residual: true },
        ConvCase { h: 7, w: 5, cin: 32, cout: 16, k: 1, stride: 2, norm: true, residual: false },
        ConvCase { h: 9, w: 11, cin: 16, cout: 24, k: 3, stride: 1, norm: true, residual: false },
        ConvCase { h: 7, w: 7, cin: 32, cout: 8, k: 3, stride: 2, norm: true, residual: false },
        ConvCase { h: 13, w: 11, cin: 3, cout: 16, k: 7, stride: 2, norm: false, residual: false },
        ConvCase { h: 3, w: 2, cin: 4, cout: 72, k: 3, stride: 1, norm: true, residual: false },
    ];
    let images = 3;
    for variant in variants() {
        let kernels = all_kernels(variant);
        let format = kernels.format();
        for (n, c) in cases.iter().enumerate() {
            let what = format!("{} conv {k}x{k}/{} {}x{}x{}->{}", variant.describe(), c.stride, c.h, c.w, c.cin, c.cout, k = c.k);
            let seed = n as u64 * 100;
            let pad = ((c.stride - 1) + (c.k - 1)) / 2;
            let conv = Conv { k: c.k, stride: c.stride, pad, cin: c.cin, cout: c.cout, weight: stored(&values(c.k * c.k * c.cin * c.cout, seed + 1), format) };
            let cin4 = c.cin.next_multiple_of(4);
            let x = stored(&values(images * c.h * c.w * c.cin, seed + 2), format);
            let affine: Vec<f32> = values(images * 2 * cin4, seed + 3).iter().map(|v| v + 0.5).collect();
            let (oh, ow) = (conv.out_size(c.h), conv.out_size(c.w));
            let residual = stored(&values(images * oh * ow * c.cout, seed + 4), format);
            // The reference, image by image.
            let mut want = Vec::new();
            for i in 0..images {
                let mut data = x[i * c.h * c.w * c.cin..][..c.h * c.w * c.cin].to_vec();
                if c.norm {
                    let (scale, shift) = (&affine[i * 2 * cin4..][..cin4], &affine[i * 2 * cin4 + cin4..][..cin4]);
                    for (j, v) in data.iter_mut().enumerate() {
                        *v = (*v * scale[j % c.cin] + shift[j % c.cin]).max(0.0);
                    }
                }
                let mut out = reference::conv2d(&Activation { h: c.h, w: c.w, c: c.cin, data }, &conv).data;
                if c.residual {
                    out.iter_mut().zip(&residual[i * oh * ow * c.cout..]).for_each(|(o, r)| *o += r);
                }
                want.extend(out);
            }
            // The kernel: the input padded to cin4 channels (the stem's RGB0).
            let mut padded = vec![0.0f32; images * c.h * c.w * cin4];
            for (p, v) in x.chunks_exact(c.cin).enumerate() {
                padded[p * cin4..][..c.cin].copy_from_slice(v);
            }
            let g = gpu();
            let src = g.upload("x", &padded, format).unwrap();
            let weights = upload_conv(g, &conv, format, "w").unwrap();
            let affine_buffer = g.upload("affine", &affine, Format::F32).unwrap();
            let residual_buffer = g.upload("residual", &residual, format).unwrap();
            let dst = g.zeroed("out", want.len(), format).unwrap();
            let dummy = g.zeroed("unused", 4, Format::F32).unwrap();
            let mut rec = Recording::new(g, &kernels);
            let shape = rec
                .conv(&src, Shape { h: c.h, w: c.w, c: cin4 }, &weights, c.norm.then_some(&affine_buffer), c.residual.then_some(&residual_buffer), &dst, &dummy, &what)
                .unwrap();
            assert_eq!((shape.h, shape.w, shape.c), (oh, ow, c.cout));
            submit(g, &rec.dispatches, images as u32, |_| {});
            let got = read(&dst, want.len(), format);
            let err = relative_error(&got, &want);
            assert!(err <= tolerance(variant.precision), "{what}: relative error {err:.2e}");
        }
    }
}

/// gn_stats.wgsl: per image and group, mean and biased variance folded with gamma and beta.
#[test]
fn group_norm_statistics_match_the_reference() {
    // (h, w, channels, groups): odd pixel counts, one group, one channel per group.
    let cases = [(3, 5, 8, 1), (7, 7, 16, 4), (1, 1, 32, 32), (9, 2, 12, 3)];
    let images = 2;
    for variant in variants().into_iter().filter(|v| v.conv == ConvKernel::Registers) {
        let kernels = all_kernels(variant);
        let format = kernels.format();
        for (n, &(h, w, c, groups)) in cases.iter().enumerate() {
            let what = format!("{} group norm {h}x{w}x{c}, {groups} groups", variant.describe());
            let x: Vec<f32> = stored(&values(images * h * w * c, n as u64).iter().map(|v| 3.0 * v + 1.0).collect::<Vec<_>>(), format);
            let (gamma, beta) = (values(c, 50 + n as u64), values(c, 60 + n as u64));
            let mut want = Vec::new();
            for i in 0..images {
                let map = &x[i * h * w * c..][..h * w * c];
                let mut scale = vec![0.0f32; c];
                let mut shift = vec![0.0f32; c];
                let per = c / groups;
                for g in 0..groups {
                    let vals: Vec<f64> = map.chunks_exact(c).flat_map(|p| p[g * per..(g + 1) * per].iter().map(|&v| v as f64)).collect();
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                    for ch in g * per..(g + 1) * per {
                        let s = gamma[ch] as f64 / (var + layers::GN_EPS).sqrt();
                        scale[ch] = s as f32;
                        shift[ch] = (beta[ch] as f64 - mean * s) as f32;
                    }
                }
                want.extend(scale);
                want.extend(shift);
            }
            let g = gpu();
            let src = g.upload("x", &x, format).unwrap();
            let (gb, bb) = (g.upload("gamma", &gamma, Format::F32).unwrap(), g.upload("beta", &beta, Format::F32).unwrap());
            let affine = g.zeroed("affine", want.len(), Format::F32).unwrap();
            let mut rec = Recording::new(g, &kernels);
            rec.gn_stats(&src, Shape { h, w, c }, c, groups, &gb, &bb, &affine, &what).unwrap();
            submit(g, &rec.dispatches, images as u32, |_| {});
            let err = relative_error(&read(&affine, want.len(), Format::F32), &want);
            assert!(err <= 1e-5, "{what}: relative error {err:.2e}");
        }
    }
}

/// max_pool.wgsl: the stem's zero padding and 3x3 / 2 max pool, exactly.
#[test]
fn max_pool_matches_the_reference() {
    let images = 2;
    for variant in variants().into_iter().filter(|v| v.conv == ConvKernel::Registers && !v.subgroups) {
        let kernels = all_kernels(variant);
        let format = kernels.format();
        for (h, w, c) in [(7, 9, 8), (8, 8, 4), (1, 1, 4), (2, 5, 12)] {
            let x = stored(&values(images * h * w * c, (h * w) as u64), format);
            let mut want = Vec::new();
            for i in 0..images {
                let a = Activation { h, w, c, data: x[i * h * w * c..][..h * w * c].to_vec() };
                want.extend(layers::max_pool_3x3_s2(&layers::zero_pad_1(&a)).data);
            }
            let g = gpu();
            let src = g.upload("x", &x, format).unwrap();
            let dst = g.zeroed("out", want.len(), format).unwrap();
            let mut rec = Recording::new(g, &kernels);
            rec.max_pool(&src, Shape { h, w, c }, &dst).unwrap();
            submit(g, &rec.dispatches, images as u32, |_| {});
            assert_eq!(read(&dst, want.len(), format), want, "{} max pool {h}x{w}x{c}", variant.describe());
        }
    }
}

/// pool.wgsl, pool_subgroups.wgsl, classifier.wgsl, classifier_subgroups.wgsl and
/// class_map.wgsl: the head, on a batch, against layers.rs.
#[test]
fn the_head_matches_the_reference() {
    let images = 3;
    for variant in variants().into_iter().filter(|v| v.conv == ConvKernel::Registers) {
        let kernels = all_kernels(variant);
        let format = kernels.format();
        for (h, w, features, classes) in [(3, 5, 20, 13), (2, 2, 64, 1), (7, 7, 256, 10)] {
            let what = format!("{} head {h}x{w}x{features} -> {classes}", variant.describe());
            let x = stored(&values(images * h * w * features, features as u64), format);
            let affine: Vec<f32> = values(images * 2 * features, 7).iter().map(|v| v + 0.3).collect();
            // torch layout [classes][features] on the GPU; layers.rs reads [features][classes].
            let rows = stored(&values(classes * features, 8), format);
            let mut columns = vec![0.0f32; classes * features];
            for o in 0..classes {
                for f in 0..features {
                    columns[f * classes + o] = rows[o * features + f];
                }
            }
            let bias = values(classes, 9);
            let (mut want_pooled, mut want_logits, mut want_maps) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..images {
                let (scale, shift) = (&affine[i * 2 * features..][..features], &affine[i * 2 * features + features..][..features]);
                let data: Vec<f32> = x[i * h * w * features..][..h * w * features]
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (v * scale[j % features] + shift[j % features]).max(0.0))
                    .collect();
                let norm = Activation { h, w, c: features, data };
                let pooled = layers::global_average_pool(&norm);
                let logits = layers::linear(&pooled, &columns, &bias);
                // Image 0 asks for the last class, the others for their most probable one.
                let class = if i == 0 { classes - 1 } else { bit50::top_k(&logits, &[], 1)[0].index };
                let map: Vec<f32> = norm.data.chunks_exact(features).map(|p| p.iter().zip(&columns[..]).enumerate().map(|(f, (v, _))| v * columns[f * classes + class]).sum()).collect();
                want_pooled.extend(pooled);
                want_logits.extend(logits);
                want_maps.push((class, map));
            }
            let g = gpu();
            let src = g.upload("x", &x, format).unwrap();
            let affine_buffer = g.upload("affine", &affine, Format::F32).unwrap();
            let pooled = g.zeroed("pooled", images * features, Format::F32).unwrap();
            let weight = g.upload("weight", &rows, format).unwrap();
            let bias_buffer = g.upload("bias", &bias, Format::F32).unwrap();
            let logits = g.zeroed("logits", images * classes, Format::F32).unwrap();
            let mut requested = vec![u32::MAX; 2 * images];
            requested[0] = (classes - 1) as u32;
            let chosen = g.upload_bytes("classes", bytemuck::cast_slice(&requested)).unwrap();
            let map = g.zeroed("map", images * h * w, Format::F32).unwrap();
            let mut rec = Recording::new(g, &kernels);
            let shape = Shape { h, w, c: features };
            rec.pool(&src, shape, &affine_buffer, &pooled).unwrap();
            rec.classifier(&pooled, features, &weight, &bias_buffer, classes, &logits).unwrap();
            let class_map = rec.class_map(&src, shape, &affine_buffer, &weight, &logits, classes, images, &chosen, &map).unwrap();
            rec.dispatches.push(class_map);
            submit(g, &rec.dispatches, images as u32, |_| {});
            let err = relative_error(&read(&pooled, images * features, Format::F32), &want_pooled);
            assert!(err <= 1e-5, "{what}: pooled, relative error {err:.2e}");
            let err = relative_error(&read(&logits, images * classes, Format::F32), &want_logits);
            assert!(err <= 1e-5, "{what}: logits, relative error {err:.2e}");
            let used: Vec<u32> = read(&chosen, 2 * images, Format::F32).iter().map(|v| v.to_bits()).collect();
            let maps = read(&map, images * h * w, Format::F32);
            for (i, (class, want)) in want_maps.iter().enumerate() {
                assert_eq!(used[images + i] as usize, *class, "{what}: image {i}'s class");
                let err = relative_error(&maps[i * h * w..][..h * w], want);
                assert!(err <= 1e-5, "{what}: class map of image {i}, relative error {err:.2e}");
            }
        }
    }
}

/// A device without shader-f16 or subgroups refuses those kernels with a message, before any
/// shader is compiled.
#[test]
fn missing_features_are_refused_by_name() {
    let plain = pollster::block_on(Gpu::new(Features::NONE)).unwrap();
    assert_eq!(plain.features, Features::NONE);
    let f16 = Variant { conv: ConvKernel::Registers, precision: Precision::F16, subgroups: false };
    let err = pollster::block_on(Kernels::new(&plain, f16, &HEAD_KERNELS)).err().expect("refused");
    assert!(err.message.contains("shader-f16"), "{err}");
    let subgroups = Variant { precision: Precision::F32, subgroups: true, ..f16 };
    let err = pollster::block_on(Kernels::new(&plain, subgroups, &HEAD_KERNELS)).err().expect("refused");
    assert!(err.message.contains("subgroups"), "{err}");
}
