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
//!
//! By job: `device` opens the adapter and watches for errors; `memory` holds the arena,
//! the vectors and the weight buffers; `upload` sends weights as a file arrives;
//! `dispatch` builds pipelines and records dispatches; `kernels` is the `Backend`, each
//! kernel with its parameters (`uniforms`) and source (`shaders`); `readback` maps results.

mod device;
mod dispatch;
mod kernels;
mod memory;
mod readback;
mod shaders;
#[cfg(not(target_arch = "wasm32"))]
mod timing;
mod uniforms;
mod upload;

pub use memory::{Act, Kv, Matrix, Vector};
#[cfg(not(target_arch = "wasm32"))]
pub use timing::{KernelTimes, Times};
pub use upload::StreamingUpload;

use crate::error::{Code, Error};
use memory::{Arena, Part, Vectors};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

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
    /// Weight rows per matmul workgroup in a prefill and in a decode step (`set_group_rows`).
    prefill_rows: u32,
    decode_rows: u32,
    /// Timestamps around each dispatch, for probes (`new_timed`).
    #[cfg(not(target_arch = "wasm32"))]
    timing: Option<timing::Timing>,
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
