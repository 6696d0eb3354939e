//! The narrow kernel interface every backend implements (CPU now, WebGPU next).
//!
//! Model files (`src/models/*.rs`) are written once over this trait. An activation is a
//! row-major `[rows × width]` f32 matrix living wherever the backend keeps its data; the
//! model never looks inside one except through `read`.

use crate::error::Result;
use crate::gguf::TensorInfo;
use crate::weights::ModelBytes;
use std::sync::Arc;

/// How attention sees one layer's keys: every earlier position, or only the last `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Global,
    Window(usize),
}

/// Shape of one attention call: grouped-query heads over a KV cache.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub span: Span,
}

pub trait Backend {
    /// A weight matrix `[rows × cols]`, kept in its GGUF quantization.
    type Matrix;
    /// An f32 weight vector (norm scales).
    type Vector;
    /// Activations `[rows × width]`, f32.
    type Act;
    /// One layer's key/value cache, preallocated for the whole context.
    type Kv;

    fn matrix(&mut self, file: &Arc<ModelBytes>, t: &TensorInfo) -> Result<Self::Matrix>;
    fn vector(&mut self, data: &[f32]) -> Self::Vector;
    fn act(&mut self, rows: usize, width: usize) -> Self::Act;
    fn kv_cache(&mut self, context: usize, kv_width: usize) -> Self::Kv;

    /// `out[i] = table[ids[i]] * scale`, dequantizing single rows only.
    fn embed(&mut self, table: &Self::Matrix, ids: &[u32], scale: f32, out: &mut Self::Act);
    /// `out = x · wᵀ`: x is `[n × cols]`, out is `[n × rows]`.
    fn matmul(&mut self, w: &Self::Matrix, x: &Self::Act, out: &mut Self::Act);
    /// RMS norm over consecutive groups of `w.len()` values (a row, or one head), times `w`.
    fn rms_norm(&mut self, x: &mut Self::Act, w: &Self::Vector, eps: f32);
    /// `out = rms_norm(x) * w`, leaving `x` as it is.
    fn rms_norm_to(&mut self, x: &Self::Act, w: &Self::Vector, eps: f32, out: &mut Self::Act);
    /// Rotary embedding (NeoX halves) of every head in `x` at positions `pos0..pos0+rows`;
    /// `table` holds `[cos | sin]` of `head_dim/2` angles per position.
    fn rope(&mut self, x: &mut Self::Act, head_dim: usize, pos0: usize, table: &Self::Vector);
    /// Appends `k`, `v` at `pos0..` to the cache, then causal attention of `q` over it.
    #[allow(clippy::too_many_arguments)]
    fn attention(&mut self, q: &Self::Act, k: &Self::Act, v: &Self::Act, kv: &mut Self::Kv, pos0: usize, shape: AttnShape, out: &mut Self::Act);
    /// `gate = gelu_tanh(gate) * up`.
    fn gelu_mul(&mut self, gate: &mut Self::Act, up: &Self::Act);
    /// `x += y`.
    fn add(&mut self, x: &mut Self::Act, y: &Self::Act);
    /// The last row of `x`, as a new one-row activation.
    fn last_row(&mut self, x: &Self::Act) -> Self::Act;
    /// Copies an activation back to host memory.
    fn read(&mut self, x: &Self::Act) -> Vec<f32>;
}
