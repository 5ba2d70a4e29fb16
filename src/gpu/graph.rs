//! BiT on the GPU as a recorded graph. At load every weight is uploaded, every kernel
//! compiled and every dispatch recorded once, over a few reused activation buffers that hold
//! `capacity` images each. Running a batch writes the inputs, encodes the list into one
//! command buffer (the dispatches' z is the number of images), submits once and reads back
//! what was asked for. Each image's numbers are the same whatever batch it runs in.

use super::device::{Format, Gpu};
use super::kernels::{stored_channels, ConvWeights, Dispatch, Kernel, Kernels, Recording, Shape, Variant, HEAD_KERNELS};
use crate::model::{Conv, GroupNorm, Network};
use std::collections::BTreeMap;
use crate::{bail, Result};

/// Activation buffers in rotation: a block needs its input, two inner maps and the shortcut.
const ACTIVATION_BUFFERS: usize = 4;

/// What a run reads back besides the logits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Want {
    /// The pooled features (the embedding).
    pub pooled: bool,
    /// The class activation map of this class, or of the most probable class (`Some(None)`).
    pub class_map: Option<Option<usize>>,
    /// The stem's and each stage's output map (tests).
    pub taps: bool,
}

/// What one image gave.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub logits: Vec<f32>,
    pub pooled: Option<Vec<f32>>,
    /// (class, `[h][w]` map of the last feature map: 14x14 at 448).
    pub class_map: Option<(usize, Vec<f32>)>,
    /// The stem's output, then each stage's, `[h][w][c]`.
    pub taps: Option<Vec<Vec<f32>>>,
}

/// An activation map that can be copied out for inspection after a given dispatch.
struct TapPoint {
    after: usize,
    buffer: wgpu::Buffer,
    elements: usize,
    /// Its channels, and those stored (more where zero channels pad it: `stored_channels`).
    channels: usize,
    stored: usize,
}

pub struct GpuNetwork {
    pub gpu: Gpu,
    graph: Graph,
}

/// Everything recorded at load: the kernels, the buffers and the dispatch list.
struct Graph {
    kernels: Kernels,
    capacity: usize,
    image_size: usize,
    classes: usize,
    features: usize,
    flops: f64,
    input: wgpu::Buffer,
    pooled: wgpu::Buffer,
    logits: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
    taps: Vec<TapPoint>,
    /// Run only when a map is asked for: the class activation map of the last feature map.
    class_map: Dispatch,
    chosen: wgpu::Buffer,
    map: wgpu::Buffer,
    map_pixels: usize,
    logits_readback: wgpu::Buffer,
    pooled_readback: wgpu::Buffer,
    map_readback: wgpu::Buffer,
    weights: Weights,
}

/// An activation buffer in use, the shape it holds and how many of its channels are the network's.
#[derive(Clone, Copy)]
struct Map {
    buffer: usize,
    shape: Shape,
    channels: usize,
}

/// The buffers in rotation while the network is recorded.
struct Activations {
    buffers: Vec<wgpu::Buffer>,
}

impl Activations {
    /// A buffer holding none of `busy`.
    fn free(&self, busy: &[Map]) -> usize {
        (0..ACTIVATION_BUFFERS).find(|i| busy.iter().all(|m| m.buffer != *i)).expect("enough activation buffers")
    }
}

impl GpuNetwork {
    /// Uploads the network, compiles `variant`'s kernels and records the dispatches for batches
    /// of up to `capacity` images (fewer where the adapter's largest storage binding cannot hold
    /// them: [`Self::capacity`]). GPU errors during load are caught and returned.
    pub async fn new(gpu: Gpu, net: &Network, variant: Variant, capacity: usize) -> Result<Self> {
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let built = Self::build(&gpu, net, variant, capacity.max(1)).await;
        let oom = oom.pop().await;
        let invalid = scope.pop().await;
        if let Some(e) = oom.or(invalid) {
            let one_line = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            bail!(NoGpu, "cannot set up the network on {}: {one_line}", gpu.describe());
        }
        Ok(GpuNetwork { graph: built?, gpu })
    }

    /// The largest map of one image: the stem's output, or a block's inner or output map.
    fn largest_map(net: &Network) -> usize {
        let stem_size = net.stem.out_size(net.image_size);
        let mut largest = stem_size * stem_size * stored_channels(net.stem.cout);
        let mut s = (stem_size - 1) / 2 + 1;
        for block in net.stages.iter().flatten() {
            largest = largest.max(s * s * stored_channels(block.conv1.cout));
            s = block.conv2.out_size(s);
            largest = largest.max(s * s * stored_channels(block.conv3.cout));
        }
        largest.max(net.image_size * net.image_size * 4)
    }

    /// The pipelines `net` needs under `variant`.
    fn kernels_for(net: &Network, variant: Variant) -> Vec<Kernel> {
        let mut kernels = HEAD_KERNELS.to_vec();
        kernels.push(variant.conv_kernel((net.stem.k, false, false), 4));
        for block in net.stages.iter().flatten() {
            let convs = block.downsample.iter().map(|d| (d, false)).chain([(&block.conv1, false), (&block.conv2, false), (&block.conv3, true)]);
            for (conv, residual) in convs {
                kernels.push(variant.conv_kernel((conv.k, true, residual), stored_channels(conv.cin)));
            }
        }
        kernels
    }

    async fn build(gpu: &Gpu, net: &Network, variant: Variant, capacity: usize) -> Result<Graph> {
        let kernels = Kernels::new(gpu, variant, &Self::kernels_for(net, variant)).await?;
        let format = kernels.format();
        let largest = Self::largest_map(net);
        // As many images as one storage binding holds, up to what was asked for.
        let fits = (gpu.max_binding() / (largest as u64 * format.bytes())) as usize;
        if fits == 0 {
            bail!(NoGpu, "{}: one image's activations ({} bytes) exceed the largest storage binding", gpu.describe(), largest as u64 * format.bytes());
        }
        let capacity = capacity.min(fits);
        let size = net.image_size;
        let activations = Activations {
            buffers: (0..ACTIVATION_BUFFERS).map(|i| gpu.zeroed(&format!("activation {i}"), capacity * largest, format)).collect::<Result<_>>()?,
        };
        let input = gpu.zeroed("input", capacity * size * size * 4, format)?;
        let dummy = gpu.zeroed("unused", 4, Format::F32)?;
        let mut weights = Weights::default();
        let mut rec = Recording::new(gpu, &kernels);
        let mut taps = Vec::new();
        let tap = |rec: &Recording, x: Map, taps: &mut Vec<TapPoint>| {
            taps.push(TapPoint { after: rec.dispatches.len(), buffer: activations.buffers[x.buffer].clone(), elements: x.shape.elements(), channels: x.channels, stored: x.shape.c })
        };
        let buffer = |m: Map| &activations.buffers[m.buffer];
        // GroupNorm statistics into a fresh per-image affine buffer.
        let norm = |rec: &mut Recording, weights: &mut Weights, x: Map, gn: &GroupNorm, name: &str| -> Result<wgpu::Buffer> {
            let gamma = weights.plain(gpu, &format!("{name}.weight"), &gn.weight, x.channels)?;
            let beta = weights.plain(gpu, &format!("{name}.bias"), &gn.bias, x.channels)?;
            let affine = gpu.zeroed(&format!("{name}.affine"), capacity * 2 * x.shape.c, Format::F32)?;
            rec.gn_stats(buffer(x), x.shape, x.channels, net.groups, &gamma, &beta, &affine, name)?;
            Ok(affine)
        };

        // Stem: 7x7 / 2 from the input (outside the rotation), then the padded max pool.
        let stem_weights = weights.conv(gpu, "bit.embedder.convolution.weight", &net.stem, 4, format)?;
        let rgb0 = Shape { h: size, w: size, c: 4 };
        let stem_shape = rec.conv(&input, rgb0, &stem_weights, None, None, &activations.buffers[0], &dummy, "stem")?;
        let pooled_shape = rec.max_pool(&activations.buffers[0], stem_shape, &activations.buffers[1])?;
        let mut x = Map { buffer: 1, shape: pooled_shape, channels: net.stem.cout };
        tap(&rec, x, &mut taps);

        for (i, stage) in net.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                let name = format!("bit.encoder.stages.{i}.layers.{j}");
                let pre = norm(&mut rec, &mut weights, x, &block.norm1, &format!("{name}.norm1"))?;
                let shortcut = match &block.downsample {
                    Some(proj) => {
                        let label = format!("{name}.downsample.conv");
                        let w = weights.conv(gpu, &format!("{label}.weight"), proj, x.shape.c, format)?;
                        let out = activations.free(&[x]);
                        let shape = rec.conv(buffer(x), x.shape, &w, Some(&pre), None, &activations.buffers[out], &dummy, &label)?;
                        Map { buffer: out, shape, channels: proj.cout }
                    }
                    None => x,
                };
                let w1 = weights.conv(gpu, &format!("{name}.conv1.weight"), &block.conv1, x.shape.c, format)?;
                let b1 = activations.free(&[x, shortcut]);
                let h1 = Map { buffer: b1, shape: rec.conv(buffer(x), x.shape, &w1, Some(&pre), None, &activations.buffers[b1], &dummy, &format!("{name}.conv1"))?, channels: block.conv1.cout };
                let n2 = norm(&mut rec, &mut weights, h1, &block.norm2, &format!("{name}.norm2"))?;
                let w2 = weights.conv(gpu, &format!("{name}.conv2.weight"), &block.conv2, h1.shape.c, format)?;
                let b2 = activations.free(&[h1, shortcut]);
                let h2 = Map { buffer: b2, shape: rec.conv(buffer(h1), h1.shape, &w2, Some(&n2), None, &activations.buffers[b2], &dummy, &format!("{name}.conv2"))?, channels: block.conv2.cout };
                let n3 = norm(&mut rec, &mut weights, h2, &block.norm3, &format!("{name}.norm3"))?;
                let w3 = weights.conv(gpu, &format!("{name}.conv3.weight"), &block.conv3, h2.shape.c, format)?;
                let b3 = activations.free(&[h2, shortcut]);
                let shape = rec.conv(buffer(h2), h2.shape, &w3, Some(&n3), Some(buffer(shortcut)), &activations.buffers[b3], &dummy, &format!("{name}.conv3"))?;
                x = Map { buffer: b3, shape, channels: block.conv3.cout };
            }
            tap(&rec, x, &mut taps);
        }

        // Head: the final GroupNorm + ReLU folded into average pooling, then the classifier.
        let affine = norm(&mut rec, &mut weights, x, &net.norm, "bit.norm")?;
        let (features, classes) = (net.features(), net.classes());
        let pooled = gpu.zeroed("pooled", capacity * features, Format::F32)?;
        rec.pool(buffer(x), x.shape, &affine, &pooled)?;
        let weight = weights.classifier(gpu, &net.classifier_weight, features, classes, format)?;
        let bias = weights.plain(gpu, "classifier.1.bias", &net.classifier_bias, classes)?;
        let logits = gpu.zeroed("logits", capacity * classes, Format::F32)?;
        rec.classifier(&pooled, features, &weight, &bias, classes, &logits)?;

        let map_pixels = x.shape.h * x.shape.w;
        let map = gpu.zeroed("class map", capacity * map_pixels, Format::F32)?;
        let chosen = gpu.zeroed("class map classes", 2 * capacity, Format::F32)?;
        let class_map = rec.class_map(buffer(x), x.shape, &affine, &weight, &logits, classes, capacity, &chosen, &map)?;
        let dispatches = rec.dispatches;
        Ok(Graph {
            capacity,
            image_size: size,
            classes,
            features,
            flops: net.flops(),
            input,
            pooled,
            logits,
            dispatches,
            taps,
            class_map,
            chosen,
            map,
            map_pixels,
            logits_readback: gpu.readback("logits readback", (capacity * classes * 4) as u64),
            pooled_readback: gpu.readback("pooled readback", (capacity * features * 4) as u64),
            map_readback: gpu.readback("class map readback", (capacity * (map_pixels + 2) * 4) as u64),
            kernels,
            weights,
        })
    }

    /// Uploads one parameter (by transformers' name, in kernel layout), for a network made
    /// from [`Network::skeleton`] whose weights arrive one shard at a time.
    pub fn upload(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.graph.weights.fill(&self.gpu, name, data)
    }

    /// The parameters not uploaded yet.
    pub fn missing(&self) -> Vec<&str> {
        self.graph.weights.slots.iter().filter(|(_, (_, filled))| !filled).map(|(n, _)| n.as_str()).collect()
    }
}

/// Where one parameter lives on the GPU, and how it gets there.
enum Slot {
    Conv(ConvWeights),
    /// f32, as given (norms, the classifier bias): its length.
    Plain(wgpu::Buffer, usize),
    /// The classifier weight: given `[features][classes]`, stored `[classes][features]` in the
    /// kernels' format (a class's weights contiguous, as transformers keeps them).
    Classifier { buffer: wgpu::Buffer, features: usize, classes: usize, format: Format },
}

/// Every parameter's buffer by name, and whether it holds its weights yet.
#[derive(Default)]
struct Weights {
    slots: BTreeMap<String, (Slot, bool)>,
}

impl Weights {
    /// Registers `slot` and, where `data` is not empty (a full network), fills it.
    fn add(&mut self, gpu: &Gpu, name: &str, slot: Slot, data: &[f32]) -> Result<()> {
        self.slots.insert(name.to_string(), (slot, false));
        if !data.is_empty() {
            self.fill(gpu, name, data)?;
        }
        Ok(())
    }

    /// A convolution reading maps of `cin` stored channels.
    fn conv(&mut self, gpu: &Gpu, name: &str, conv: &Conv, cin: usize, format: Format) -> Result<ConvWeights> {
        let w = ConvWeights::new(gpu, conv, cin, format, name)?;
        let view = w.view();
        self.add(gpu, name, Slot::Conv(w), &conv.weight)?;
        Ok(view)
    }

    fn plain(&mut self, gpu: &Gpu, name: &str, data: &[f32], len: usize) -> Result<wgpu::Buffer> {
        let buffer = gpu.zeroed(name, len, Format::F32)?;
        self.add(gpu, name, Slot::Plain(buffer.clone(), len), data)?;
        Ok(buffer)
    }

    fn classifier(&mut self, gpu: &Gpu, data: &[f32], features: usize, classes: usize, format: Format) -> Result<wgpu::Buffer> {
        let buffer = gpu.zeroed("classifier.1.weight", features * classes, format)?;
        self.add(gpu, "classifier.1.weight", Slot::Classifier { buffer: buffer.clone(), features, classes, format }, data)?;
        Ok(buffer)
    }

    fn fill(&mut self, gpu: &Gpu, name: &str, data: &[f32]) -> Result<()> {
        let Some((slot, filled)) = self.slots.get_mut(name) else {
            bail!(BadModel, "tensor {name} is not a parameter of this network");
        };
        let expected = match slot {
            Slot::Conv(w) => w.len(),
            Slot::Plain(_, len) => *len,
            Slot::Classifier { features, classes, .. } => *features * *classes,
        };
        if data.len() != expected {
            bail!(BadModel, "tensor {name} has {} values, expected {expected}", data.len());
        }
        match slot {
            Slot::Conv(w) => w.write(gpu, data),
            Slot::Plain(buffer, _) => gpu.queue.write_buffer(buffer, 0, bytemuck::cast_slice(data)),
            Slot::Classifier { buffer, features, classes, format } => {
                let (features, classes) = (*features, *classes);
                let mut rows = vec![0.0f32; classes * features];
                for (f, row) in data.chunks_exact(classes).enumerate() {
                    for (o, &w) in row.iter().enumerate() {
                        rows[o * features + f] = w;
                    }
                }
                gpu.queue.write_buffer(buffer, 0, &format.encode(&rows));
            }
        }
        *filled = true;
        Ok(())
    }
}

impl TapPoint {
    /// One image's map without the zero channels that pad it.
    fn unpad(&self, map: &[f32]) -> Vec<f32> {
        map.chunks_exact(self.stored).flat_map(|pixel| &pixel[..self.channels]).copied().collect()
    }
}

impl GpuNetwork {
    /// Images one submission holds.
    pub fn capacity(&self) -> usize {
        self.graph.capacity
    }

    pub fn image_size(&self) -> usize {
        self.graph.image_size
    }

    /// Floating-point operations of one image's forward pass.
    pub fn flops(&self) -> f64 {
        self.graph.flops
    }

    pub fn dispatch_count(&self) -> usize {
        self.graph.dispatches.len()
    }

    pub fn variant(&self) -> Variant {
        self.graph.kernels.variant
    }

    /// Writes `[3][size][size]` inputs as the `[size][size][4]` maps the stem reads.
    fn write_inputs(&self, images: &[&[f32]]) -> Result<()> {
        let g = &self.graph;
        let plane = g.image_size * g.image_size;
        let mut rgb0 = vec![0.0f32; images.len() * 4 * plane];
        for (pixels, out) in images.iter().zip(rgb0.chunks_exact_mut(4 * plane)) {
            if pixels.len() != 3 * plane {
                bail!(BadInput, "input has {} values, expected 3x{s}x{s} = {}", pixels.len(), 3 * plane, s = g.image_size);
            }
            for p in 0..plane {
                for c in 0..3 {
                    out[4 * p + c] = pixels[c * plane + p];
                }
            }
        }
        self.gpu.queue.write_buffer(&g.input, 0, &g.kernels.format().encode(&rgb0));
        Ok(())
    }

    /// Encodes every dispatch for `images` images; `copies` (after which dispatch, from, to,
    /// bytes) copy maps out between them; with `timestamps`, each dispatch gets its own pass
    /// with a timestamp at its start and end.
    fn encode(&self, encoder: &mut wgpu::CommandEncoder, images: u32, copies: &[(usize, &wgpu::Buffer, &wgpu::Buffer, u64)], timestamps: Option<&wgpu::QuerySet>) {
        let dispatches = &self.graph.dispatches;
        let mut start = 0;
        let mut boundaries: Vec<usize> = copies.iter().map(|c| c.0).collect();
        boundaries.push(dispatches.len());
        for end in boundaries {
            match timestamps {
                Some(queries) => {
                    for (i, d) in dispatches.iter().enumerate().take(end).skip(start) {
                        let writes = wgpu::ComputePassTimestampWrites {
                            query_set: queries,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        };
                        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&d.kind), timestamp_writes: Some(writes) });
                        d.encode(&mut pass, images);
                    }
                }
                None => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("bit50"), timestamp_writes: None });
                    for d in &dispatches[start..end] {
                        d.encode(&mut pass, images);
                    }
                }
            }
            for (after, src, dst, bytes) in copies {
                if *after == end {
                    encoder.copy_buffer_to_buffer(src, 0, dst, 0, *bytes);
                }
            }
            start = end;
        }
    }

    /// Runs the network on `[3][size][size]` inputs, `capacity` at a time, one submission each.
    pub async fn run(&mut self, images: &[&[f32]], want: Want) -> Result<Vec<Outputs>> {
        if let Some(Some(class)) = want.class_map {
            if class >= self.graph.classes {
                bail!(BadInput, "class {class} out of range: this model has {} classes", self.graph.classes);
            }
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.graph.capacity) {
            out.extend(self.run_chunk(chunk, want).await?);
        }
        Ok(out)
    }

    async fn run_chunk(&mut self, images: &[&[f32]], want: Want) -> Result<Vec<Outputs>> {
        self.write_inputs(images)?;
        let (g, gpu) = (&self.graph, &self.gpu);
        let n = images.len();
        let format = g.kernels.format();
        let tap_readbacks: Vec<wgpu::Buffer> = match want.taps {
            true => g.taps.iter().map(|t| gpu.readback("tap", (n * t.elements) as u64 * format.bytes())).collect(),
            false => Vec::new(),
        };
        let copies: Vec<_> = g.taps.iter().zip(&tap_readbacks).map(|(t, r)| (t.after, &t.buffer, r, (n * t.elements) as u64 * format.bytes())).collect();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, n as u32, &copies, None);
        let map_words = g.capacity * g.map_pixels;
        if let Some(class) = want.class_map {
            let requested = vec![class.map_or(u32::MAX, |c| c as u32); n];
            gpu.queue.write_buffer(&g.chosen, 0, bytemuck::cast_slice(&requested));
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                g.class_map.encode(&mut pass, n as u32);
            }
            encoder.copy_buffer_to_buffer(&g.map, 0, &g.map_readback, 0, (n * g.map_pixels * 4) as u64);
            encoder.copy_buffer_to_buffer(&g.chosen, (g.capacity * 4) as u64, &g.map_readback, (map_words * 4) as u64, (n * 4) as u64);
        }
        encoder.copy_buffer_to_buffer(&g.logits, 0, &g.logits_readback, 0, (n * g.classes * 4) as u64);
        if want.pooled {
            encoder.copy_buffer_to_buffer(&g.pooled, 0, &g.pooled_readback, 0, (n * g.features * 4) as u64);
        }
        gpu.queue.submit([encoder.finish()]);

        let mut reads = vec![(&g.logits_readback, n * g.classes, Format::F32)];
        if want.pooled {
            reads.push((&g.pooled_readback, n * g.features, Format::F32));
        }
        if want.class_map.is_some() {
            reads.push((&g.map_readback, map_words + n, Format::F32));
        }
        for (t, r) in g.taps.iter().zip(&tap_readbacks) {
            reads.push((r, n * t.elements, format));
        }
        let mut data = gpu.read(&reads).await?.into_iter();
        let logits = data.next().expect("read");
        let pooled = want.pooled.then(|| data.next().expect("read"));
        let map = want.class_map.map(|_| data.next().expect("read"));
        let taps: Vec<Vec<f32>> = data.collect();
        Ok((0..n)
            .map(|i| Outputs {
                logits: logits[i * g.classes..][..g.classes].to_vec(),
                pooled: pooled.as_ref().map(|p| p[i * g.features..][..g.features].to_vec()),
                class_map: map.as_ref().map(|m| (m[map_words + i].to_bits() as usize, m[i * g.map_pixels..][..g.map_pixels].to_vec())),
                taps: want.taps.then(|| g.taps.iter().zip(&taps).map(|(t, d)| t.unpad(&d[i * t.elements..][..t.elements])).collect()),
            })
            .collect())
    }

    /// The logits of one `[3][size][size]` input.
    pub async fn logits(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        Ok(self.run(&[pixels], Want::default()).await?.remove(0).logits)
    }

    /// GPU time per kind of dispatch for one image, from timestamp queries around each one,
    /// in milliseconds, or None where the device has no timestamp queries.
    pub async fn profile(&mut self, pixels: &[f32]) -> Result<Option<Vec<(String, f64)>>> {
        if !self.gpu.features.timestamps {
            return Ok(None);
        }
        self.write_inputs(&[pixels])?;
        let (g, gpu) = (&self.graph, &self.gpu);
        let n = g.dispatches.len() as u32;
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * n });
        let bytes = 2 * n as u64 * 8;
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = gpu.readback("timestamps", bytes);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, 1, &[], Some(&queries));
        encoder.resolve_query_set(&queries, 0..2 * n, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &readback, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
        let words = gpu.read(&[(&readback, 4 * n as usize, Format::F32)]).await?.remove(0);
        let ticks: Vec<u64> = words.chunks_exact(2).map(|w| w[0].to_bits() as u64 | (w[1].to_bits() as u64) << 32).collect();
        let period_ms = gpu.queue.get_timestamp_period() as f64 / 1e6;
        let mut by_kind: Vec<(String, f64)> = Vec::new();
        for (d, t) in g.dispatches.iter().zip(ticks.chunks_exact(2)) {
            let ms = t[1].saturating_sub(t[0]) as f64 * period_ms;
            match by_kind.iter_mut().find(|(k, _)| *k == d.kind) {
                Some(entry) => entry.1 += ms,
                None => by_kind.push((d.kind.clone(), ms)),
            }
        }
        Ok(Some(by_kind))
    }
}

impl std::fmt::Debug for GpuNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuNetwork({}, {}, {} dispatches)", self.gpu.describe(), self.variant().describe(), self.graph.dispatches.len())
    }
}
