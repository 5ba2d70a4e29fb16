//! BiT on the GPU. At load, every weight is uploaded, every pipeline compiled and
//! every bind group made; the network becomes a fixed list of dispatches over a
//! few reused activation buffers. Classifying an image writes the input, encodes
//! that list into one command buffer, submits once and reads back the logits.

use super::Gpu;
use crate::model::{Conv, GroupNorm, Network};
use crate::reference::GN_EPS;
use crate::{bail, Result};
use std::borrow::Cow;

/// Invocations per workgroup for the element-wise kernels (browsers allow 256).
const WORKGROUP: u32 = 64;
/// Activation buffers in rotation: a block needs its input, two inner maps and the shortcut.
const ACTIVATION_BUFFERS: usize = 4;

/// A convolution pipeline's specialization: kernel size, input norm, residual.
type ConvVariant = (usize, bool, bool);

/// What BiT needs: the stem (7x7 on the raw input), and inside blocks 1x1 and 3x3
/// convolutions on normalized input, the last 1x1 adding the residual.
const BIT_CONVS: [ConvVariant; 4] = [(7, false, false), (1, true, false), (3, true, false), (1, true, true)];

/// Which convolution kernel a network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernels {
    /// conv.wgsl: register tiles, no workgroup memory, no barriers. For CPU devices and
    /// emulators (lavapipe, SwiftShader), where a barrier costs more than it saves.
    Registers,
    /// conv_tiled.wgsl wherever the input channels allow (multiples of 16), conv.wgsl
    /// elsewhere: workgroup-memory tiles, for GPUs. See [`fastest_kernels`].
    Tiled,
}

struct Pipelines {
    convs: Vec<(ConvVariant, wgpu::ComputePipeline)>,
    /// conv_tiled.wgsl's variants, empty with `ConvKernels::Registers`.
    tiled: Vec<(ConvVariant, wgpu::ComputePipeline)>,
    gn_stats: wgpu::ComputePipeline,
    max_pool: wgpu::ComputePipeline,
    pool: wgpu::ComputePipeline,
    classifier: wgpu::ComputePipeline,
    class_map: wgpu::ComputePipeline,
}

impl Pipelines {
    fn new(device: &wgpu::Device, conv_variants: &[ConvVariant], kernels: ConvKernels) -> Self {
        let module = |name: &str, source: &'static str| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(source)),
            })
        };
        let conv = module("conv.wgsl", concat!(include_str!("../../shaders/conv_bindings.wgsl"), include_str!("../../shaders/conv.wgsl")));
        let conv_tiled =
            module("conv_tiled.wgsl", concat!(include_str!("../../shaders/conv_bindings.wgsl"), include_str!("../../shaders/conv_tiled.wgsl")));
        let gn_stats = module("gn_stats.wgsl", include_str!("../../shaders/gn_stats.wgsl"));
        let max_pool = module("max_pool.wgsl", include_str!("../../shaders/max_pool.wgsl"));
        let pool = module("pool.wgsl", include_str!("../../shaders/pool.wgsl"));
        let classifier = module("classifier.wgsl", include_str!("../../shaders/classifier.wgsl"));
        let class_map = module("class_map.wgsl", include_str!("../../shaders/class_map.wgsl"));
        let pipeline = |label: &str, module: &wgpu::ShaderModule, constants: &[(&str, f64)]| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: None,
            })
        };
        let size = ("WORKGROUP_SIZE", WORKGROUP as f64);
        Pipelines {
            convs: conv_variants
                .iter()
                .map(|&(k, norm, residual)| {
                    let constants = [size, ("KERNEL", k as f64), ("NORM_INPUT", norm as u8 as f64), ("ADD_RESIDUAL", residual as u8 as f64)];
                    ((k, norm, residual), pipeline(&format!("conv {k}x{k}"), &conv, &constants))
                })
                .collect(),
            tiled: conv_variants
                .iter()
                .filter(|&&(k, norm, _)| kernels == ConvKernels::Tiled && (k == 1 || norm))
                .map(|&(k, norm, residual)| {
                    let constants = [("KERNEL", k as f64), ("NORM_INPUT", norm as u8 as f64), ("ADD_RESIDUAL", residual as u8 as f64)];
                    ((k, norm, residual), pipeline(&format!("conv {k}x{k} tiled"), &conv_tiled, &constants))
                })
                .collect(),
            gn_stats: pipeline("gn_stats", &gn_stats, &[]),
            max_pool: pipeline("max_pool", &max_pool, &[size]),
            pool: pipeline("pool", &pool, &[size]),
            classifier: pipeline("classifier", &classifier, &[size]),
            class_map: pipeline("class_map", &class_map, &[size]),
        }
    }
}

/// One recorded dispatch.
struct Dispatch {
    /// What kind of work it is, for per-layer timings ("conv 3x3", "group norm", ...).
    kind: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: (u32, u32),
}

/// An activation map that can be copied out for inspection after a given dispatch.
struct TapPoint {
    after: usize,
    buffer: wgpu::Buffer,
    floats: usize,
}

/// Intermediate maps of one run (`[h][w][c]` order), for tests that locate a mismatch.
pub struct Taps {
    pub stem: Vec<f32>,
    pub stages: Vec<Vec<f32>>,
    pub pooled: Vec<f32>,
    pub logits: Vec<f32>,
}

/// An activation buffer in use and the shape of what it holds.
#[derive(Clone, Copy)]
struct Map {
    buffer: usize,
    h: usize,
    w: usize,
    c: usize,
}

pub struct GpuNetwork {
    pub gpu: Gpu,
    image_size: usize,
    classes: usize,
    features: usize,
    flops: f64,
    kernels: ConvKernels,
    recorded: Recorded,
    logits_readback: wgpu::Buffer,
    pooled_readback: wgpu::Buffer,
    map_readback: wgpu::Buffer,
}

/// Everything `build` makes: the dispatch list and the buffers the caller reads or writes.
struct Recorded {
    input: wgpu::Buffer,
    pooled: wgpu::Buffer,
    logits: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    taps: Vec<TapPoint>,
    /// The class activation map: its dispatch (run after the network), class uniform and output.
    class_map: Dispatch,
    class_uniform: wgpu::Buffer,
    map: wgpu::Buffer,
    map_pixels: usize,
}

/// Splits `threads` invocations into a 2-D grid of workgroups within the 65,535 limit.
fn grid(threads: usize, workgroup: u32) -> (u32, u32, u32) {
    let groups = threads.div_ceil(workgroup as usize).max(1);
    let x = groups.min(65_535);
    let y = groups.div_ceil(x);
    (x as u32, y as u32, x as u32 * workgroup)
}

/// Collects buffers and dispatches while walking the network once.
struct Builder<'a> {
    gpu: &'a Gpu,
    pipelines: &'a Pipelines,
    activations: Vec<wgpu::Buffer>,
    dummy: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

impl Builder<'_> {
    fn bind(&self, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    fn push(&mut self, kind: &str, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer], workgroups: (u32, u32)) {
        let bind_group = self.bind(pipeline, buffers);
        self.dispatches.push(Dispatch { kind: kind.into(), pipeline: pipeline.clone(), bind_group, workgroups });
    }

    /// An activation buffer not holding any of `busy`.
    fn free(&self, busy: &[Map]) -> usize {
        (0..ACTIVATION_BUFFERS).find(|i| busy.iter().all(|m| m.buffer != *i)).expect("enough activation buffers")
    }

    /// GroupNorm statistics of `x`, folded with the affine parameters into scale and shift.
    fn norm(&mut self, x: Map, norm: &GroupNorm, groups: usize, label: &str) -> Result<wgpu::Buffer> {
        let gamma = self.gpu.storage(&format!("{label}.weight"), &norm.weight)?;
        let beta = self.gpu.storage(&format!("{label}.bias"), &norm.bias)?;
        let affine = self.gpu.storage_zeroed(&format!("{label}.affine"), 2 * x.c)?;
        let params = self.gpu.uniform(
            label,
            &[(x.h * x.w) as u32, x.c as u32, (x.c / groups) as u32, 0, (GN_EPS as f32).to_bits(), 0, 0, 0],
        );
        let src = &self.activations[x.buffer].clone();
        self.push("group norm statistics", &self.pipelines.gn_stats.clone(), &[&params, src, &gamma, &beta, &affine], (groups as u32, 1));
        Ok(affine)
    }

    /// A convolution from `x` into a free buffer, optionally normalizing its input and adding a residual.
    fn conv(&mut self, x: Map, conv: &Conv, affine: Option<&wgpu::Buffer>, residual: Option<Map>, busy: &[Map], label: &str) -> Result<Map> {
        let cin = conv.cin.next_multiple_of(4);
        if x.c != cin {
            bail!("{label}: input has {} channels, the convolution expects {cin}", x.c);
        }
        let weight = if cin == conv.cin {
            self.gpu.storage(label, &conv.weight)?
        } else {
            // The stem reads RGB as 4 channels (RGB0): give its weights a zero 4th input channel.
            let mut padded = vec![0.0f32; conv.k * conv.k * cin * conv.cout];
            for tap in 0..conv.k * conv.k {
                for ci in 0..conv.cin {
                    let from = (tap * conv.cin + ci) * conv.cout;
                    let to = (tap * cin + ci) * conv.cout;
                    padded[to..to + conv.cout].copy_from_slice(&conv.weight[from..from + conv.cout]);
                }
            }
            self.gpu.storage(label, &padded)?
        };
        let (oh, ow) = (conv.out_size(x.h), conv.out_size(x.w));
        let pixel_groups = (oh * ow).div_ceil(4);
        let (gx, gy, threads_x) = grid(pixel_groups * conv.cout / 8, WORKGROUP);
        let params = self.gpu.uniform(
            label,
            &[
                x.h as u32,
                x.w as u32,
                (cin / 4) as u32,
                (conv.cout / 4) as u32,
                oh as u32,
                ow as u32,
                conv.k as u32,
                conv.stride as u32,
                conv.pad as u32,
                pixel_groups as u32,
                threads_x,
                0,
            ],
        );
        let mut busy = busy.to_vec();
        busy.push(x);
        busy.extend(residual);
        let out = Map { buffer: self.free(&busy), h: oh, w: ow, c: conv.cout };
        let variant = (conv.k, affine.is_some(), residual.is_some());
        let tiled = self.pipelines.tiled.iter().find(|(v, _)| *v == variant && cin.is_multiple_of(16));
        let (pipeline, workgroups) = match tiled {
            Some((_, pipeline)) => (pipeline.clone(), ((conv.cout / 4).div_ceil(16) as u32, (oh * ow).div_ceil(32) as u32)),
            None => {
                let Some((_, pipeline)) = self.pipelines.convs.iter().find(|(v, _)| *v == variant) else {
                    bail!("{label}: no pipeline for a {}x{} convolution (input norm, residual: {:?})", conv.k, conv.k, (variant.1, variant.2));
                };
                (pipeline.clone(), (gx, gy))
            }
        };
        if workgroups.1 > 65_535 {
            bail!("{label}: {} output pixels are more than one dispatch can tile", oh * ow);
        }
        let kind = format!("conv {k}x{k}{}", if residual.is_some() { " + residual" } else { "" }, k = conv.k);
        let dummy = self.dummy.clone();
        let src = self.activations[x.buffer].clone();
        let dst = self.activations[out.buffer].clone();
        let residual = residual.map(|r| self.activations[r.buffer].clone()).unwrap_or_else(|| dummy.clone());
        self.push(&kind, &pipeline, &[&params, &src, &weight, affine.unwrap_or(&dummy), &residual, &dst], workgroups);
        Ok(out)
    }
}

impl GpuNetwork {
    /// Uploads the network and records its dispatches. All GPU errors during load are
    /// caught and returned (out of memory, a limit exceeded).
    pub async fn new(gpu: Gpu, net: &Network, kernels: ConvKernels) -> Result<Self> {
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let built = Self::build(&gpu, net, kernels);
        let oom = oom.pop().await;
        let invalid = scope.pop().await;
        if let Some(e) = oom.or(invalid) {
            let one_line = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            bail!("cannot set up the network on {}: {one_line}", gpu.describe());
        }
        let recorded = built?;
        let logits_readback = gpu.readback("logits readback", net.classes());
        let pooled_readback = gpu.readback("pooled readback", net.features());
        let map_readback = gpu.readback("class map readback", recorded.map_pixels);
        Ok(GpuNetwork {
            gpu,
            image_size: net.image_size,
            classes: net.classes(),
            features: net.features(),
            flops: net.flops(),
            kernels,
            recorded,
            logits_readback,
            pooled_readback,
            map_readback,
        })
    }

    fn build(gpu: &Gpu, net: &Network, kernels: ConvKernels) -> Result<Recorded> {
        let pipelines = Pipelines::new(&gpu.device, &BIT_CONVS, kernels);
        let size = net.image_size;
        // The largest map: the stem's output, or a block's inner or output map.
        let stem_size = net.stem.out_size(size);
        let mut largest = stem_size * stem_size * net.stem.cout;
        let mut s = (stem_size - 1) / 2 + 1;
        for block in net.stages.iter().flatten() {
            largest = largest.max(s * s * block.conv1.cout);
            s = block.conv2.out_size(s);
            largest = largest.max(s * s * block.conv3.cout);
        }
        let activations = (0..ACTIVATION_BUFFERS)
            .map(|i| gpu.storage_zeroed(&format!("activation {i}"), largest))
            .collect::<Result<Vec<_>>>()?;
        let input = gpu.storage_zeroed("input", size * size * 4)?;
        let mut b = Builder { gpu, pipelines: &pipelines, activations, dummy: gpu.storage_zeroed("unused", 4)?, dispatches: vec![] };
        let mut taps = Vec::new();
        let mut tap = |b: &Builder, x: Map| {
            taps.push(TapPoint { after: b.dispatches.len(), buffer: b.activations[x.buffer].clone(), floats: x.h * x.w * x.c })
        };

        // Stem: the input sits outside the rotation, so borrow a slot's index for it.
        b.activations.push(input.clone());
        let x = Map { buffer: ACTIVATION_BUFFERS, h: size, w: size, c: 4 };
        let stem = b.conv(x, &net.stem, None, None, &[], "stem")?;
        let (h, w) = ((stem.h - 1) / 2 + 1, (stem.w - 1) / 2 + 1);
        let mut x = Map { buffer: b.free(&[stem, x]), h, w, c: stem.c };
        let (gx, gy, threads_x) = grid(h * w * x.c / 4, WORKGROUP);
        let params = gpu.uniform("max_pool", &[stem.h as u32, stem.w as u32, (x.c / 4) as u32, w as u32, (h * w * x.c / 4) as u32, threads_x, 0, 0]);
        let (src, dst) = (b.activations[stem.buffer].clone(), b.activations[x.buffer].clone());
        b.push("max pool", &pipelines.max_pool, &[&params, &src, &dst], (gx, gy));
        tap(&b, x);

        for (i, stage) in net.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                let name = format!("stages.{i}.layers.{j}");
                let pre = b.norm(x, &block.norm1, net.groups, &format!("{name}.norm1"))?;
                let shortcut = match &block.downsample {
                    Some(proj) => b.conv(x, proj, Some(&pre), None, &[], &format!("{name}.downsample"))?,
                    None => x,
                };
                let h1 = b.conv(x, &block.conv1, Some(&pre), None, &[shortcut], &format!("{name}.conv1"))?;
                let n2 = b.norm(h1, &block.norm2, net.groups, &format!("{name}.norm2"))?;
                let h2 = b.conv(h1, &block.conv2, Some(&n2), None, &[shortcut], &format!("{name}.conv2"))?;
                let n3 = b.norm(h2, &block.norm3, net.groups, &format!("{name}.norm3"))?;
                x = b.conv(h2, &block.conv3, Some(&n3), Some(shortcut), &[], &format!("{name}.conv3"))?;
            }
            tap(&b, x);
        }

        // Head: final GroupNorm + ReLU folded into average pooling, then the classifier.
        let affine = b.norm(x, &net.norm, net.groups, "norm")?;
        let features = net.features();
        let classes = net.classes();
        let pooled = gpu.storage_zeroed("pooled", features)?;
        let params = gpu.uniform("pool", &[(x.h * x.w) as u32, features as u32, classes as u32, 0]);
        let src = b.activations[x.buffer].clone();
        b.push("norm + average pool", &pipelines.pool, &[&params, &src, &affine, &pooled], (features.div_ceil(WORKGROUP as usize) as u32, 1));
        let weight = gpu.storage("classifier.weight", &net.classifier_weight)?;
        let bias = gpu.storage("classifier.bias", &net.classifier_bias)?;
        let logits = gpu.storage_zeroed("logits", classes)?;
        let params = gpu.uniform("classifier", &[features as u32, classes as u32, 0, 0]);
        b.push("classifier", &pipelines.classifier, &[&params, &pooled, &weight, &bias, &logits], (classes.div_ceil(WORKGROUP as usize) as u32, 1));

        // Kept aside, run only by `explain`: the class activation map of the last feature map.
        let map_pixels = x.h * x.w;
        let map = gpu.storage_zeroed("class map", map_pixels)?;
        let class_uniform = gpu.uniform("class_map", &[map_pixels as u32, features as u32, classes as u32, 0]);
        let class_map = Dispatch {
            kind: "class map".into(),
            pipeline: pipelines.class_map.clone(),
            bind_group: b.bind(&pipelines.class_map, &[&class_uniform, &src, &affine, &weight, &map]),
            workgroups: (map_pixels.div_ceil(WORKGROUP as usize) as u32, 1),
        };
        Ok(Recorded { input, pooled, logits, dispatches: b.dispatches, taps, class_map, class_uniform, map, map_pixels })
    }

    pub fn image_size(&self) -> usize {
        self.image_size
    }

    /// Floating-point operations of one forward pass.
    pub fn flops(&self) -> f64 {
        self.flops
    }

    pub fn dispatch_count(&self) -> usize {
        self.recorded.dispatches.len()
    }

    pub fn kernels(&self) -> ConvKernels {
        self.kernels
    }

    /// Writes a `[3][size][size]` input as the `[size][size][4]` map the stem reads.
    fn upload(&self, pixels: &[f32]) -> Result<()> {
        let plane = self.image_size * self.image_size;
        if pixels.len() != 3 * plane {
            bail!("input has {} values, expected 3x{s}x{s} = {}", pixels.len(), 3 * plane, s = self.image_size);
        }
        let mut rgb0 = vec![0.0f32; 4 * plane];
        for p in 0..plane {
            for c in 0..3 {
                rgb0[4 * p + c] = pixels[c * plane + p];
            }
        }
        self.gpu.queue.write_buffer(&self.recorded.input, 0, bytemuck::cast_slice(&rgb0));
        Ok(())
    }

    /// Encodes every dispatch; with `taps`, copies the tapped maps out between them.
    fn encode(&self, encoder: &mut wgpu::CommandEncoder, taps: &[(usize, &wgpu::Buffer, &wgpu::Buffer, usize)]) {
        let mut start = 0;
        let mut boundaries: Vec<usize> = taps.iter().map(|t| t.0).collect();
        boundaries.push(self.recorded.dispatches.len());
        for end in boundaries {
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("bit50"), timestamp_writes: None });
                for d in &self.recorded.dispatches[start..end] {
                    pass.set_pipeline(&d.pipeline);
                    pass.set_bind_group(0, &d.bind_group, &[]);
                    pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, 1);
                }
            }
            for (after, src, dst, floats) in taps {
                if *after == end {
                    encoder.copy_buffer_to_buffer(src, 0, dst, 0, (*floats * 4) as u64);
                }
            }
            start = end;
        }
    }

    /// The logits for one `[3][size][size]` input: one submission, one readback.
    pub async fn logits(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        self.upload(pixels)?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &[]);
        encoder.copy_buffer_to_buffer(&self.recorded.logits, 0, &self.logits_readback, 0, (self.classes * 4) as u64);
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.read(&self.logits_readback, self.classes).await
    }

    /// The logits and the pooled features (the 2,048-d embedding), in one submission.
    pub async fn embed(&mut self, pixels: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.upload(pixels)?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &[]);
        encoder.copy_buffer_to_buffer(&self.recorded.logits, 0, &self.logits_readback, 0, (self.classes * 4) as u64);
        encoder.copy_buffer_to_buffer(&self.recorded.pooled, 0, &self.pooled_readback, 0, (self.features * 4) as u64);
        self.gpu.queue.submit([encoder.finish()]);
        let logits = self.gpu.read(&self.logits_readback, self.classes).await?;
        Ok((logits, self.gpu.read(&self.pooled_readback, self.features).await?))
    }

    /// The logits and the class activation map of `class` (`[h][w]` of the last
    /// feature map: 14x14 at 448), in one submission.
    pub async fn explain(&mut self, pixels: &[f32], class: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        if class >= self.classes {
            bail!("class {class} out of range: this model has {} classes", self.classes);
        }
        self.upload(pixels)?;
        let r = &self.recorded;
        let params = [r.map_pixels as u32, self.features as u32, self.classes as u32, class as u32];
        self.gpu.queue.write_buffer(&r.class_uniform, 0, bytemuck::cast_slice(&params));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &[]);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&r.class_map.pipeline);
            pass.set_bind_group(0, &r.class_map.bind_group, &[]);
            pass.dispatch_workgroups(r.class_map.workgroups.0, 1, 1);
        }
        encoder.copy_buffer_to_buffer(&r.logits, 0, &self.logits_readback, 0, (self.classes * 4) as u64);
        encoder.copy_buffer_to_buffer(&r.map, 0, &self.map_readback, 0, (r.map_pixels * 4) as u64);
        self.gpu.queue.submit([encoder.finish()]);
        let logits = self.gpu.read(&self.logits_readback, self.classes).await?;
        Ok((logits, self.gpu.read(&self.map_readback, r.map_pixels).await?))
    }

    /// GPU time per kind of dispatch, from timestamp queries around each one, in
    /// milliseconds, or None where the adapter has no timestamp queries.
    pub async fn profile(&mut self, pixels: &[f32]) -> Result<Option<Vec<(String, f64)>>> {
        if !self.gpu.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok(None);
        }
        self.upload(pixels)?;
        let n = self.recorded.dispatches.len() as u32;
        let queries = self.gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * n });
        let bytes = 2 * n as u64 * 8;
        let resolved = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = self.gpu.readback("timestamps", 4 * n as usize);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        for (i, d) in self.recorded.dispatches.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&d.kind), timestamp_writes: Some(writes) });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, 1);
        }
        encoder.resolve_query_set(&queries, 0..2 * n, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let words = self.gpu.read(&readback, 4 * n as usize).await?;
        let ticks: Vec<u64> = words.chunks_exact(2).map(|w| w[0].to_bits() as u64 | (w[1].to_bits() as u64) << 32).collect();
        let period_ms = self.gpu.queue.get_timestamp_period() as f64 / 1e6;
        let mut by_kind: Vec<(String, f64)> = Vec::new();
        for (d, t) in self.recorded.dispatches.iter().zip(ticks.chunks_exact(2)) {
            let ms = t[1].saturating_sub(t[0]) as f64 * period_ms;
            match by_kind.iter_mut().find(|(k, _)| *k == d.kind) {
                Some(entry) => entry.1 += ms,
                None => by_kind.push((d.kind.clone(), ms)),
            }
        }
        Ok(Some(by_kind))
    }

    /// Like [`Self::logits`], also reading back the stem, each stage and the pooled features.
    /// Allocates readback buffers per call: for tests and debugging, not the hot path.
    pub async fn taps(&mut self, pixels: &[f32]) -> Result<Taps> {
        self.upload(pixels)?;
        let readbacks: Vec<wgpu::Buffer> = self.recorded.taps.iter().map(|t| self.gpu.readback("tap", t.floats)).collect();
        let copies: Vec<_> = self.recorded.taps.iter().zip(&readbacks).map(|(t, r)| (t.after, &t.buffer, r, t.floats)).collect();
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &copies);
        encoder.copy_buffer_to_buffer(&self.recorded.logits, 0, &self.logits_readback, 0, (self.classes * 4) as u64);
        encoder.copy_buffer_to_buffer(&self.recorded.pooled, 0, &self.pooled_readback, 0, (self.features * 4) as u64);
        self.gpu.queue.submit([encoder.finish()]);
        let mut maps = Vec::new();
        for (t, r) in self.recorded.taps.iter().zip(&readbacks) {
            maps.push(self.gpu.read(r, t.floats).await?);
        }
        let stem = maps.remove(0);
        Ok(Taps {
            stem,
            stages: maps,
            pooled: self.gpu.read(&self.pooled_readback, self.features).await?,
            logits: self.gpu.read(&self.logits_readback, self.classes).await?,
        })
    }
}

impl std::fmt::Debug for GpuNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuNetwork({}, {} dispatches)", self.gpu.describe(), self.recorded.dispatches.len())
    }
}

/// The adapter's reachable matrix-multiply throughput with one of this project's convolution
/// kernels: a 1x1 convolution over `side x side` pixels is an (side², k) x (k, n) matrix
/// product. Median GFLOP/s over `runs` timed submissions of `repeats` dispatches each,
/// awaited through a 4-byte readback; `now` is a clock in milliseconds.
pub async fn matmul_gflops(gpu: &Gpu, kernels: ConvKernels, (side, k, n): (usize, usize, usize), repeats: usize, runs: usize, now: impl Fn() -> f64) -> Result<f64> {
    let pipelines = Pipelines::new(&gpu.device, &[(1, false, false)], kernels);
    let floats = side * side * k.max(n);
    let activations = (0..ACTIVATION_BUFFERS).map(|_| gpu.storage_zeroed("matmul", floats)).collect::<Result<Vec<_>>>()?;
    let mut b = Builder { gpu, pipelines: &pipelines, activations, dummy: gpu.storage_zeroed("unused", 4)?, dispatches: vec![] };
    let weight: Vec<f32> = (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let conv = Conv { k: 1, stride: 1, pad: 0, cin: k, cout: n, weight };
    let out = b.conv(Map { buffer: 0, h: side, w: side, c: k }, &conv, None, None, &[], "matmul")?;
    let (d, result) = (&b.dispatches[0], &b.activations[out.buffer]);
    let readback = gpu.readback("matmul readback", 1);
    let mut times = Vec::new();
    for run in 0..=runs {
        let started = now();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            for _ in 0..repeats.max(1) {
                pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, 1);
            }
        }
        encoder.copy_buffer_to_buffer(result, 0, &readback, 0, 4);
        gpu.queue.submit([encoder.finish()]);
        gpu.read(&readback, 1).await?;
        if run > 0 {
            times.push(now() - started); // the first run warms up
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(2.0 * (side * side * k * n * repeats.max(1)) as f64 / times[times.len() / 2].max(1e-3) / 1e6)
}

/// The faster convolution kernel on this adapter, and the GFLOP/s it reached, timed at load on a
/// stage-2-sized product (3136 x 256 x 256). Software adapters (`software`, or a CPU device),
/// and anything under 20 GFLOP/s with the register kernel, keep the register kernel without
/// timing the tiled one: barriers cost 5-20x on emulators. Costs a few milliseconds on a GPU,
/// about 0.3 s on a software one (a smaller product there).
pub async fn fastest_kernels(gpu: &Gpu, software: bool, now: impl Fn() -> f64) -> Result<(ConvKernels, f64)> {
    if software || gpu.adapter.device_type == wgpu::DeviceType::Cpu {
        let gflops = matmul_gflops(gpu, ConvKernels::Registers, (16, 256, 256), 4, 3, &now).await?;
        return Ok((ConvKernels::Registers, gflops));
    }
    let shape = (56, 256, 256);
    let first = matmul_gflops(gpu, ConvKernels::Registers, shape, 1, 2, &now).await?;
    if first < 20.0 {
        return Ok((ConvKernels::Registers, first));
    }
    let registers = matmul_gflops(gpu, ConvKernels::Registers, shape, 8, 3, &now).await?;
    let tiled = matmul_gflops(gpu, ConvKernels::Tiled, shape, 8, 3, &now).await?;
    Ok(if tiled > registers { (ConvKernels::Tiled, tiled) } else { (ConvKernels::Registers, registers) })
}
