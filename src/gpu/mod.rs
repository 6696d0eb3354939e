//! The WebGPU backend, through wgpu: WebGPU in a browser, Vulkan natively (Mesa's lavapipe
//! in the tests). The same model code as on the CPU drives it through `Backend`.
//!
//! Weights stay quantized on the GPU and are dequantized inside the shaders. Activations
//! live in one storage buffer (an arena with stack discipline: a forward pass frees them
//! in reverse order), so a kernel binds few buffers whatever the model. Every kernel of a
//! forward pass is recorded into one command encoder and submitted when the result is read:
//! one command buffer per token. A decode step is six dispatches per layer.
//!
//! No `shader-f16`: f16 values (block scales, the KV cache) are read with `unpack2x16float`
//! and written with `pack2x16float`, which every adapter has.

mod shaders;

use crate::backend::{AttnShape, Backend, Mix, Readback, RopeStyle, Span};
use crate::bail;
use crate::error::{Code, Error, Result};
use crate::gguf::{DType, TensorInfo};
use crate::weights::ModelBytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Per-dispatch parameters go into one uniform buffer at this stride (WebGPU's default
/// `minUniformBufferOffsetAlignment`).
const PARAM_STRIDE: usize = 256;
/// "No such vector" in a kernel's parameters (a bias, q/k norms).
const NONE: u32 = u32::MAX;
const PARAM_SLOTS: usize = 1024;
/// Token rows one matmul workgroup handles (`TOK` in matmul.wgsl) in a prefill; a decode
/// step's single row gets its own build of the kernel.
const TOK: u32 = 4;
/// Weight rows per matmul workgroup.
const ROWS_PER_GROUP: usize = 8;
/// Largest workgroup count along one grid dimension that WebGPU guarantees.
const MAX_GRID: u32 = 65_535;

pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// What the adapter is, for `info` and error messages.
    pub adapter: String,
    max_binding: u64,
    /// Each kernel's pipeline and its bind group layout, built once.
    pipelines: HashMap<String, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
    arena: Rc<RefCell<Arena>>,
    vecs: Vectors,
    /// The open compute pass: consecutive dispatches share one (WebGPU orders a pass's
    /// dispatches and makes each one's writes visible to the next). Declared before
    /// `encoder`, which it locks until it ends.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u8>,
    params_buf: wgpu::Buffer,
    ids_buf: Option<wgpu::Buffer>,
    /// Dispatches recorded so far (shared, so a caller can watch it after handing the
    /// backend to a model).
    dispatches: Arc<AtomicUsize>,
    /// Set by wgpu's callbacks: a lost device or a validation error.
    failure: Arc<Mutex<Option<Error>>>,
    /// Matrices uploaded while the file was arriving (`StreamingUpload`), by their place in
    /// the file, for `matrix` to take; and how many bytes went up that way.
    early: HashMap<(usize, usize), Vec<Part>>,
    pub early_bytes: usize,
}

/// Weights going to the GPU as a streaming file arrives: once the header is whole
/// (`HeaderWatch`), each matrix is uploaded as soon as its last byte is in, instead of all
/// of them after the file. The model then takes them (`Backend::matrix`) as if uploaded at
/// load.
pub struct StreamingUpload {
    gpu: Gpu,
    /// The matrices still to come, last in the file first.
    pending: Vec<TensorInfo>,
}

impl StreamingUpload {
    pub fn new(gpu: Gpu) -> Self {
        StreamingUpload {
            gpu,
            pending: Vec::new(),
        }
    }

    /// The file's tensor table, from its header.
    pub fn expect(&mut self, tensors: &[TensorInfo]) {
        self.pending = tensors
            .iter()
            .filter(|t| t.dims.len() >= 2)
            .cloned()
            .collect();
        self.pending
            .sort_by_key(|t| std::cmp::Reverse(t.offset + t.bytes));
    }

    /// Called as the file arrives, with all of it so far: uploads the matrices now whole.
    pub fn offer(&mut self, arrived: &[u8]) {
        while let Some(t) = self.pending.pop_if(|t| t.offset + t.bytes <= arrived.len()) {
            // One that does not fit the kernels is left for the load to report.
            if let Ok(parts) = self.gpu.parts(&t, &arrived[t.offset..t.offset + t.bytes]) {
                self.gpu.early_bytes += t.bytes;
                self.gpu.early.insert((t.offset, t.bytes), parts);
            }
        }
    }

    /// Bytes of weights uploaded so far.
    pub fn uploaded(&self) -> usize {
        self.gpu.early_bytes
    }

    /// The GPU, holding what was uploaded.
    pub fn finish(self) -> Gpu {
        self.gpu
    }
}

/// All activations, at element offsets in one buffer that grows (copying) when needed.
struct Arena {
    buf: Option<wgpu::Buffer>,
    capacity: usize,
    /// Stack of live allocations `(offset, len, live)`; freed ones pop once on top.
    stack: Vec<(usize, usize, bool)>,
    top: usize,
    /// Set when the buffer must grow before the next dispatch.
    want: usize,
}

/// Norm weights and rope tables, gathered on the host while the model loads and uploaded
/// as one buffer before the first dispatch.
struct Vectors {
    host: Vec<f32>,
    buf: Option<wgpu::Buffer>,
    uploaded: usize,
}

pub struct Matrix {
    dtype: DType,
    cols: usize,
    row_bytes: usize,
    /// Row ranges in buffers of at most `max_binding` bytes (the 178 MB embedding of
    /// Gemma 3 270M is more than WebGPU's default 128 MiB binding).
    parts: Vec<Part>,
    /// Added to the products: its offset in the vectors buffer.
    bias: Option<Vector>,
}

struct Part {
    buf: wgpu::Buffer,
    row0: usize,
    rows: usize,
}

#[derive(Clone, Copy)]
pub struct Vector {
    off: usize,
}

pub struct Act {
    off: usize,
    rows: usize,
    width: usize,
    /// 0 or `rows × width`: which half of the allocation holds the values (a residual
    /// update writes the other half, as other workgroups may still read this one).
    half: usize,
    arena: Rc<RefCell<Arena>>,
}

impl Act {
    fn at(&self) -> u32 {
        (self.off + self.half) as u32
    }
    fn other(&self) -> u32 {
        (self.off + self.rows * self.width - self.half) as u32
    }
}

impl Drop for Act {
    fn drop(&mut self) {
        self.arena.borrow_mut().free(self.off);
    }
}

pub struct Kv {
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    width: usize,
    slots: usize,
}

impl Arena {
    fn alloc(&mut self, len: usize) -> usize {
        let off = self.top;
        self.stack.push((off, len, true));
        self.top += len.div_ceil(64) * 64;
        self.want = self.want.max(self.top);
        off
    }

    fn free(&mut self, off: usize) {
        if let Some(e) = self.stack.iter_mut().find(|e| e.0 == off && e.2) {
            e.2 = false;
        }
        while self.stack.last().is_some_and(|e| !e.2) {
            self.stack.pop();
        }
        self.top = self.stack.last().map_or(0, |e| e.0 + e.1.div_ceil(64) * 64);
    }
}

fn wgsl_type(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::Q4_0 => "q4_0",
        DType::Q4_1 => "q4_1",
        DType::Q5_0 => "q5_0",
        DType::Q5_1 => "q5_1",
        DType::Q8_0 => "q8_0",
        DType::Q2K => "q2_k",
        DType::Q3K => "q3_k",
        DType::Q4K => "q4_k",
        DType::Q5K => "q5_k",
        DType::Q6K => "q6_k",
        DType::Q8K => "q8_k",
    }
}

fn lost(msg: impl Into<String>) -> Error {
    Error::new(
        Code::WebgpuLost,
        format!(
            "the GPU stopped answering ({}); the engine continues on the CPU",
            msg.into()
        ),
    )
}

/// Splits `groups` workgroups over a 2-D grid within WebGPU's 65,535 per dimension.
fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(MAX_GRID);
    (x, groups.div_ceil(x))
}

impl Gpu {
    /// Opens the first adapter wgpu finds (WebGPU in a browser, Vulkan natively), with the
    /// largest storage bindings and buffers it offers.
    pub async fn new() -> Result<Gpu> {
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
        Ok(Gpu {
            adapter: format!("{} ({:?}, {})", info.name, info.backend, info.driver),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size)
                & !3,
            device,
            queue,
            pipelines: HashMap::new(),
            arena: Rc::new(RefCell::new(Arena {
                buf: None,
                capacity: 0,
                stack: Vec::new(),
                top: 0,
                want: 0,
            })),
            vecs: Vectors {
                host: Vec::new(),
                buf: None,
                uploaded: 0,
            },
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
    fn fail(&self, e: Error) {
        self.failure.lock().unwrap().get_or_insert(e);
    }

    /// Activations holding `data` (`rows × width`), for tests and self-checks.
    pub fn act_from(&mut self, data: &[f32], rows: usize, width: usize) -> Act {
        assert_eq!(data.len(), rows * width);
        let a = self.act(rows, width);
        self.prepare();
        // The arena may be written by commands still unsubmitted: submit them first.
        self.submit();
        self.queue
            .write_buffer(&self.arena_buf(), a.at() as u64 * 4, bytemuck_f32(data));
        a
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

    /// The running count of dispatches recorded.
    pub fn dispatch_counter(&self) -> Arc<AtomicUsize> {
        self.dispatches.clone()
    }

    fn failed(&self) -> Option<Error> {
        self.failure.lock().unwrap().clone()
    }

    /// A matrix's rows in buffers of at most `max_binding` bytes, uploaded from `bytes`.
    fn parts(&self, t: &TensorInfo, bytes: &[u8]) -> Result<Vec<Part>> {
        let (rows, cols) = (t.dims[1..].iter().product::<usize>(), t.dims[0]);
        let row_bytes = cols / t.dtype.block() * t.dtype.block_bytes();
        if cols % 32 != 0 || row_bytes as u64 > self.max_binding {
            bail!(Code::UnsupportedQuantization, "tensor {:?} ({cols} columns) does not fit the GPU kernels' 32-value chunks or binding size", t.name);
        }
        let per_part = (self.max_binding as usize / row_bytes).max(1);
        let mut parts = Vec::new();
        for row0 in (0..rows).step_by(per_part) {
            let n = per_part.min(rows - row0);
            let buf = self.storage(&t.name, (n * row_bytes) as u64);
            self.upload(&buf, &bytes[row0 * row_bytes..(row0 + n) * row_bytes]);
            parts.push(Part { buf, row0, rows: n });
        }
        Ok(parts)
    }

    fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Uploads `data`, padding the tail to the 4 bytes `write_buffer` wants.
    fn upload(&self, buf: &wgpu::Buffer, data: &[u8]) {
        let whole = data.len() & !3;
        if whole > 0 {
            self.queue.write_buffer(buf, 0, &data[..whole]);
        }
        if whole < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.queue.write_buffer(buf, whole as u64, &tail);
        }
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None; // a copy is recorded outside any pass
        self.encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&Default::default()))
    }

    /// Makes the arena and vector buffers current before recording a dispatch that binds them.
    fn prepare(&mut self) {
        let want = self.arena.borrow().want;
        if want > self.arena.borrow().capacity {
            let capacity = want.next_power_of_two().max(1 << 16);
            let buf = self.storage("activations", capacity as u64 * 4);
            let old = self.arena.borrow_mut().buf.replace(buf.clone());
            if let Some(old) = old {
                self.encoder()
                    .copy_buffer_to_buffer(&old, 0, &buf, 0, old.size());
            }
            self.arena.borrow_mut().capacity = capacity;
        }
        if self.vecs.buf.is_none() || self.vecs.uploaded != self.vecs.host.len() {
            let buf = self.storage("vectors", self.vecs.host.len() as u64 * 4);
            self.upload(&buf, bytemuck_f32(&self.vecs.host));
            self.vecs.buf = Some(buf);
            self.vecs.uploaded = self.vecs.host.len();
        }
    }

    fn arena_buf(&self) -> wgpu::Buffer {
        self.arena
            .borrow()
            .buf
            .clone()
            .expect("prepare() allocates the arena")
    }

    fn vecs_buf(&self) -> wgpu::Buffer {
        self.vecs
            .buf
            .clone()
            .expect("prepare() uploads the vectors")
    }

    /// Records one compute dispatch of the pipeline `key` (built from `source` once).
    fn dispatch(
        &mut self,
        key: &str,
        source: impl FnOnce() -> String,
        params: &[u32],
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
        self.params
            .extend(params.iter().flat_map(|v| v.to_le_bytes()));
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
        if self.pass.is_none() {
            self.pass = Some(
                self.encoder()
                    .begin_compute_pass(&Default::default())
                    .forget_lifetime(),
            );
        }
        let pass = self.pass.as_mut().expect("opened above");
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends what is recorded, with its parameters.
    fn submit(&mut self) {
        if !self.params.is_empty() {
            self.queue.write_buffer(&self.params_buf, 0, &self.params);
            self.params.clear();
        }
        self.pass = None;
        if let Some(enc) = self.encoder.take() {
            self.queue.submit([enc.finish()]);
        }
    }

    /// One matmul dispatch: `ws` (single-part matrices, or one part of a split one) against
    /// the activations at `x`, with the prologue and combination as in matmul.wgsl.
    #[allow(clippy::too_many_arguments)]
    fn matmul_dispatch(
        &mut self,
        x: &Act,
        x_out: Option<u32>,
        residual: Option<(&Act, Option<Vector>)>,
        norm: Option<(Vector, f32)>,
        ws: &[(&Matrix, &Part)],
        mix: Mix,
        outs: &[&Act],
    ) {
        self.prepare();
        let n = x.rows as u32;
        let rows = |i: usize| ws.get(i).map_or(0, |w| w.1.rows);
        let groups = |i: usize| rows(i).div_ceil(ROWS_PER_GROUP);
        let (g1, g2) = match mix {
            Mix::Each => (groups(0), groups(0) + groups(1)),
            Mix::GeluGate | Mix::SiluGate => (groups(0), groups(0)),
        };
        let total = match mix {
            Mix::Each => g2 + groups(2),
            Mix::GeluGate | Mix::SiluGate => groups(0),
        };
        let (gx, gy) = grid(total);
        let (h_off, post) =
            residual.map_or((0, 0), |(h, p)| (h.at(), p.map_or(0, |p| p.off as u32)));
        let bias = |i: usize| {
            ws.get(i)
                .and_then(|w| w.0.bias)
                .map_or(NONE, |b| b.off as u32)
        };
        let (norm_off, eps) = norm.map_or((0, 0.0), |(v, e)| (v.off as u32, e));
        let out = |i: usize| outs.get(i.min(outs.len() - 1));
        let params = [
            n,
            x.width as u32,
            x.at(),
            x_out.unwrap_or(0),
            h_off,
            post,
            norm_off,
            eps.to_bits(),
            gx,
            total as u32,
            g1 as u32,
            g2 as u32,
            rows(0) as u32,
            rows(1) as u32,
            rows(2) as u32,
            ws[0].1.row0 as u32,
            out(0).map_or(0, |o| o.width as u32),
            out(1).map_or(0, |o| o.width as u32),
            out(2).map_or(0, |o| o.width as u32),
            out(0).map_or(0, |o| o.at()),
            out(1).map_or(0, |o| o.at()),
            out(2).map_or(0, |o| o.at()),
            ws[0].0.row_bytes as u32,
            ws.get(1).map_or(0, |w| w.0.row_bytes as u32),
            ws.get(2).map_or(0, |w| w.0.row_bytes as u32),
            bias(0),
            bias(1),
            bias(2),
        ];
        let types: Vec<DType> = ws.iter().map(|w| w.0.dtype).collect();
        let (add, post, normed) = (
            residual.is_some(),
            residual.is_some_and(|r| r.1.is_some()),
            norm.is_some(),
        );
        let tok = if n == 1 { 1 } else { TOK };
        let key = format!("matmul {add} {post} {normed} {mix:?} {types:?} {tok}");
        let (arena, vecs) = (self.arena_buf(), self.vecs_buf());
        let mut buffers = vec![&arena, &vecs];
        buffers.extend(ws.iter().map(|w| &w.1.buf));
        self.dispatch(
            &key,
            || shaders::matmul(&types, add, post, normed, mix, tok),
            &params,
            &buffers,
            (gx, gy, n.div_ceil(tok)),
        );
    }

    /// `out = x̂ · wᵀ` for one matrix of any size: one dispatch per part.
    fn matmul_parts(
        &mut self,
        x: &Act,
        x_out: Option<u32>,
        residual: Option<(&Act, Option<Vector>)>,
        norm: Option<(Vector, f32)>,
        w: &Matrix,
        out: &Act,
    ) {
        for part in &w.parts {
            self.matmul_dispatch(x, x_out, residual, norm, &[(w, part)], Mix::Each, &[out]);
        }
    }
}

fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

impl Backend for Gpu {
    const DEVICE: crate::cost::Device = crate::cost::Device::Gpu;
    type Matrix = Matrix;
    type Vector = Vector;
    type Act = Act;
    type Kv = Kv;

    fn matrix(
        &mut self,
        file: &Arc<ModelBytes>,
        t: &TensorInfo,
        bias: Option<&[f32]>,
    ) -> Result<Matrix> {
        let parts = match self.early.remove(&(t.offset, t.bytes)) {
            Some(parts) => parts,
            None => self.parts(t, file.tensor_bytes(t))?,
        };
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let bias = bias.map(|b| self.vector(b)).transpose()?;
        let row_bytes = t.dims[0] / t.dtype.block() * t.dtype.block_bytes();
        Ok(Matrix {
            dtype: t.dtype,
            cols: t.dims[0],
            row_bytes,
            parts,
            bias,
        })
    }

    fn loaded(&mut self) {
        // Uploaded while streaming but not taken (a fused tensor the model splits).
        self.early.clear();
    }

    fn vector(&mut self, data: &[f32]) -> Result<Vector> {
        let off = self.vecs.host.len();
        if (off + data.len()) as u64 * 4 > self.max_binding {
            bail!(Code::ModelTooLarge, "the model's norm weights and rope tables exceed the GPU's {} MB binding; load it with a smaller contextLength", self.max_binding >> 20);
        }
        self.vecs.host.extend_from_slice(data);
        Ok(Vector { off })
    }

    fn act(&mut self, rows: usize, width: usize) -> Act {
        let off = self.arena.borrow_mut().alloc(2 * rows * width);
        Act {
            off,
            rows,
            width,
            half: 0,
            arena: self.arena.clone(),
        }
    }

    fn kv_cache(&mut self, slots: usize, width: usize) -> Result<Kv> {
        let bytes = (slots * width * 2) as u64;
        if bytes > self.max_binding {
            bail!(Code::ModelTooLarge, "a {slots}-position KV cache exceeds the GPU's {} MB binding; load with a smaller contextLength", self.max_binding >> 20);
        }
        Ok(Kv {
            k: self.storage("k cache", bytes),
            v: self.storage("v cache", bytes),
            width,
            slots,
        })
    }

    fn embed(&mut self, table: &Matrix, ids: &[u32], scale: f32, out: &mut Act) {
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        if self
            .ids_buf
            .as_ref()
            .is_none_or(|b| b.size() < bytes.len() as u64)
        {
            self.ids_buf = Some(self.storage("ids", (bytes.len() as u64).next_power_of_two()));
        }
        let ids_buf = self.ids_buf.clone().unwrap();
        // Ids are written before this submission's commands run: one embed per submission.
        self.upload(&ids_buf, &bytes);
        self.prepare();
        let arena = self.arena_buf();
        let chunks = (table.cols / 32) as u32;
        for part in &table.parts {
            let params = [
                ids.len() as u32,
                table.cols as u32,
                part.row0 as u32,
                part.rows as u32,
                table.row_bytes as u32,
                scale.to_bits(),
                out.at(),
            ];
            let key = format!("embed {:?}", table.dtype);
            self.dispatch(
                &key,
                || shaders::embed(table.dtype),
                &params,
                &[&ids_buf, &part.buf, &arena],
                (chunks.div_ceil(64), ids.len() as u32, 1),
            );
        }
    }

    fn norm_matmul(
        &mut self,
        x: &mut Act,
        residual: Option<(&Act, Option<&Vector>)>,
        norm: &Vector,
        eps: f32,
        ws: &[&Matrix],
        mix: Mix,
        outs: &mut [&mut Act],
    ) {
        let x_out = residual.map(|_| x.other());
        let residual = residual.map(|(h, p)| (h, p.copied()));
        let norm = Some((*norm, eps));
        let outs: Vec<&Act> = outs.iter().map(|o| &**o).collect();
        if ws.iter().all(|w| w.parts.len() == 1) && ws.len() <= 3 {
            let parts: Vec<(&Matrix, &Part)> = ws.iter().map(|w| (*w, &w.parts[0])).collect();
            self.matmul_dispatch(x, x_out, residual, norm, &parts, mix, &outs);
        } else {
            // A split matrix (an output projection larger than one binding) goes part by part.
            if mix != Mix::Each {
                self.fail(Error::new(
                    Code::UnsupportedQuantization,
                    "a gated MLP matrix larger than one GPU binding is not supported",
                ));
                return;
            }
            for (w, out) in ws.iter().zip(&outs) {
                self.matmul_parts(x, x_out, residual, norm, w, out);
            }
        }
        if residual.is_some() {
            x.half = x.rows * x.width - x.half;
        }
    }

    fn matmul(&mut self, w: &Matrix, x: &Act, out: &mut Act) {
        self.matmul_parts(x, None, None, None, w, out);
    }

    fn attention(
        &mut self,
        q: &mut Act,
        k: &Act,
        v: &Act,
        norms: Option<(&Vector, &Vector)>,
        eps: f32,
        rope: &Vector,
        kv: &mut Kv,
        pos0: usize,
        s: AttnShape,
        out: &mut Act,
    ) {
        self.prepare();
        let (arena, vecs) = (self.arena_buf(), self.vecs_buf());
        let n = q.rows as u32;
        let hd = s.head_dim as u32;
        let (qn, kn) = norms.map_or((NONE, NONE), |(q, k)| (q.off as u32, k.off as u32));
        let adjacent = (s.rope == RopeStyle::Adjacent) as u32;
        let params = [
            n,
            pos0 as u32,
            hd,
            s.n_heads as u32,
            s.n_kv_heads as u32,
            q.at(),
            k.at(),
            v.at(),
            qn,
            kn,
            rope.off as u32,
            eps.to_bits(),
            kv.width as u32,
            adjacent,
            kv.slots as u32,
        ];
        self.dispatch(
            "rope",
            shaders::rope,
            &params,
            &[&arena, &vecs, &kv.k, &kv.v],
            ((s.n_heads + 2 * s.n_kv_heads) as u32, n, 1),
        );
        let window = match s.span {
            Span::Global => 0,
            Span::Window(w) => w as u32,
        };
        let params = [
            n,
            pos0 as u32,
            hd,
            s.n_heads as u32,
            (s.n_heads / s.n_kv_heads) as u32,
            kv.width as u32,
            window,
            q.at(),
            out.at(),
            s.scale.to_bits(),
            s.softcap.to_bits(),
            kv.slots as u32,
        ];
        self.dispatch(
            "attention",
            shaders::attention,
            &params,
            &[&arena, &kv.k, &kv.v],
            (s.n_heads as u32, n, 1),
        );
    }

    fn top_k(&mut self, x: &Act, k: usize, temp: f32, out: &mut Act) {
        // Slices of at least 4096 logits, at most 64 of them (the second pass merges 64 × k).
        let n = x.width;
        let groups = n.div_ceil(4096).clamp(1, 64);
        let scratch = self.act(1, groups * (2 * k + 2));
        self.prepare();
        let arena = self.arena_buf();
        let params = [
            n as u32,
            k as u32,
            groups as u32,
            x.at(),
            scratch.at(),
            out.at(),
            temp.to_bits(),
        ];
        self.dispatch(
            "topk slices",
            || shaders::top_k(false),
            &params,
            &[&arena],
            (groups as u32, 1, 1),
        );
        self.dispatch(
            "topk merge",
            || shaders::top_k(true),
            &params,
            &[&arena],
            (1, 1, 1),
        );
    }

    fn softcap(&mut self, x: &mut Act, cap: f32) {
        self.prepare();
        let arena = self.arena_buf();
        let n = (x.rows * x.width) as u32;
        let params = [x.at(), n, cap.to_bits()];
        let (gx, gy) = grid(n.div_ceil(64) as usize);
        self.dispatch("softcap", shaders::softcap, &params, &[&arena], (gx, gy, 1));
    }

    fn last_row(&mut self, x: &Act) -> Act {
        let row = self.act(1, x.width);
        self.prepare();
        let arena = self.arena_buf();
        let params = [
            x.at() + ((x.rows - 1) * x.width) as u32,
            row.at(),
            x.width as u32,
        ];
        self.dispatch(
            "copy",
            shaders::copy,
            &params,
            &[&arena],
            ((x.width as u32).div_ceil(64), 1, 1),
        );
        row
    }

    fn read(&mut self, x: &Act) -> Readback {
        self.prepare();
        let bytes = (x.rows * x.width * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let arena = self.arena_buf();
        self.encoder()
            .copy_buffer_to_buffer(&arena, x.at() as u64 * 4, &staging, 0, bytes);
        self.submit();
        let done = Arc::new(Mutex::new(MapState::default()));
        let d = done.clone();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let mut s = d.lock().unwrap();
            s.result = Some(r.map_err(|e| lost(e.to_string())));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        Box::pin(MapFuture {
            done,
            staging,
            failure: self.failure.clone(),
        })
    }
}

#[derive(Default)]
struct MapState {
    result: Option<Result<()>>,
    waker: Option<std::task::Waker>,
}

/// Resolves when the readback buffer is mapped (at once natively, where `read` waited).
struct MapFuture {
    done: Arc<Mutex<MapState>>,
    staging: wgpu::Buffer,
    failure: Arc<Mutex<Option<Error>>>,
}

impl std::future::Future for MapFuture {
    type Output = Result<Vec<f32>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut s = self.done.lock().unwrap();
        let Some(result) = s.result.take() else {
            s.waker = Some(cx.waker().clone());
            return std::task::Poll::Pending;
        };
        if let Some(e) = self.failure.lock().unwrap().clone() {
            return std::task::Poll::Ready(Err(e));
        }
        std::task::Poll::Ready(result.and_then(|()| {
            let data = self
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| lost(e.to_string()))?;
            let out = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            drop(data);
            self.staging.unmap();
            Ok(out)
        }))
    }
}
