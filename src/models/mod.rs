//! One file per architecture, each written once over `backend::Backend`.

pub mod gemma2;
pub mod gemma3;
pub mod llama;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod transformer;

use crate::backend::{Backend, Readback};
use crate::bail;
use crate::cost::{Device, Work};
use crate::error::{Code, Result};
use crate::gguf::Gguf;
use crate::sampler::Want;
use crate::weights::ModelBytes;
use std::sync::Arc;

/// A loaded network: token ids at positions `pos0..` in, next-token logits out.
pub trait Model {
    /// Runs `ids` (placed at `pos0..pos0+len`, at most `MAX_ROWS` of them); what `want`
    /// asks of the logits after the last one arrives through the returned future (at once
    /// on the CPU).
    fn forward(&mut self, ids: &[u32], pos0: usize, want: Want) -> Readback;
    /// Positions the KV cache holds.
    fn context(&self) -> usize;
    fn vocab(&self) -> usize;
    /// What every forward pass so far read and computed (a failed pass's included).
    fn work(&self) -> Work;
    fn device(&self) -> Device;
    /// Sets the debug hook that receives each forward pass's intermediates (`Tap`), or
    /// removes it. Each one is read back as it is made: a tool's speed, not a page's.
    fn set_tap(&mut self, tap: Option<Tap>);
}

/// A debug hook on the forward pass: called with each intermediate by llama.cpp's name for
/// it (`Vcur-0`, `Qcur-0` after rope, `kqv_out-0`, `sa_out-0` or `ffn_inp-0`, `ffn_out-0`,
/// `l_out-0`, ..., `result_output`), its row width and its values (rows are positions), so
/// that `tests/tools/llama_tensors.py` can compare the two layer by layer.
pub type Tap = Box<dyn FnMut(&str, usize, Vec<f32>)>;

/// The most tokens one forward pass takes: the engine feeds a prompt in slices of this
/// many. A sliding-window layer's cache holds its window plus one slice.
pub const MAX_ROWS: usize = 256;

pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["gemma3", "gemma2", "llama", "qwen2", "qwen3", "phi3"];

/// Builds the model named by `general.architecture` on backend `b`.
pub fn load<B: Backend + 'static>(
    b: B,
    g: &Gguf,
    file: &Arc<ModelBytes>,
    context: usize,
) -> Result<Box<dyn Model>> {
    let arch = g
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let spec = match arch {
        "gemma3" => gemma3::spec(g, context)?,
        "gemma2" => gemma2::spec(g, context)?,
        "llama" => llama::spec(g, context)?,
        "qwen2" => qwen2::spec(g, context)?,
        "qwen3" => qwen3::spec(g, context)?,
        "phi3" => phi3::spec(g, context)?,
        other => bail!(
            Code::UnsupportedArchitecture,
            "the model's architecture {other:?} is not supported (supported: {})",
            SUPPORTED_ARCHITECTURES.join(", ")
        ),
    };
    Ok(Box::new(transformer::Transformer::load(b, spec, g, file)?))
}

/// Reads back what `want` asks of the final hidden row `last` and the `logits` computed by `project`
/// (skipped for `Want::Nothing`, where reading `last` only marks the forward as done).
pub fn finish<B: Backend>(
    b: &mut B,
    last: &mut B::Act,
    rows: usize,
    vocab: usize,
    want: Want,
    project: impl FnOnce(&mut B, &mut B::Act, &mut B::Act),
) -> Readback {
    if want == Want::Nothing {
        return b.read(last);
    }
    let mut logits = b.act(rows, vocab);
    project(b, last, &mut logits);
    match want {
        Want::Top { k, temp } => {
            let mut top = b.act(1, 2 * k + 1);
            b.top_k(&logits, k, temp, &mut top);
            b.read(&top)
        }
        _ => b.read(&logits),
    }
}

/// Rotary angles for positions `0..context`: per position `[cos | sin]` of `head_dim/2`
/// frequencies, built as ggml does (θ multiplied by base^(−2/d) step by step, in f32), the
/// position divided by `linear` and frequency `i`'s angle by `factors[i]` when given.
pub fn rope_table(
    base: f32,
    head_dim: usize,
    context: usize,
    linear: f32,
    factors: Option<&[f32]>,
) -> Vec<f32> {
    let half = head_dim / 2;
    let step = base.powf(-2.0 / head_dim as f32);
    let mut t = vec![0f32; context * head_dim];
    for (p, row) in t.chunks_exact_mut(head_dim).enumerate() {
        let mut theta = p as f32;
        for i in 0..half {
            let angle = theta / linear / factors.map_or(1.0, |f| f[i]);
            row[i] = angle.cos();
            row[half + i] = angle.sin();
            theta *= step;
        }
    }
    t
}
