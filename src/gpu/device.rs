//! Opening the adapter and device, and watching for errors: wgpu reports a lost device or
//! a failed call through callbacks, kept until the next read reports them.

use super::dispatch::{PARAM_SLOTS, PARAM_STRIDE};
use super::memory::Vectors;
use super::{lost, Gpu, MAX_GRID};
use crate::error::{Code, Error, Result};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

impl Gpu {
    /// Opens the first adapter wgpu finds (WebGPU in a browser, Vulkan natively), with the
    /// largest storage bindings and buffers it offers.
    pub async fn new() -> Result<Gpu> {
        Self::open(false).await
    }

    /// As `new`, with the GPU time of every kernel measured (`kernel_times`), where the
    /// adapter has timestamp queries: for probes, as it slows the engine down.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn new_timed() -> Result<Gpu> {
        Self::open(true).await
    }

    async fn open(timed: bool) -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::BROWSER_WEBGPU | wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
            .await
            .map_err(|e| Error::new(Code::WebgpuUnavailable, format!("no WebGPU adapter ({e}); this browser or machine runs the model on the CPU")))?;
        let info = adapter.get_info();
        let have = adapter.limits();
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            max_compute_workgroups_per_dimension: have
                .max_compute_workgroups_per_dimension
                .min(MAX_GRID),
            ..wgpu::Limits::default()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("ouvert"),
                required_limits: limits.clone(),
                required_features: if timed {
                    adapter.features() & wgpu::Features::TIMESTAMP_QUERY
                } else {
                    wgpu::Features::empty()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::new(
                    Code::WebgpuUnavailable,
                    format!("the WebGPU adapter refused a device ({e}); the model runs on the CPU"),
                )
            })?;
        let failure = Arc::new(Mutex::new(None));
        let f = failure.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            f.lock().unwrap().get_or_insert_with(|| {
                Error::new(Code::WebgpuError, format!("a WebGPU call failed: {e}"))
            });
        }));
        let f = failure.clone();
        // A lost device explains any error that came before it.
        device.set_device_lost_callback(move |_, msg| *f.lock().unwrap() = Some(lost(msg)));
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: (PARAM_STRIDE * PARAM_SLOTS) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        #[cfg(not(target_arch = "wasm32"))]
        let timing = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| super::timing::Timing::new(&device, &queue, PARAM_SLOTS));
        #[cfg(target_arch = "wasm32")]
        let _ = timed;
        // A software adapter (lavapipe, SwiftShader: the CPU running the kernels) pays for a
        // workgroup's prologue and barriers as much as for its rows: there, 64 rows per
        // workgroup, one invocation each, decode 1.8x faster than 8 (lavapipe, 2 cores).
        let name = info.name.to_lowercase();
        let software = info.device_type == wgpu::DeviceType::Cpu
            || ["swiftshader", "llvmpipe", "lavapipe"]
                .iter()
                .any(|s| name.contains(s));
        let group_rows = if software { 64 } else { 8 };
        Ok(Gpu {
            prefill_rows: group_rows,
            decode_rows: group_rows,
            #[cfg(not(target_arch = "wasm32"))]
            timing,
            adapter: format!("{} ({:?}, {})", info.name, info.backend, info.driver),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size)
                & !3,
            device,
            queue,
            pipelines: HashMap::new(),
            arena: Rc::default(),
            vecs: Vectors::default(),
            pass: None,
            encoder: None,
            params: Vec::new(),
            params_buf,
            ids_buf: None,
            dispatches: Arc::new(AtomicUsize::new(0)),
            failure,
            early: HashMap::new(),
            early_bytes: 0,
        })
    }

    /// Records an error that the next read reports (the kernel interface does not return
    /// errors from every call; a forward pass fails as a whole).
    pub(super) fn fail(&self, e: Error) {
        self.failure.lock().unwrap().get_or_insert(e);
    }

    /// A function that destroys the device, as a driver reset would (for tests).
    pub fn destroyer(&self) -> Box<dyn Fn()> {
        let device = self.device.clone();
        Box::new(move || device.destroy())
    }

    /// A function that reads the device's live buffers, GPU memory and bind groups, once
    /// the GPU is idle (native builds count them; for tests).
    pub fn resource_counter(&self) -> Box<dyn Fn() -> wgpu::InternalCounters> {
        let device = self.device.clone();
        Box::new(move || {
            #[cfg(not(target_arch = "wasm32"))]
            let _ = device.poll(wgpu::PollType::wait_indefinitely());
            device.get_internal_counters()
        })
    }

    /// GPU time per kernel and CPU time spent recording, added up since they were last
    /// cleared; `None` unless made by `new_timed` on an adapter with timestamp queries.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn kernel_times(&self) -> Option<super::timing::Times> {
        self.timing.as_ref().map(|t| t.times.clone())
    }

    /// How many weight rows one matmul workgroup takes in a prefill and in a decode step
    /// (powers of two from 2 to 64), for tests and probes that compare them.
    pub fn set_group_rows(&mut self, prefill: u32, decode: u32) {
        for rows in [prefill, decode] {
            assert!(rows.is_power_of_two() && (2..=64).contains(&rows));
        }
        (self.prefill_rows, self.decode_rows) = (prefill, decode);
    }

    /// The running count of dispatches recorded.
    pub fn dispatch_counter(&self) -> Arc<AtomicUsize> {
        self.dispatches.clone()
    }

    pub(super) fn failed(&self) -> Option<Error> {
        self.failure.lock().unwrap().clone()
    }
}
