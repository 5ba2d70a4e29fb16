//! The WGSL kernels and one host function per kernel: each takes its buffers and shapes,
//! makes its parameters and bind group, and records one dispatch. `graph.rs` strings them
//! into the network; tests/kernels.rs checks each against the CPU reference on its own.
//!
//! Every kernel is compiled for one [`Variant`]: the convolution kernel (register tiles or
//! workgroup-memory tiles), the number format (f32; f16 storage with f32 arithmetic; f16
//! products summed into f32) and whether the reductions use subgroups. The WGSL source is the
//! kernel's file behind a prelude that names the types (`act`, `act4`, `mul4`).

use super::device::{Format, Gpu};
use crate::model::Conv;
use crate::{bail, Result};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Invocations per workgroup for the element-wise kernels (browsers allow 256).
pub const WORKGROUP: u32 = 64;

/// Which convolution kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// conv.wgsl: register tiles, no workgroup memory, no barriers. For CPU devices and
    /// emulators (lavapipe, SwiftShader), where a barrier costs more than it saves.
    Registers,
    /// conv_tiled.wgsl wherever the input channels allow (multiples of 16), conv.wgsl
    /// elsewhere: workgroup-memory tiles, for GPUs.
    Tiled,
}

/// How numbers are stored and multiplied on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights, activations and arithmetic: within 1e-4 of transformers.
    F32,
    /// f16 weights and activations (half the memory and bandwidth), f32 arithmetic and
    /// GroupNorm statistics. Needs `shader-f16`.
    F16,
    /// As F16, and each convolution step's 4 products and their sum in f16, accumulated in f32.
    F16Arithmetic,
}

impl Precision {
    pub fn format(self) -> Format {
        match self {
            Precision::F32 => Format::F32,
            Precision::F16 | Precision::F16Arithmetic => Format::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::F16Arithmetic => "f16-arithmetic",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "f16-arithmetic" => Ok(Precision::F16Arithmetic),
            _ => bail!(BadInput, "precision {s:?}: expected f32, f16 or f16-arithmetic"),
        }
    }
}

impl ConvKernel {
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Registers => "registers",
            ConvKernel::Tiled => "tiled",
        }
    }
}

/// Everything that decides which kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub conv: ConvKernel,
    pub precision: Precision,
    /// GroupNorm statistics, pooling and the classifier reduce with subgroup operations.
    pub subgroups: bool,
}

impl Variant {
    /// "tiled, f16, subgroups".
    pub fn describe(&self) -> String {
        let subgroups = if self.subgroups { ", subgroups" } else { "" };
        format!("{}, {}{subgroups}", self.conv.name(), self.precision.name())
    }
}

/// A convolution pipeline's specialization: kernel size, input norm, residual.
pub type ConvSpec = (usize, bool, bool);

/// The WGSL source of a kernel for `precision`: enable directives, the type aliases, then `parts`.
fn source(precision: Precision, subgroups: bool, parts: &[&str]) -> String {
    let mut s = String::new();
    if precision != Precision::F32 {
        s.push_str("enable f16;\n");
    }
    // Browsers want the directive; wgpu's own WGSL front end (naga 30) refuses it and
    // enables subgroup operations from the device's features instead.
    if subgroups && cfg!(target_arch = "wasm32") {
        s.push_str("enable subgroups;\n");
    }
    s.push_str(match precision {
        Precision::F32 => "alias act = f32;\nalias act4 = vec4<f32>;\nalias mul4 = vec4<f32>;\n",
        Precision::F16 => "alias act = f16;\nalias act4 = vec4<f16>;\nalias mul4 = vec4<f32>;\n",
        Precision::F16Arithmetic => "alias act = f16;\nalias act4 = vec4<f16>;\nalias mul4 = vec4<f16>;\n",
    });
    for part in parts {
        s.push_str(part);
    }
    s
}

const CONV_BINDINGS: &str = include_str!("../../shaders/conv_bindings.wgsl");
const CLASSIFIER_BINDINGS: &str = include_str!("../../shaders/classifier_bindings.wgsl");

/// One compute pipeline: a kernel, specialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// conv.wgsl.
    Conv(ConvSpec),
    /// conv_tiled.wgsl.
    ConvTiled(ConvSpec),
    GnStats,
    MaxPool,
    Pool,
    Classifier,
    ClassMap,
}

/// The kernels every network needs besides its convolutions.
pub const HEAD_KERNELS: [Kernel; 5] = [Kernel::GnStats, Kernel::MaxPool, Kernel::Pool, Kernel::Classifier, Kernel::ClassMap];

impl Kernel {
    /// Its bindings, in order: `u` uniform, `r` read-only storage, `w` read-write storage.
    fn bindings(self) -> &'static str {
        match self {
            Kernel::Conv(_) | Kernel::ConvTiled(_) => "urrrrw",
            Kernel::GnStats | Kernel::Classifier => "urrrw",
            Kernel::MaxPool => "urw",
            Kernel::Pool => "urrw",
            Kernel::ClassMap => "urrrrww",
        }
    }
}

/// A compiled kernel and the layout of its bindings (explicit, so that the browser's pipeline
/// cache recognises the pipelines `compile_in_parallel` made).
#[derive(Clone)]
struct Compiled {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Variant {
    /// The kernel that runs a convolution of kind `spec` on `cin` input channels: the tiled
    /// one where this variant has it and the channels allow (multiples of 16; not the stem).
    pub fn conv_kernel(&self, spec: ConvSpec, cin: usize) -> Kernel {
        let (k, norm, _) = spec;
        if self.conv == ConvKernel::Tiled && (k == 1 || norm) && cin.is_multiple_of(16) {
            Kernel::ConvTiled(spec)
        } else {
            Kernel::Conv(spec)
        }
    }

    /// A kernel's label, WGSL source and pipeline constants for this variant.
    fn describe_kernel(&self, kernel: Kernel, subgroup_size: u32) -> (String, String, Vec<(&'static str, f64)>) {
        let p = self.precision;
        let sg = self.subgroups;
        let size = ("WORKGROUP_SIZE", WORKGROUP as f64);
        let subgroup_size = ("SUBGROUP_SIZE", subgroup_size as f64);
        let conv_constants = |(k, norm, residual): ConvSpec| vec![("KERNEL", k as f64), ("NORM_INPUT", norm as u8 as f64), ("ADD_RESIDUAL", residual as u8 as f64)];
        match kernel {
            Kernel::Conv(spec) => {
                let constants = [vec![size], conv_constants(spec)].concat();
                (format!("conv {0}x{0}", spec.0), source(p, false, &[CONV_BINDINGS, include_str!("../../shaders/conv.wgsl")]), constants)
            }
            Kernel::ConvTiled(spec) => {
                (format!("conv {0}x{0} tiled", spec.0), source(p, false, &[CONV_BINDINGS, include_str!("../../shaders/conv_tiled.wgsl")]), conv_constants(spec))
            }
            Kernel::GnStats => {
                let reduce = if sg { include_str!("../../shaders/reduce_subgroups.wgsl") } else { include_str!("../../shaders/reduce.wgsl") };
                ("gn_stats".into(), source(p, sg, &[include_str!("../../shaders/gn_stats.wgsl"), reduce]), if sg { vec![subgroup_size] } else { vec![] })
            }
            Kernel::MaxPool => ("max_pool".into(), source(p, false, &[include_str!("../../shaders/max_pool.wgsl")]), vec![size]),
            Kernel::Pool if sg => ("pool".into(), source(p, true, &[include_str!("../../shaders/pool_subgroups.wgsl")]), vec![subgroup_size]),
            Kernel::Pool => ("pool".into(), source(p, false, &[include_str!("../../shaders/pool.wgsl")]), vec![size]),
            Kernel::Classifier if sg => ("classifier".into(), source(p, true, &[CLASSIFIER_BINDINGS, include_str!("../../shaders/classifier_subgroups.wgsl")]), vec![subgroup_size]),
            Kernel::Classifier => ("classifier".into(), source(p, false, &[CLASSIFIER_BINDINGS, include_str!("../../shaders/classifier.wgsl")]), vec![size]),
            Kernel::ClassMap => ("class_map".into(), source(p, false, &[include_str!("../../shaders/class_map.wgsl")]), vec![size]),
        }
    }
}

/// The compiled pipelines of one [`Variant`]: only the kernels asked for, each compiled once.
pub struct Kernels {
    pub variant: Variant,
    subgroup_size: u32,
    pipelines: BTreeMap<Kernel, Compiled>,
}

impl Kernels {
    /// Compiles `kernels` for `variant` (in the browser, in parallel: see `compile_in_parallel`).
    /// Refuses a variant the device cannot run (f16 without `shader-f16`, subgroups without
    /// subgroups), so a missing feature is never a shader compilation error.
    pub async fn new(gpu: &Gpu, variant: Variant, kernels: &[Kernel]) -> Result<Self> {
        if variant.precision != Precision::F32 && !gpu.features.f16 {
            bail!(NoGpu, "{}: this adapter has no shader-f16, so the {} kernels cannot run", gpu.describe(), variant.precision.name());
        }
        if variant.subgroups && !gpu.features.subgroups {
            bail!(NoGpu, "{}: this adapter has no usable subgroups", gpu.describe());
        }
        let mut wanted: Vec<Kernel> = kernels.to_vec();
        wanted.sort();
        wanted.dedup();
        let described: Vec<_> = wanted.iter().map(|&k| (k, variant.describe_kernel(k, gpu.subgroup_size))).collect();
        #[cfg(target_arch = "wasm32")]
        let _compiled = compile_in_parallel(&gpu.device, &described).await;
        let mut modules: BTreeMap<&str, wgpu::ShaderModule> = BTreeMap::new();
        let mut pipelines = BTreeMap::new();
        for (kernel, (label, code, constants)) in &described {
            let module = modules.entry(code.as_str()).or_insert_with(|| {
                gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(code)) })
            });
            let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
                .bindings()
                .chars()
                .enumerate()
                .map(|(i, kind)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match kind {
                            'u' => wgpu::BufferBindingType::Uniform,
                            read => wgpu::BufferBindingType::Storage { read_only: read == 'r' },
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries: &entries });
            let pipeline_layout = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: None,
            });
            pipelines.insert(*kernel, Compiled { pipeline, layout });
        }
        Ok(Kernels { variant, subgroup_size: gpu.subgroup_size, pipelines })
    }

    pub fn format(&self) -> Format {
        self.variant.precision.format()
    }

    fn pipeline(&self, kernel: Kernel) -> Result<Compiled> {
        match self.pipelines.get(&kernel) {
            Some(p) => Ok(p.clone()),
            None => bail!("no pipeline was compiled for {kernel:?} ({})", self.variant.describe()),
        }
    }
}

/// In the browser, wgpu 30 creates pipelines with the synchronous `createComputePipeline`,
/// which compiles them one after the other. So the same pipelines are first created with
/// `createComputePipelineAsync`, all at once, through the raw `GPUDevice`: the browser compiles
/// them in parallel, and wgpu's requests, identical (explicit layouts included: Chromium does
/// not share pipelines with `layout: 'auto'`), then find them compiled (measured on
/// SwiftShader: 1 ms instead of 0.8-1 s for 12 convolution pipelines). The returned pipelines
/// are kept alive until wgpu's exist. Any failure here only costs the speed-up.
#[cfg(target_arch = "wasm32")]
async fn compile_in_parallel(device: &wgpu::Device, described: &[(Kernel, (String, String, Vec<(&'static str, f64)>))]) -> Vec<wasm_bindgen::JsValue> {
    use js_sys::{Object, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let Some(raw) = device.as_webgpu() else { return Vec::new() };
    let raw: JsValue = raw.clone().into();
    let call = |target: &JsValue, method: &str, arg: &JsValue| -> Option<JsValue> {
        let f: js_sys::Function = Reflect::get(target, &method.into()).ok()?.dyn_into().ok()?;
        f.call1(target, arg).ok()
    };
    let set = |o: &Object, k: &str, v: &JsValue| {
        let _ = Reflect::set(o, &k.into(), v);
    };
    let promises = js_sys::Array::new();
    let mut modules: BTreeMap<&str, JsValue> = BTreeMap::new();
    for (kernel, (label, code, constants)) in described {
        let module = match modules.get(code.as_str()) {
            Some(m) => m.clone(),
            None => {
                let descriptor = Object::new();
                set(&descriptor, "code", &code.as_str().into());
                set(&descriptor, "label", &label.as_str().into());
                let Some(m) = call(&raw, "createShaderModule", &descriptor) else { return Vec::new() };
                modules.insert(code, m.clone());
                m
            }
        };
        let compute = Object::new();
        set(&compute, "module", &module);
        set(&compute, "entryPoint", &"main".into());
        let values = Object::new();
        for (name, value) in constants {
            set(&values, name, &JsValue::from_f64(*value));
        }
        set(&compute, "constants", &values);
        let entries = js_sys::Array::new();
        for (i, kind) in kernel.bindings().chars().enumerate() {
            let (entry, buffer) = (Object::new(), Object::new());
            set(&buffer, "type", &(match kind {
                'u' => "uniform",
                'r' => "read-only-storage",
                _ => "storage",
            })
            .into());
            set(&entry, "binding", &JsValue::from_f64(i as f64));
            set(&entry, "visibility", &JsValue::from_f64(4.0)); // GPUShaderStage.COMPUTE
            set(&entry, "buffer", &buffer);
            entries.push(&entry);
        }
        let group = Object::new();
        set(&group, "entries", &entries);
        let Some(group_layout) = call(&raw, "createBindGroupLayout", &group) else { return Vec::new() };
        let layout = Object::new();
        set(&layout, "bindGroupLayouts", &js_sys::Array::of1(&group_layout));
        let Some(layout) = call(&raw, "createPipelineLayout", &layout) else { return Vec::new() };
        let descriptor = Object::new();
        set(&descriptor, "layout", &layout);
        set(&descriptor, "compute", &compute);
        set(&descriptor, "label", &label.as_str().into());
        if let Some(p) = call(&raw, "createComputePipelineAsync", &descriptor) {
            promises.push(&p);
        }
    }
    match wasm_bindgen_futures::JsFuture::from(Promise::all_settled(&promises)).await {
        Ok(settled) => js_sys::Array::from(&settled).iter().filter_map(|r| Reflect::get(&r, &"value".into()).ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// One recorded dispatch: the dispatch grid's z is the number of images, set when it runs.
pub struct Dispatch {
    /// What kind of work it is, for per-layer timings ("conv 3x3", "group norm statistics", ...).
    pub kind: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: (u32, u32),
}

impl Dispatch {
    /// Records the dispatch into `pass` for `images` images.
    pub fn encode(&self, pass: &mut wgpu::ComputePass, images: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups.0, self.workgroups.1, images);
    }
}

/// The shape of an activation map (per image; `[h][w][c]`, c a multiple of 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn elements(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// Channels of an activation map as the GPU stores it: the convolution kernels write 8 output
/// channels per invocation, so a width that is not a multiple of 8 (only a stem's
/// embedding_size can be: transformers rounds every stage's widths to multiples of 8) gets
/// zero channels up to the next one. Their weights are zero, so they stay zero, and GroupNorm
/// statistics and consumers never read them.
pub fn stored_channels(channels: usize) -> usize {
    channels.next_multiple_of(8)
}

/// A convolution's weights on the GPU and its geometry.
pub struct ConvWeights {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    /// Input channels as stored (3 becomes 4: the stem reads RGB as RGB0; see [`stored_channels`]).
    pub cin: usize,
    /// Output channels as stored ([`stored_channels`]).
    pub cout: usize,
    /// Input and output channels of the weights as given.
    given_cin: usize,
    given_cout: usize,
    format: Format,
    buffer: wgpu::Buffer,
}

impl ConvWeights {
    /// A zeroed buffer for `conv`'s weights (in `format`) reading maps of `cin` stored channels,
    /// filled by [`Self::write`].
    pub fn new(gpu: &Gpu, conv: &Conv, cin: usize, format: Format, label: &str) -> Result<Self> {
        if cin < conv.cin || !cin.is_multiple_of(4) {
            bail!(BadModel, "{label}: {} input channels cannot be read from maps of {cin} channels", conv.cin);
        }
        let cout = stored_channels(conv.cout);
        let buffer = gpu.zeroed(label, conv.k * conv.k * cin * cout, format)?;
        Ok(ConvWeights { k: conv.k, stride: conv.stride, pad: conv.pad, cin, cout, given_cin: conv.cin, given_cout: conv.cout, format, buffer })
    }

    /// Values the weights take: `[k][k][cin][cout]` as given.
    pub fn len(&self) -> usize {
        self.k * self.k * self.given_cin * self.given_cout
    }

    /// Uploads `[k][k][cin][cout]` weights, with zeros for the stored channels beyond the given ones.
    pub fn write(&self, gpu: &Gpu, weight: &[f32]) {
        assert_eq!(weight.len(), self.len(), "checked by the caller");
        if (self.cin, self.cout) == (self.given_cin, self.given_cout) {
            return gpu.queue.write_buffer(&self.buffer, 0, &self.format.encode(weight));
        }
        let mut padded = vec![0.0f32; self.k * self.k * self.cin * self.cout];
        for (row, from) in weight.chunks_exact(self.given_cout).enumerate() {
            let (tap, ci) = (row / self.given_cin, row % self.given_cin);
            padded[(tap * self.cin + ci) * self.cout..][..self.given_cout].copy_from_slice(from);
        }
        gpu.queue.write_buffer(&self.buffer, 0, &self.format.encode(&padded));
    }

    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Another handle on the same buffer (wgpu buffers are reference counted).
    pub fn view(&self) -> ConvWeights {
        ConvWeights { buffer: self.buffer.clone(), ..*self }
    }
}

/// Uploads a convolution's weights (see [`ConvWeights`]).
pub fn upload_conv(gpu: &Gpu, conv: &Conv, format: Format, label: &str) -> Result<ConvWeights> {
    let weights = ConvWeights::new(gpu, conv, conv.cin.next_multiple_of(4), format, label)?;
    if conv.weight.len() != weights.len() {
        bail!(BadModel, "{label}: {} weights, expected {}", conv.weight.len(), weights.len());
    }
    weights.write(gpu, &conv.weight);
    Ok(weights)
}

/// Splits `threads` invocations into a 2-D grid of workgroups within the 65,535 limit:
/// (x, y, invocations per row).
fn grid(threads: usize, workgroup: u32) -> (u32, u32, u32) {
    let groups = threads.div_ceil(workgroup as usize).max(1);
    let x = groups.min(65_535);
    let y = groups.div_ceil(x);
    (x as u32, y as u32, x as u32 * workgroup)
}

/// Collects dispatches: each host function below appends one.
pub struct Recording<'a> {
    pub gpu: &'a Gpu,
    pub kernels: &'a Kernels,
    pub dispatches: Vec<Dispatch>,
}

impl<'a> Recording<'a> {
    pub fn new(gpu: &'a Gpu, kernels: &'a Kernels) -> Self {
        Recording { gpu, kernels, dispatches: Vec::new() }
    }

    fn dispatch(&self, kind: &str, compiled: &Compiled, buffers: &[&wgpu::Buffer], workgroups: (u32, u32)) -> Dispatch {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &compiled.layout, entries: &entries });
        Dispatch { kind: kind.into(), pipeline: compiled.pipeline.clone(), bind_group, workgroups }
    }

    fn push(&mut self, kind: &str, pipeline: &Compiled, buffers: &[&wgpu::Buffer], workgroups: (u32, u32)) {
        let d = self.dispatch(kind, pipeline, buffers, workgroups);
        self.dispatches.push(d);
    }

    /// conv.wgsl / conv_tiled.wgsl: `out = conv(relu(x * scale + shift)) + residual`, the norm
    /// where `affine` (from [`Self::gn_stats`]) is given, the residual where `residual` is.
    /// Returns the output's shape.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(&mut self, src: &wgpu::Buffer, x: Shape, w: &ConvWeights, affine: Option<&wgpu::Buffer>, residual: Option<&wgpu::Buffer>, dst: &wgpu::Buffer, dummy: &wgpu::Buffer, label: &str) -> Result<Shape> {
        if x.c != w.cin {
            bail!(BadModel, "{label}: input has {} channels, the convolution expects {}", x.c, w.cin);
        }
        let (oh, ow) = (w.out_size(x.h), w.out_size(x.w));
        let pixel_groups = (oh * ow).div_ceil(4);
        let (gx, gy, threads_x) = grid(pixel_groups * w.cout / 8, WORKGROUP);
        let params = self.gpu.uniform(
            label,
            &[
                x.h as u32,
                x.w as u32,
                (w.cin / 4) as u32,
                (w.cout / 4) as u32,
                oh as u32,
                ow as u32,
                w.k as u32,
                w.stride as u32,
                w.pad as u32,
                pixel_groups as u32,
                threads_x,
                0,
            ],
        );
        let spec = (w.k, affine.is_some(), residual.is_some());
        let kernel = self.kernels.variant.conv_kernel(spec, w.cin);
        let pipeline = self.kernels.pipeline(kernel)?;
        let workgroups = match kernel {
            Kernel::ConvTiled(_) => ((w.cout / 4).div_ceil(16) as u32, (oh * ow).div_ceil(32) as u32),
            _ => (gx, gy),
        };
        if workgroups.1 > 65_535 {
            bail!(BadInput, "{label}: {} output pixels are more than one dispatch can tile", oh * ow);
        }
        let kind = format!("conv {k}x{k}{}", if residual.is_some() { " + residual" } else { "" }, k = w.k);
        self.push(&kind, &pipeline, &[&params, src, &w.buffer, affine.unwrap_or(dummy), residual.unwrap_or(dummy), dst], workgroups);
        Ok(Shape { h: oh, w: ow, c: w.cout })
    }

    /// gn_stats.wgsl: GroupNorm statistics of the first `channels` channels of `x` in `groups`
    /// groups, folded with `gamma` and `beta` into a per-channel scale and shift per image
    /// (`affine`, 2 x `x.c` floats per image; those of the channels past `channels` are not written).
    #[allow(clippy::too_many_arguments)]
    pub fn gn_stats(&mut self, src: &wgpu::Buffer, x: Shape, channels: usize, groups: usize, gamma: &wgpu::Buffer, beta: &wgpu::Buffer, affine: &wgpu::Buffer, label: &str) -> Result<()> {
        if channels > x.c || groups == 0 || !channels.is_multiple_of(groups) {
            bail!(BadModel, "{label}: {channels} channels of {} do not split into {groups} groups", x.c);
        }
        let eps = (crate::layers::GN_EPS as f32).to_bits();
        let params = self.gpu.uniform(label, &[(x.h * x.w) as u32, x.c as u32, (channels / groups) as u32, 0, eps, 0, 0, 0]);
        let pipeline = self.kernels.pipeline(Kernel::GnStats)?;
        self.push("group norm statistics", &pipeline, &[&params, src, gamma, beta, affine], (groups as u32, 1));
        Ok(())
    }

    /// max_pool.wgsl: the stem's zero padding and 3x3 / 2 max pool. Returns the output's shape.
    pub fn max_pool(&mut self, src: &wgpu::Buffer, x: Shape, dst: &wgpu::Buffer) -> Result<Shape> {
        let out = Shape { h: (x.h - 1) / 2 + 1, w: (x.w - 1) / 2 + 1, c: x.c };
        let total = out.elements() / 4;
        let (gx, gy, threads_x) = grid(total, WORKGROUP);
        let params = self.gpu.uniform("max_pool", &[x.h as u32, x.w as u32, (x.c / 4) as u32, out.w as u32, total as u32, threads_x, 0, 0]);
        let pipeline = self.kernels.pipeline(Kernel::MaxPool)?;
        self.push("max pool", &pipeline, &[&params, src, dst], (gx, gy));
        Ok(out)
    }

    /// Lanes per subgroup, and subgroups per workgroup of the subgroup kernels.
    fn subgroups_per_workgroup(&self) -> usize {
        (WORKGROUP / self.kernels.subgroup_size.max(1)) as usize
    }

    /// pool.wgsl / pool_subgroups.wgsl: the final norm + ReLU, then the average over pixels.
    pub fn pool(&mut self, src: &wgpu::Buffer, x: Shape, affine: &wgpu::Buffer, pooled: &wgpu::Buffer) -> Result<()> {
        let params = self.gpu.uniform("pool", &[(x.h * x.w) as u32, x.c as u32, 0, 0]);
        let groups = match self.kernels.variant.subgroups {
            true => (x.c / 4).div_ceil(self.subgroups_per_workgroup()),
            false => x.c.div_ceil(WORKGROUP as usize),
        };
        let pipeline = self.kernels.pipeline(Kernel::Pool)?;
        self.push("norm + average pool", &pipeline, &[&params, src, affine, pooled], (groups as u32, 1));
        Ok(())
    }

    /// classifier.wgsl / classifier_subgroups.wgsl: `logits = weight @ pooled + bias`, the
    /// weight `[classes][features]` in the kernels' format.
    #[allow(clippy::too_many_arguments)]
    pub fn classifier(&mut self, pooled: &wgpu::Buffer, features: usize, weight: &wgpu::Buffer, bias: &wgpu::Buffer, classes: usize, logits: &wgpu::Buffer) -> Result<()> {
        let params = self.gpu.uniform("classifier", &[features as u32, classes as u32, 0, 0]);
        let groups = match self.kernels.variant.subgroups {
            true => classes.div_ceil(self.subgroups_per_workgroup()),
            false => classes.div_ceil(WORKGROUP as usize),
        };
        let pipeline = self.kernels.pipeline(Kernel::Classifier)?;
        self.push("classifier", &pipeline, &[&params, pooled, weight, bias, logits], (groups as u32, 1));
        Ok(())
    }

    /// class_map.wgsl: the class activation map of each image's requested class (see the
    /// shader). Not appended: returned, for the runs that ask for it.
    #[allow(clippy::too_many_arguments)]
    pub fn class_map(&self, src: &wgpu::Buffer, x: Shape, affine: &wgpu::Buffer, weight: &wgpu::Buffer, logits: &wgpu::Buffer, classes: usize, capacity: usize, chosen: &wgpu::Buffer, map: &wgpu::Buffer) -> Result<Dispatch> {
        let pixels = x.h * x.w;
        let params = self.gpu.uniform("class_map", &[pixels as u32, x.c as u32, classes as u32, capacity as u32]);
        let pipeline = self.kernels.pipeline(Kernel::ClassMap)?;
        Ok(self.dispatch("class map", &pipeline, &[&params, src, affine, weight, logits, chosen, map], (pixels.div_ceil(WORKGROUP as usize) as u32, 1)))
    }
}

/// Runs `dispatches` for `images` images in one submission (for tests and timing).
pub fn submit(gpu: &Gpu, dispatches: &[Dispatch], images: u32, then: impl FnOnce(&mut wgpu::CommandEncoder)) {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in dispatches {
            d.encode(&mut pass, images);
        }
    }
    then(&mut encoder);
    gpu.queue.submit([encoder.finish()]);
}

/// The device's subgroup size, if its subgroups are what the subgroup kernels assume: one
/// power-of-two size from 4 to 64, and subgroups that are contiguous, aligned runs of
/// local_invocation_index. None otherwise (the plain kernels then run).
pub(super) async fn subgroup_layout(gpu: &Gpu) -> Result<Option<u32>> {
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("subgroup_layout.wgsl"),
        source: wgpu::ShaderSource::Wgsl(Cow::Owned(source(Precision::F32, true, &[include_str!("../../shaders/subgroup_layout.wgsl")]))),
    });
    let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("subgroup_layout"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    if scope.pop().await.is_some() {
        return Ok(None);
    }
    let out = gpu.zeroed("subgroup layout", 256 * 4, Format::F32)?;
    let readback = gpu.readback("subgroup layout", 256 * 16);
    let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry { binding: 0, resource: out.as_entire_binding() }],
    });
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&out, 0, &readback, 0, 256 * 16);
    gpu.queue.submit([encoder.finish()]);
    let words: Vec<u32> = gpu.read(&[(&readback, 256 * 4, Format::F32)]).await?.remove(0).into_iter().map(f32::to_bits).collect();
    let size = words[0];
    let sound = size.is_power_of_two()
        && (4..=64).contains(&size)
        && words.chunks_exact(4).enumerate().all(|(t, w)| {
            let t = t as u32;
            w[0] == size && w[1] == t % size && w[2] == t - t % size
        });
    Ok(sound.then_some(size))
}
