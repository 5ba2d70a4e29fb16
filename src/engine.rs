//! The one engine policy, for every surface (the `bit50` command and the wasm module): which
//! path runs the network, the GPU (WGSL kernels) or the CPU path, and the calls both make.
//!
//! `auto` opens the GPU and times it against the CPU path at load (a few milliseconds on a
//! GPU, about 0.1-0.3 s on an emulator) and keeps the faster: on a real GPU that is the GPU
//! by far; on a CPU device (Mesa's lavapipe) or a software adapter (SwiftShader) the CPU
//! path. Without an adapter, the CPU path. The reason is kept for the user.

use crate::cpu::CpuNetwork;
use crate::gpu::{fastest_variant, precisions, ConvKernel, Features, Gpu, GpuNetwork, Outputs, Precision, Variant, Want};
use crate::model::{Dtype, Network};
use crate::{bail, Result};

/// Which path was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The faster of the two, measured at load.
    Auto,
    Gpu,
    Cpu,
}

impl Backend {
    /// "auto", "gpu" (or the browser's "webgpu"), "cpu".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Backend::Auto),
            "gpu" | "webgpu" => Ok(Backend::Gpu),
            "cpu" => Ok(Backend::Cpu),
            _ => bail!(BadInput, "backend {s:?}: expected auto, webgpu or cpu"),
        }
    }
}

/// How to open an engine.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// The adapter is a software fallback (SwiftShader, as the browser says); CPU devices
    /// (lavapipe) are recognised on their own.
    pub software: bool,
    /// GPU features the kernels may use where the adapter has them (tests turn them off).
    pub features: Features,
    /// The GPU's number format. None: f16 where the adapter has `shader-f16` and the weights
    /// were stored in f16 or int8 (the faster of f16 storage and f16 arithmetic), else f32.
    pub precision: Option<Precision>,
    /// The convolution kernel. None: timed at load.
    pub conv: Option<ConvKernel>,
    /// Images per GPU submission.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { backend: Backend::Auto, software: false, features: Features::ALL, precision: None, conv: None, batch: 1 }
    }
}

enum Path {
    Gpu(Box<GpuNetwork>),
    Cpu(CpuNetwork),
}

/// The network on the path the policy chose.
pub struct Engine {
    path: Path,
    /// Why the CPU path runs, where it does.
    pub reason: Option<String>,
}

/// What opening the engine is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the GPU, then compiling the network's kernels for it.
    Preparing,
    /// Timing the GPU's kernels against the CPU path: `done` of `total` measurements.
    Measuring { done: usize, total: usize },
}

/// What the policy chose, before the weights are all in: the GPU network recorded (its
/// weights uploaded as they arrive), or the CPU path and why.
pub enum Plan {
    Gpu(Box<GpuNetwork>),
    Cpu { reason: String },
}

impl Engine {
    /// Opens the network as `options` ask; `stored` is how its weights were stored (f16 and
    /// int8 models run in f16 on GPUs that have it); `on_gpu` is shown the device as soon as it
    /// is open (to watch for its loss); `now` is a clock in milliseconds; `on_phase` hears what it
    /// is doing.
    pub async fn open(net: Network, stored: Dtype, options: &Options, on_gpu: impl FnOnce(&Gpu), now: impl Fn() -> f64, on_phase: impl Fn(Phase)) -> Result<Engine> {
        match Self::plan(&net, stored, options, on_gpu, now, on_phase).await? {
            // The network's weights went up while it was recorded.
            Plan::Gpu(gpu) => Ok(Engine { path: Path::Gpu(gpu), reason: None }),
            Plan::Cpu { reason } => Ok(Engine::cpu(net, reason)),
        }
    }

    /// Decides the path for `net` (a whole network, or its [`Network::skeleton`] when the
    /// weights are still on their way) and, for the GPU, records it.
    pub async fn plan(net: &Network, stored: Dtype, options: &Options, on_gpu: impl FnOnce(&Gpu), now: impl Fn() -> f64, on_phase: impl Fn(Phase)) -> Result<Plan> {
        if options.backend == Backend::Cpu {
            return Ok(Plan::Cpu { reason: "the CPU path was asked for".into() });
        }
        on_phase(Phase::Preparing);
        let gpu = match Gpu::new(options.features).await {
            Ok(gpu) => gpu,
            Err(e) if options.backend == Backend::Auto => return Ok(Plan::Cpu { reason: e.message }),
            Err(e) => return Err(e),
        };
        on_gpu(&gpu);
        let candidates = match options.precision {
            Some(p) => vec![p],
            None => precisions(&gpu, stored != Dtype::F32),
        };
        let (variant, gflops) = match options.conv {
            Some(conv) => (Variant { conv, precision: candidates[0], subgroups: gpu.features.subgroups }, None),
            None => {
                // Each precision, then the choice (for auto, after timing the CPU path): the
                // measuring is never shown done while it goes on.
                let total = candidates.len() + 1;
                on_phase(Phase::Measuring { done: 0, total });
                let (v, g) = fastest_variant(&gpu, &candidates, options.software, &now, |done| on_phase(Phase::Measuring { done, total })).await?;
                (v, Some(g))
            }
        };
        if let (Backend::Auto, Some(gpu_gflops)) = (options.backend, gflops) {
            // The CPU path's throughput on a product of the same kind (about 10 ms).
            let cpu_gflops = crate::cpu::matmul_gflops(32, 256, 256, 3, &now);
            if cpu_gflops > gpu_gflops {
                let software = if options.software || gpu.is_cpu() { " (a software one)" } else { "" };
                let reason = format!("measured at load: {gpu_gflops:.2} GFLOP/s on this GPU adapter{software}, {cpu_gflops:.2} on the CPU, so the CPU path runs");
                return Ok(Plan::Cpu { reason });
            }
        }
        on_phase(Phase::Preparing);
        Ok(Plan::Gpu(Box::new(GpuNetwork::new(gpu, net, variant, options.batch).await?)))
    }

    /// The engine once every weight has arrived: the GPU network of `plan` (refused while a
    /// parameter is missing), or the CPU path on `network()`.
    pub fn finish(plan: Plan, network: impl FnOnce() -> Result<Network>, source: &str) -> Result<Engine> {
        match plan {
            Plan::Gpu(gpu) => {
                let missing = gpu.missing();
                if !missing.is_empty() {
                    bail!(BadModel, "{source}: missing tensors: {}", missing.join(", "));
                }
                Ok(Engine { path: Path::Gpu(gpu), reason: None })
            }
            Plan::Cpu { reason } => Ok(Engine::cpu(network()?, reason)),
        }
    }

    fn cpu(net: Network, reason: String) -> Engine {
        Engine { path: Path::Cpu(CpuNetwork::new(net)), reason: Some(reason) }
    }

    /// "gpu" or "cpu".
    pub fn backend(&self) -> &'static str {
        match self.path {
            Path::Gpu(_) => "gpu",
            Path::Cpu(_) => "cpu",
        }
    }

    /// The GPU network, where the GPU runs.
    pub fn gpu(&self) -> Option<&GpuNetwork> {
        match &self.path {
            Path::Gpu(net) => Some(net),
            Path::Cpu(_) => None,
        }
    }

    /// Images one run takes at a time (the CPU path takes them one by one).
    pub fn batch(&self) -> usize {
        self.gpu().map_or(1, |g| g.capacity())
    }

    /// Runs the network on `[3][size][size]` inputs: the logits, and what `want` asks for.
    pub async fn run(&mut self, images: &[&[f32]], want: Want) -> Result<Vec<Outputs>> {
        match &mut self.path {
            Path::Gpu(net) => net.run(images, want).await,
            Path::Cpu(net) => images
                .iter()
                .map(|pixels| {
                    let f = net.forward(pixels);
                    let classes = f.logits.len();
                    let class_map = match want.class_map {
                        Some(Some(class)) if class >= classes => bail!(BadInput, "class {class} out of range: this model has {classes} classes"),
                        Some(class) => {
                            let class = class.unwrap_or_else(|| crate::top_k(&f.logits, &[], 1)[0].index);
                            Some((class, net.class_map(&f, class)))
                        }
                        None => None,
                    };
                    let taps = want.taps.then(|| std::iter::once(f.stem.data.clone()).chain(f.stages.iter().map(|s| s.data.clone())).collect());
                    Ok(Outputs { pooled: want.pooled.then(|| f.pooled.clone()), class_map, taps, logits: f.logits })
                })
                .collect(),
        }
    }

    /// GPU time per kind of layer for one image (timestamp queries); None on the CPU path or
    /// where the adapter has no timestamp queries.
    pub async fn profile(&mut self, pixels: &[f32]) -> Result<Option<Vec<(String, f64)>>> {
        match &mut self.path {
            Path::Gpu(net) => net.profile(pixels).await,
            Path::Cpu(_) => Ok(None),
        }
    }
}
