//! Recording work: each kernel's pipeline built once from its source, its parameters
//! written at a fixed stride into one uniform buffer, and its dispatch recorded into the
//! open compute pass; `submit` sends what is recorded.

use super::Gpu;
use std::sync::atomic::Ordering;

/// Per-dispatch parameters go into one uniform buffer at this stride (WebGPU's default
/// `minUniformBufferOffsetAlignment`).
pub(super) const PARAM_STRIDE: usize = 256;
/// Dispatches recorded before the parameters buffer is full and they are submitted.
pub(super) const PARAM_SLOTS: usize = 1024;

impl Gpu {
    /// The open command encoder, outside any pass (a copy is recorded there).
    pub(super) fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&Default::default()))
    }

    /// Records one compute dispatch of the pipeline `key` (built from `source` once) with
    /// the kernel's `params` (its struct in `uniforms`).
    pub(super) fn dispatch<P: bytemuck::Pod>(
        &mut self,
        key: &str,
        source: impl FnOnce() -> String,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        if self.params.len() + PARAM_STRIDE > PARAM_STRIDE * PARAM_SLOTS {
            self.submit();
        }
        if !self.pipelines.contains_key(key) {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(key),
                    source: wgpu::ShaderSource::Wgsl(source().into()),
                });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(key),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                });
            let layout = pipeline.get_bind_group_layout(0);
            self.pipelines.insert(key.to_owned(), (pipeline, layout));
        }
        let offset = self.params.len();
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        self.params.resize(offset + PARAM_STRIDE, 0);
        let (pipeline, layout) = &self.pipelines[key];
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.params_buf,
                offset: offset as u64,
                size: wgpu::BufferSize::new(PARAM_STRIDE as u64),
            }),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                }),
        );
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        });
        let pipeline = pipeline.clone();
        // A timed dispatch has a pass of its own, stamped at its start and end.
        #[cfg(not(target_arch = "wasm32"))]
        let stamps = self.timing.as_mut().map(|t| {
            let first = t.begin(format!("{key} {groups:?}"));
            (t.queries.clone(), first)
        });
        #[cfg(target_arch = "wasm32")]
        let stamps: Option<(wgpu::QuerySet, u32)> = None;
        if stamps.is_some() {
            self.pass = None;
        }
        if self.pass.is_none() {
            let desc = wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: stamps.as_ref().map(|(queries, first)| {
                    wgpu::ComputePassTimestampWrites {
                        query_set: queries,
                        beginning_of_pass_write_index: Some(*first),
                        end_of_pass_write_index: Some(first + 1),
                    }
                }),
            };
            self.pass = Some(self.encoder().begin_compute_pass(&desc).forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("opened above");
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(t) = &mut self.timing {
            self.pass = None;
            t.end();
        }
    }

    /// Sends what is recorded, with its parameters.
    pub(super) fn submit(&mut self) {
        if !self.params.is_empty() {
            self.queue.write_buffer(&self.params_buf, 0, &self.params);
            self.params.clear();
        }
        self.pass = None;
        if let Some(enc) = self.encoder.take() {
            #[cfg(not(target_arch = "wasm32"))]
            let enc = match &self.timing {
                Some(t) => t.resolved(enc),
                None => enc,
            };
            self.queue.submit([enc.finish()]);
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(t) = &mut self.timing {
                t.collect(&self.device);
            }
        }
    }
}
