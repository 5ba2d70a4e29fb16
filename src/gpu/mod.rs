//! The GPU side: the wgpu device, buffers that keep count of the memory they hold,
//! and readback. `network` builds every pipeline, buffer and bind group of the
//! network once at load and runs an image with one queue submission.

mod network;

pub use network::{fastest_kernels, matmul_gflops, ConvKernels};
pub use network::{GpuNetwork, Taps};

use crate::{Context, Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use wgpu::util::DeviceExt;

/// A device and queue, with the adapter's description and a tally of buffer memory.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
    allocated: AtomicU64,
}

impl Gpu {
    /// Opens the first available adapter, accepting a software fallback
    /// (lavapipe natively, SwiftShader in browsers) when nothing else exists.
    pub async fn new() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
        let mut adapter = None;
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
        let adapter = adapter.ok_or_else(|| {
            Error("no WebGPU/Vulkan adapter found (on Linux without a GPU, install Mesa's lavapipe: apt-get install mesa-vulkan-drivers)".into())
        })?;
        // Ask for what the adapter offers: big storage bindings and 5 storage buffers per stage,
        // and timestamp queries for per-layer timings where there are any.
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("bit50"),
            required_limits: adapter.limits(),
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            ..Default::default()
        };
        let (device, queue) = adapter.request_device(&descriptor).await.context(|| "cannot open the GPU device".to_string())?;
        Ok(Gpu { device, queue, adapter: adapter.get_info(), allocated: AtomicU64::new(0) })
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.adapter.name, self.adapter.backend, self.adapter.device_type)
    }

    /// Bytes held in buffers created through this context.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    fn track(&self, bytes: u64) {
        self.allocated.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn storage(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        self.check_binding(label, data.len() as u64 * 4)?;
        self.track(data.len() as u64 * 4);
        Ok(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        }))
    }

    pub fn storage_zeroed(&self, label: &str, floats: usize) -> Result<wgpu::Buffer> {
        self.check_binding(label, floats as u64 * 4)?;
        self.track(floats as u64 * 4);
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: floats as u64 * 4,
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

    pub fn readback(&self, label: &str, floats: usize) -> wgpu::Buffer {
        self.track(floats as u64 * 4);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: floats as u64 * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn check_binding(&self, label: &str, bytes: u64) -> Result<()> {
        let limits = self.device.limits();
        let max = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        if bytes > max {
            crate::bail!("{label}: needs a {bytes}-byte storage buffer; this adapter allows {max}");
        }
        Ok(())
    }

    /// Maps a MAP_READ buffer and copies out its floats (waits for the GPU).
    pub async fn read(&self, buffer: &wgpu::Buffer, floats: usize) -> Result<Vec<f32>> {
        let slice = buffer.slice(..floats as u64 * 4);
        let (sender, receiver) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        // Natively the callback only runs while polling; on the web the browser drives it.
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).context(|| "GPU device lost".to_string())?;
        receiver.await.context(|| "GPU readback was cancelled".to_string())?.context(|| "GPU readback failed".to_string())?;
        let data = {
            let view = slice.get_mapped_range().context(|| "GPU readback failed".to_string())?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        buffer.unmap();
        Ok(data)
    }
}
