//! The wgpu device: which optional features it has (f16, subgroups, timestamps), buffers
//! that keep count of the memory they hold, and readback.

use crate::{bail, Context, Error, ErrorKind, Result, WithKind};
use std::sync::atomic::{AtomicU64, Ordering};
use wgpu::util::DeviceExt;

/// The optional adapter features the kernels use where they exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `shader-f16`: f16 storage and arithmetic in WGSL.
    pub f16: bool,
    /// Subgroup operations (wgpu's `SUBGROUP`, `subgroups` in browsers).
    pub subgroups: bool,
    /// Timestamp queries, for per-layer GPU times.
    pub timestamps: bool,
}

impl Features {
    pub const ALL: Features = Features { f16: true, subgroups: true, timestamps: true };
    pub const NONE: Features = Features { f16: false, subgroups: false, timestamps: false };
}

/// How a buffer stores its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
}

impl Format {
    pub fn bytes(self) -> u64 {
        match self {
            Format::F32 => 4,
            Format::F16 => 2,
        }
    }

    pub(crate) fn encode(self, data: &[f32]) -> Vec<u8> {
        match self {
            Format::F32 => bytemuck::cast_slice(data).to_vec(),
            Format::F16 => data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        }
    }

    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Format::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Format::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        }
    }
}

/// A device and queue, with the adapter's description, the features in use, and a tally
/// of buffer memory.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    /// What this device has of [`Features`] (and was allowed to use).
    pub features: Features,
    /// Lanes per subgroup where `features.subgroups` (checked at open), else 0.
    pub subgroup_size: u32,
    allocated: AtomicU64,
}

impl Gpu {
    /// Opens the first adapter (a software fallback only when nothing else exists) with the
    /// `allow`ed features it offers. Natively only Vulkan, Metal and DX12 are probed first:
    /// probing OpenGL asks for a display and prints warnings where there is none.
    ///
    /// On the web, wgpu 30 does not map the `subgroups` feature: the page's worker requests it
    /// (bit50-worker.js) and says so with `allow.subgroups`; the kernels then check it works.
    pub async fn new(allow: Features) -> Result<Self> {
        let mut adapter = None;
        for backends in [wgpu::Backends::PRIMARY, wgpu::Backends::all()] {
            let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
            descriptor.backends = backends;
            let instance = wgpu::Instance::new(descriptor.with_env());
            for force_fallback_adapter in [false, true] {
                let options = wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    force_fallback_adapter,
                    ..Default::default()
                };
                if let Ok(a) = instance.request_adapter(&options).await {
                    adapter = Some(a);
                    break;
                }
            }
            if adapter.is_some() {
                break;
            }
        }
        let adapter = adapter.ok_or_else(|| {
            Error::new(
                ErrorKind::NoGpu,
                "no WebGPU/Vulkan adapter found (on Linux without a GPU, install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)",
            )
        })?;
        let offered = adapter.features();
        let mut wanted = wgpu::Features::empty();
        if allow.timestamps {
            wanted |= offered & wgpu::Features::TIMESTAMP_QUERY;
        }
        if allow.f16 {
            wanted |= offered & wgpu::Features::SHADER_F16;
        }
        if allow.subgroups {
            wanted |= offered & wgpu::Features::SUBGROUP;
        }
        // Ask for what the adapter offers: big storage bindings and enough storage buffers per stage.
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("bit50"),
            required_limits: adapter.limits(),
            required_features: wanted,
            ..Default::default()
        };
        let (device, queue) = adapter.request_device(&descriptor).await.context(|| "cannot open the GPU device".to_string()).kind(ErrorKind::NoGpu)?;
        let features = Features {
            f16: wanted.contains(wgpu::Features::SHADER_F16),
            subgroups: wanted.contains(wgpu::Features::SUBGROUP) || (cfg!(target_arch = "wasm32") && allow.subgroups),
            timestamps: wanted.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        let mut gpu = Gpu { device, queue, adapter: adapter.get_info(), features, subgroup_size: 0, allocated: AtomicU64::new(0) };
        if gpu.features.subgroups {
            gpu.subgroup_size = super::kernels::subgroup_layout(&gpu).await?.unwrap_or(0);
            gpu.features.subgroups = gpu.subgroup_size > 0;
        }
        Ok(gpu)
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.adapter.name, self.adapter.backend, self.adapter.device_type)
    }

    /// Whether this is a CPU device (Mesa's lavapipe): an emulator, where barriers are dear.
    pub fn is_cpu(&self) -> bool {
        self.adapter.device_type == wgpu::DeviceType::Cpu
    }

    /// Bytes held in buffers created through this context.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    fn track(&self, bytes: u64) {
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A storage buffer holding `data` in `format`.
    pub fn upload(&self, label: &str, data: &[f32], format: Format) -> Result<wgpu::Buffer> {
        self.upload_bytes(label, &format.encode(data))
    }

    pub fn upload_bytes(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.check_binding(label, bytes.len() as u64)?;
        self.track(bytes.len() as u64);
        Ok(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        }))
    }

    /// A zeroed storage buffer of `elements` numbers in `format` (at least 4 bytes).
    pub fn zeroed(&self, label: &str, elements: usize, format: Format) -> Result<wgpu::Buffer> {
        let bytes = (elements as u64 * format.bytes()).next_multiple_of(4).max(4);
        self.check_binding(label, bytes)?;
        self.track(bytes);
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    pub fn uniform(&self, label: &str, words: &[u32]) -> wgpu::Buffer {
        self.track(words.len() as u64 * 4);
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(words),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    pub fn readback(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.track(bytes);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(4).max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// The most bytes one storage binding may hold here.
    pub fn max_binding(&self) -> u64 {
        let limits = self.device.limits();
        (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size)
    }

    fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        let max = self.max_binding();
        if bytes > max {
            bail!(NoGpu, "{label}: needs a {bytes}-byte storage buffer; this adapter allows {max}");
        }
        Ok(())
    }

    /// Maps MAP_READ buffers and copies out their numbers: `(buffer, elements, format)` each,
    /// waiting for the GPU once.
    pub async fn read(&self, buffers: &[(&wgpu::Buffer, usize, Format)]) -> Result<Vec<Vec<f32>>> {
        let bytes = |elements: usize, format: Format| (elements as u64 * format.bytes()).next_multiple_of(4).max(4);
        let mut receivers = Vec::new();
        for (buffer, elements, format) in buffers {
            let slice = buffer.slice(..bytes(*elements, *format));
            let (sender, receiver) = futures_channel::oneshot::channel();
            slice.map_async(wgpu::MapMode::Read, move |result| {
                let _ = sender.send(result);
            });
            receivers.push(receiver);
        }
        // Natively the callbacks only run while polling; on the web the browser drives them.
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).context(|| "GPU device lost".to_string()).kind(ErrorKind::DeviceLost)?;
        let mut out = Vec::new();
        for ((buffer, elements, format), receiver) in buffers.iter().zip(receivers) {
            receiver.await.context(|| "GPU readback was cancelled".to_string()).kind(ErrorKind::DeviceLost)?.context(|| "GPU readback failed".to_string()).kind(ErrorKind::DeviceLost)?;
            let data = {
                let view = buffer.slice(..bytes(*elements, *format)).get_mapped_range().context(|| "GPU readback failed".to_string())?;
                let mut values = format.decode(&view);
                values.truncate(*elements);
                values
            };
            buffer.unmap();
            out.push(data);
        }
        Ok(out)
    }
}
