//! The narrow kernel interface every backend implements: the CPU (`cpu/`) and WebGPU (`gpu/`).
//!
//! Model files (`src/models/*.rs`) are written once over this trait. An activation is a
//! row-major `[rows × width]` f32 matrix living wherever the backend keeps its data; the
//! model never looks inside one except through `read`. The operations are the steps of a
//! transformer block, each fused as far as a GPU can do it in one dispatch (norms ride in
//! the mat-mul that consumes them), so a decode step stays a few dispatches per layer.

use crate::cost::Device;
use crate::error::Result;
use crate::gguf::TensorInfo;
use crate::weights::ModelBytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// How attention sees one layer's keys: every earlier position, or only the last `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Global,
    Window(usize),
}

/// Which dimensions of a head rotary embedding pairs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// `(i, i + head_dim/2)`: NeoX, Gemma, Qwen, Phi-3.
    Halves,
    /// `(2i, 2i + 1)`: Llama (its GGUF q/k weights are permuted for it).
    Adjacent,
}

/// Shape of one attention call: grouped-query heads over a KV cache.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub span: Span,
    pub rope: RopeStyle,
    /// Multiplies every score `q·k` (1/√head_dim, or 1 when folded into the q norm).
    pub scale: f32,
    /// Scores become `cap · tanh(score / cap)` when `cap > 0` (Gemma 2).
    pub softcap: f32,
}

/// How `norm_matmul` combines its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// `outs[i] = x̂ · wᵢᵀ`.
    Each,
    /// `outs[0] = gelu_tanh(x̂ · w₀ᵀ) ⊙ (x̂ · w₁ᵀ)`: a gated MLP's gate and up projections.
    GeluGate,
    /// `outs[0] = silu(x̂ · w₀ᵀ) ⊙ (x̂ · w₁ᵀ)`: SwiGLU (Llama, Qwen, Phi-3).
    SiluGate,
}

/// Host-side values once the device has them: at once on the CPU, after a buffer map on a
/// GPU (which in a browser needs a turn of the event loop). Owns everything it needs.
pub type Readback = Pin<Box<dyn Future<Output = Result<Vec<f32>>>>>;

pub trait Backend {
    /// Where it computes (for the energy estimate: `cost::Device`).
    const DEVICE: Device;
    /// A weight matrix `[rows × cols]`, kept in its GGUF quantization, with an optional
    /// bias added to its products.
    type Matrix;
    /// An f32 weight vector (norm scales, rope tables).
    type Vector;
    /// Activations `[rows × width]`, f32.
    type Act;
    /// One layer's key/value cache, preallocated: position `p` lives in slot `p % slots`.
    type Kv;

    fn matrix(
        &mut self,
        file: &Arc<ModelBytes>,
        t: &TensorInfo,
        bias: Option<&[f32]>,
    ) -> Result<Self::Matrix>;
    fn vector(&mut self, data: &[f32]) -> Result<Self::Vector>;
    /// The model has taken its weights: whatever was prepared for it and not taken can go.
    fn loaded(&mut self) {}
    /// Runs `pass`, a forward pass of `rows` token rows, in whatever scope the backend wants
    /// around a whole pass (the CPU: its threads ready for a decode step's mat-muls).
    fn around_pass<R>(rows: usize, pass: impl FnOnce() -> R) -> R {
        let _ = rows;
        pass()
    }
    fn act(&mut self, rows: usize, width: usize) -> Self::Act;
    /// A cache of `slots` positions: the context for a global layer; for a sliding one,
    /// its window plus one forward pass's rows (older keys are overwritten as it slides).
    fn kv_cache(&mut self, slots: usize, kv_width: usize) -> Result<Self::Kv>;

    /// `out[i] = table[ids[i]] * scale`, dequantizing single rows only.
    fn embed(&mut self, table: &Self::Matrix, ids: &[u32], scale: f32, out: &mut Self::Act);
    /// First, when `residual = Some((h, post))`, `x += h`, or `x += rms_norm(h) · post` with
    /// a post-norm (the end of the previous block). Then `x̂ = rms_norm(x) · norm` feeds the
    /// matrices `ws`, combined by `mix` into `outs`; `x̂` itself is not kept.
    #[allow(clippy::too_many_arguments)]
    fn norm_matmul(
        &mut self,
        x: &mut Self::Act,
        residual: Option<(&Self::Act, Option<&Self::Vector>)>,
        norm: &Self::Vector,
        eps: f32,
        ws: &[&Self::Matrix],
        mix: Mix,
        outs: &mut [&mut Self::Act],
    );
    /// `out = x · wᵀ`: x is `[n × cols]`, out is `[n × rows]`.
    fn matmul(&mut self, w: &Self::Matrix, x: &Self::Act, out: &mut Self::Act);
    /// Per-head RMS norms of `q` and `k` (when given), rotary embedding in `shape.rope`'s
    /// style at positions `pos0..` from `rope` (`[cos | sin]` of `head_dim/2` angles per
    /// position), the append of `k` and `v` to the cache, then causal attention of `q` over
    /// it into `out`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        q: &mut Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        norms: Option<(&Self::Vector, &Self::Vector)>,
        eps: f32,
        rope: &Self::Vector,
        kv: &mut Self::Kv,
        pos0: usize,
        shape: AttnShape,
        out: &mut Self::Act,
    );
    /// The `k` largest values of the one-row `x` and `ln Σ exp(x / temp)`, into the
    /// `[1 × (2k + 1)]` `out` laid out as `TopLogits::to_row` says: so a decode step reads
    /// back a few hundred bytes instead of every logit.
    fn top_k(&mut self, x: &Self::Act, k: usize, temp: f32, out: &mut Self::Act);
    /// `x = cap · tanh(x / cap)` in place (Gemma 2's final logits).
    fn softcap(&mut self, x: &mut Self::Act, cap: f32);
    /// The last row of `x`, as a new one-row activation.
    fn last_row(&mut self, x: &Self::Act) -> Self::Act;
    /// Copies an activation back to host memory.
    fn read(&mut self, x: &Self::Act) -> Readback;
}
