//! GPU time per kernel, for probes (native only): each dispatch goes in a compute pass of
//! its own whose start and end the GPU stamps (timestamp queries), and each submission
//! waits for its stamps. A pass per dispatch brings back the cost that sharing one pass
//! saves, so wall-clock figures come from an untimed engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per kernel (its pipeline key and grid): dispatches and GPU nanoseconds.
pub type KernelTimes = BTreeMap<String, (u64, f64)>;

/// What a timed backend adds up, shared with the probe that reads and clears it.
#[derive(Clone, Default)]
pub struct Times {
    pub kernels: Arc<Mutex<KernelTimes>>,
    /// CPU time spent recording dispatches.
    pub recording: Arc<Mutex<Duration>>,
}

pub(super) struct Timing {
    pub queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The timed dispatches of the submission being recorded.
    pending: Vec<String>,
    period_ns: f64,
    pub times: Times,
    started: Option<Instant>,
}

impl Timing {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, slots: usize) -> Timing {
        let count = 2 * slots as u32;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: count as u64 * 8,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        Timing {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel times"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: buffer("timestamps", U::QUERY_RESOLVE | U::COPY_SRC),
            staging: buffer("timestamps read", U::MAP_READ | U::COPY_DST),
            pending: Vec::new(),
            period_ns: queue.get_timestamp_period() as f64,
            times: Times::default(),
            started: None,
        }
    }

    /// A dispatch of `kernel` begins recording: the first of its two query indices.
    pub fn begin(&mut self, kernel: String) -> u32 {
        self.started = Some(Instant::now());
        self.pending.push(kernel);
        2 * (self.pending.len() as u32 - 1)
    }

    pub fn end(&mut self) {
        if let Some(t) = self.started.take() {
            *self.times.recording.lock().unwrap() += t.elapsed();
        }
    }

    /// `enc` with the copy of this submission's stamps to where `collect` reads them.
    pub fn resolved(&self, mut enc: wgpu::CommandEncoder) -> wgpu::CommandEncoder {
        let n = 2 * self.pending.len() as u32;
        if n > 0 {
            enc.resolve_query_set(&self.queries, 0..n, &self.resolved, 0);
            enc.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, n as u64 * 8);
        }
        enc
    }

    /// Once the submission is sent: waits for its stamps and adds them to the totals.
    pub fn collect(&mut self, device: &wgpu::Device) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = self.pending.len() as u64 * 16;
        let slice = self.staging.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        let _ = device.poll(wgpu::PollType::wait_indefinitely());
        if let Ok(data) = slice.get_mapped_range() {
            let stamps: &[u64] = bytemuck::cast_slice(&data);
            let mut totals = self.times.kernels.lock().unwrap();
            for (kernel, pair) in self.pending.drain(..).zip(stamps.chunks_exact(2)) {
                let e = totals.entry(kernel).or_default();
                e.0 += 1;
                e.1 += pair[1].saturating_sub(pair[0]) as f64 * self.period_ns;
            }
        }
        self.pending.clear();
        self.staging.unmap();
    }
}
