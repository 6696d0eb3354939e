//! The decoder-only transformer every supported architecture is a variant of: embedding,
//! blocks of (norm → q/k/v → rope → attention → output projection, norm → gated MLP), a
//! final norm and the output projection. What differs between architectures is a `Spec`
//! (hyperparameters and switches), filled in by each architecture's own file from the
//! file's metadata; tensor names are llama.cpp's.

use super::{finish, rope_table, Model, Tap, MAX_ROWS};
use crate::backend::{AttnShape, Backend, Mix, Readback, RopeStyle, Span};
use crate::bail;
use crate::config::Meta;
use crate::cost::{Device, Work};
use crate::error::{Code, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::sampler::Want;
use crate::weights::{expect_tensor, ModelBytes};
use std::sync::Arc;

/// Sliding-window layers: those marked in `layers` attend to the last `window` positions,
/// with their own rope base.
#[derive(Debug, Clone)]
pub struct Sliding {
    pub window: usize,
    pub rope_base: f32,
    pub layers: Vec<bool>,
}

impl Sliding {
    /// The window from `attention.sliding_window`, and which layers slide from
    /// `attention.sliding_window_pattern` (a period `n`: every layer but each `n`-th; or one
    /// flag per layer), else from the architecture's `pattern`.
    pub fn read(
        g: &Gguf,
        layers: usize,
        window: usize,
        pattern: usize,
        rope_base: f32,
    ) -> Result<Self> {
        let m = Meta::new(g)?;
        let key = format!("{}.attention.sliding_window_pattern", m.arch);
        let flags = match g.get(&key) {
            Some(v) if v.as_u64().is_none() => match v
                .as_array()
                .map(|a| a.iter().map(|f| f.as_bool()).collect::<Option<Vec<_>>>())
            {
                Some(Some(f)) if f.len() == layers => f,
                _ => bail!(
                    Code::InvalidMetadata,
                    "{key} should be a period or one flag per layer"
                ),
            },
            _ => {
                let n = m
                    .opt_usize("attention.sliding_window_pattern")?
                    .unwrap_or(pattern)
                    .max(1);
                (0..layers).map(|l| l % n < n - 1).collect()
            }
        };
        Ok(Sliding {
            window: m.opt_usize("attention.sliding_window")?.unwrap_or(window),
            rope_base,
            layers: flags,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context: usize,
    pub eps: f32,
    pub rope: RopeStyle,
    pub rope_base: f32,
    /// Positions are divided by this before rotation (`rope.scaling.type = linear`).
    pub rope_linear: f32,
    pub sliding: Option<Sliding>,
    /// Embeddings are multiplied by this (Gemma: √dim).
    pub embed_scale: f32,
    /// The MLP's gate: `Mix::GeluGate` or `Mix::SiluGate`.
    pub gate: Mix,
    /// RMS norms after attention and after the MLP, before their residual adds (Gemma).
    pub post_norms: bool,
    /// Per-head RMS norms of queries and keys (Gemma 3, Qwen 3).
    pub qk_norms: bool,
    pub q_scale: f32,
    /// `cap · tanh(x / cap)` on attention scores and on the final logits; 0 for none.
    pub attn_softcap: f32,
    pub final_softcap: f32,
}

impl Spec {
    /// The hyperparameters every architecture stores under the same keys, with Llama's
    /// defaults for the switches; an architecture's file changes what differs.
    pub fn read(g: &Gguf, context: usize) -> Result<Self> {
        let m = Meta::new(g)?;
        let dim = m.usize("embedding_length")?;
        let heads = m.usize("attention.head_count")?;
        let kv_heads = m.opt_usize("attention.head_count_kv")?.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            bail!(
                Code::InvalidMetadata,
                "{heads} attention heads cannot share {kv_heads} key/value heads"
            );
        }
        let head_dim = m.opt_usize("attention.key_length")?.unwrap_or(dim / heads);
        if head_dim == 0
            || head_dim % 2 != 0
            || m.opt_usize("attention.value_length")?.unwrap_or(head_dim) != head_dim
        {
            bail!(
                Code::InvalidMetadata,
                "unsupported attention head size {head_dim}"
            );
        }
        if let Some(rot) = m.opt_usize("rope.dimension_count")? {
            if rot != head_dim {
                bail!(Code::UnsupportedArchitecture, "rotary embedding over {rot} of {head_dim} head dimensions (partial rope) is not supported");
            }
        }
        // The vocabulary size is the embedding's row count.
        let vocab = match g.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 && t.dims[0] == dim => t.dims[1],
            Some(t) => bail!(
                Code::InvalidTensor,
                "token_embd.weight has shape {:?}, not [{dim}, vocabulary]",
                t.dims
            ),
            None => bail!(
                Code::MissingTensor,
                "the model file has no token_embd.weight"
            ),
        };
        // Every layer has its own tensors: a count beyond the file's tensors is a lie, caught
        // before anything is allocated per layer.
        let layers = m.usize("block_count")?;
        if layers == 0 || layers > g.tensors.len() {
            bail!(
                Code::InvalidMetadata,
                "{}.block_count is {layers}, but the file has {} tensors",
                m.arch,
                g.tensors.len()
            );
        }
        let rope_linear = match g
            .get(&format!("{}.rope.scaling.type", m.arch))
            .and_then(|v| v.as_str())
        {
            None | Some("none") => 1.0,
            Some("linear") => m
                .opt_f32("rope.scaling.factor")?
                .filter(|f| *f > 0.0)
                .unwrap_or(1.0),
            Some(other) => bail!(
                Code::UnsupportedArchitecture,
                "rope scaling {other:?} is not supported (only linear)"
            ),
        };
        Ok(Spec {
            dim,
            layers,
            heads,
            kv_heads,
            head_dim,
            ffn: m.usize("feed_forward_length")?,
            vocab,
            context: context.min(m.usize("context_length")?).max(1),
            eps: m
                .opt_f32("attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-6),
            rope: RopeStyle::Halves,
            rope_base: m.opt_f32("rope.freq_base")?.unwrap_or(10_000.0),
            rope_linear,
            sliding: None,
            embed_scale: 1.0,
            gate: Mix::SiluGate,
            post_norms: false,
            qk_norms: false,
            q_scale: (head_dim as f32).sqrt().recip(),
            attn_softcap: 0.0,
            final_softcap: 0.0,
        })
    }

    /// Gemma scales queries by `query_pre_attn_scalar`^-½, a value GGUF files do not carry.
    /// llama.cpp uses the head size, but for the 27B models the width per head, and tells
    /// a 27B by its layer count (`layers_27b`); so does this, to compute what it computes.
    pub fn gemma_query_scale(&mut self, layers_27b: usize) {
        let per_head = if self.layers == layers_27b {
            self.dim / self.heads
        } else {
            self.head_dim
        };
        self.q_scale = (per_head as f32).sqrt().recip();
    }

    fn span(&self, layer: usize) -> Span {
        match &self.sliding {
            Some(s) if s.layers[layer] => Span::Window(s.window),
            _ => Span::Global,
        }
    }
}

struct Layer<B: Backend> {
    attn_norm: B::Vector,
    q: B::Matrix,
    k: B::Matrix,
    v: B::Matrix,
    qk_norms: Option<(B::Vector, B::Vector)>,
    o: B::Matrix,
    post_attn_norm: Option<B::Vector>,
    ffn_norm: B::Vector,
    gate: B::Matrix,
    up: B::Matrix,
    down: B::Matrix,
    post_ffn_norm: Option<B::Vector>,
    span: Span,
}

pub struct Transformer<B: Backend> {
    spec: Spec,
    b: B,
    embed: B::Matrix,
    out_norm: B::Vector,
    /// The output projection, or `None` when it is tied to the embedding.
    output: Option<B::Matrix>,
    layers: Vec<Layer<B>>,
    /// One cache per layer, apart from the weights so a step can read one and write the other.
    kv: Vec<B::Kv>,
    rope_global: B::Vector,
    /// The sliding-window layers' table, when their rope base differs.
    rope_local: Option<B::Vector>,
    tally: Tally,
    /// What every forward pass so far read and computed.
    work: Work,
    /// The debug hook that receives intermediates (`Model::set_tap`).
    tap: Option<Tap>,
}

/// What `h` holds as one step of the forward pass ends: nothing to add yet, or a block's
/// output, which the next norm_matmul adds to the residual stream `x` (after the block's
/// post-norm, where the model has one) as it norms it.
#[derive(Clone, Copy)]
enum Pending<'a, V> {
    Nothing,
    BlockOutput { post_norm: Option<&'a V> },
}

impl<'a, V> Pending<'a, V> {
    /// The residual argument of `Backend::norm_matmul`.
    fn residual<'h, A>(self, h: &'h A) -> Option<(&'h A, Option<&'a V>)> {
        match self {
            Pending::Nothing => None,
            Pending::BlockOutput { post_norm } => Some((h, post_norm)),
        }
    }
}

/// Hands `x` (rows of `width`) to the tap under llama.cpp's name for it: `name-layer`, or
/// `name` alone for a tensor outside the layers. Reading it back waits for the backend.
fn tap_out<B: Backend>(
    tap: &mut Option<Tap>,
    b: &mut B,
    name: &str,
    layer: Option<usize>,
    width: usize,
    x: &B::Act,
) {
    tap_scaled(tap, b, name, layer, width, x, 1.0);
}

/// `tap_out` of `x · times`, for a tensor that holds a scale llama.cpp applies later.
fn tap_scaled<B: Backend>(
    tap: &mut Option<Tap>,
    b: &mut B,
    name: &str,
    layer: Option<usize>,
    width: usize,
    x: &B::Act,
    times: f32,
) {
    let Some(tap) = tap else { return };
    let name = match layer {
        Some(l) => format!("{name}-{l}"),
        None => name.to_owned(),
    };
    // A failed read reaches the caller through the pass's own result.
    if let Ok(mut values) = crate::engine::block_on(b.read(x)) {
        if times != 1.0 {
            values.iter_mut().for_each(|v| *v *= times);
        }
        tap(&name, width, values);
    }
}

/// What a forward pass reads and computes, from the file's tensor sizes.
struct Tally {
    /// Every block's tensors (matrices, norms, biases), read once per pass.
    block_bytes: u64,
    /// Multiply-adds per token in the blocks' matrices.
    block_macs: u64,
    embed_row_bytes: u64,
    /// The final norm and the output projection, read when a pass returns logits.
    output_bytes: u64,
}

impl Tally {
    fn new(g: &Gguf, s: &Spec) -> Self {
        let blocks = || g.tensors.iter().filter(|t| t.name.starts_with("blk."));
        let bytes = |name: &str| g.tensor(name).map_or(0, |t| t.bytes as u64);
        Tally {
            block_bytes: blocks().map(|t| t.bytes as u64).sum(),
            block_macs: blocks()
                .filter(|t| t.dims.len() == 2)
                .map(|t| t.elements() as u64)
                .sum(),
            embed_row_bytes: bytes("token_embd.weight") / s.vocab as u64,
            output_bytes: bytes("output_norm.weight")
                + match g.tensor("output.weight") {
                    Some(t) => t.bytes as u64,
                    None => bytes("token_embd.weight"),
                },
        }
    }

    /// `n` tokens at `pos0..` through layers attending over `spans`, with logits for
    /// `logit_rows` of them.
    fn pass(
        &self,
        s: &Spec,
        spans: impl Iterator<Item = Span>,
        n: usize,
        pos0: usize,
        logit_rows: usize,
    ) -> Work {
        if n == 0 {
            return Work::default();
        }
        let kv_width = (s.kv_heads * s.head_dim) as u64;
        let (mut keys_read, mut scores) = (0, 0);
        for span in spans {
            let limit = match span {
                Span::Global => usize::MAX,
                Span::Window(w) => w,
            };
            // Each query attends to the keys up to its own position, within its window;
            // a layer's pass reads each of those keys (and values) once.
            keys_read += (pos0 + n).min(limit.saturating_add(n - 1)) as u64;
            scores += (0..n)
                .map(|i| (pos0 + i + 1).min(limit) as u64)
                .sum::<u64>();
        }
        let (n, logit_rows) = (n as u64, logit_rows as u64);
        let vocab_macs = s.vocab as u64 * s.dim as u64;
        Work {
            weight_bytes: self.block_bytes
                + n * self.embed_row_bytes
                + if logit_rows > 0 { self.output_bytes } else { 0 },
            // f16 keys and values: those read, and the pass's own written.
            cache_bytes: (keys_read + n * s.layers as u64) * kv_width * 4,
            // q·k and the weighted sum of values, per head.
            multiply_adds: n * self.block_macs
                + logit_rows * vocab_macs
                + scores * 2 * (s.heads * s.head_dim) as u64,
        }
    }
}

/// Rows `rows` of a 2-D tensor as a tensor of its own (rows are contiguous in GGUF), for
/// fused matrices: Phi-3's `attn_qkv` and its gate-and-up `ffn_up`.
fn row_range(t: &TensorInfo, rows: std::ops::Range<usize>) -> TensorInfo {
    let row_bytes = t.bytes / t.dims[1];
    TensorInfo {
        name: format!("{}[{}..{}]", t.name, rows.start, rows.end),
        dims: vec![t.dims[0], rows.len()],
        dtype: t.dtype,
        offset: t.offset + rows.start * row_bytes,
        bytes: rows.len() * row_bytes,
    }
}

impl<B: Backend> Transformer<B> {
    pub fn load(mut b: B, spec: Spec, g: &Gguf, file: &Arc<ModelBytes>) -> Result<Self> {
        let s = &spec;
        let (d, hd, ffn) = (s.dim, s.head_dim, s.ffn);
        let (qw, kvw) = (s.heads * hd, s.kv_heads * hd);
        let vector = |b: &mut B, name: &str, len: usize| -> Result<B::Vector> {
            b.vector(&file.f32_values(expect_tensor(g, name, &[len])?)?)
        };
        let bias = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            match g.tensor(name) {
                Some(_) => Ok(Some(file.f32_values(expect_tensor(g, name, &[len])?)?)),
                None => Ok(None),
            }
        };
        let matrix = |b: &mut B, t: &TensorInfo, bias_name: &str| -> Result<B::Matrix> {
            b.matrix(file, t, bias(bias_name, t.dims[1])?.as_deref())
        };

        let embed = b.matrix(
            file,
            expect_tensor(g, "token_embd.weight", &[d, s.vocab])?,
            None,
        )?;
        let out_norm = vector(&mut b, "output_norm.weight", d)?;
        let output = match g.tensor("output.weight") {
            Some(_) => Some(b.matrix(
                file,
                expect_tensor(g, "output.weight", &[d, s.vocab])?,
                None,
            )?),
            None => None,
        };
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let p = |name: &str| format!("blk.{i}.{name}");
            let (q, k, v) = match g.tensor(&p("attn_qkv.weight")) {
                Some(_) => {
                    let t = expect_tensor(g, &p("attn_qkv.weight"), &[d, qw + 2 * kvw])?;
                    let b_qkv = bias(&p("attn_qkv.bias"), qw + 2 * kvw)?;
                    let part = |b: &mut B, rows: std::ops::Range<usize>| {
                        b.matrix(
                            file,
                            &row_range(t, rows.clone()),
                            b_qkv.as_ref().map(|v| &v[rows]),
                        )
                    };
                    (
                        part(&mut b, 0..qw)?,
                        part(&mut b, qw..qw + kvw)?,
                        part(&mut b, qw + kvw..qw + 2 * kvw)?,
                    )
                }
                None => (
                    matrix(
                        &mut b,
                        expect_tensor(g, &p("attn_q.weight"), &[d, qw])?,
                        &p("attn_q.bias"),
                    )?,
                    matrix(
                        &mut b,
                        expect_tensor(g, &p("attn_k.weight"), &[d, kvw])?,
                        &p("attn_k.bias"),
                    )?,
                    matrix(
                        &mut b,
                        expect_tensor(g, &p("attn_v.weight"), &[d, kvw])?,
                        &p("attn_v.bias"),
                    )?,
                ),
            };
            // With q/k norms, the query scale folds into the q-norm weights (rope is linear):
            // one multiply fewer per score.
            let qk_norms = if s.qk_norms {
                let w = file.f32_values(expect_tensor(g, &p("attn_q_norm.weight"), &[hd])?)?;
                let qn = b.vector(&w.iter().map(|x| x * s.q_scale).collect::<Vec<_>>())?;
                Some((qn, vector(&mut b, &p("attn_k_norm.weight"), hd)?))
            } else {
                None
            };
            let (gate, up) = match g.tensor(&p("ffn_gate.weight")) {
                Some(_) => (
                    b.matrix(
                        file,
                        expect_tensor(g, &p("ffn_gate.weight"), &[d, ffn])?,
                        None,
                    )?,
                    b.matrix(
                        file,
                        expect_tensor(g, &p("ffn_up.weight"), &[d, ffn])?,
                        None,
                    )?,
                ),
                // Gate and up in one matrix, the gate's rows first (llama.cpp's SwiGLU split).
                None => {
                    let t = expect_tensor(g, &p("ffn_up.weight"), &[d, 2 * ffn])?;
                    (
                        b.matrix(file, &row_range(t, 0..ffn), None)?,
                        b.matrix(file, &row_range(t, ffn..2 * ffn), None)?,
                    )
                }
            };
            let post = |b: &mut B, name: &str| -> Result<Option<B::Vector>> {
                if s.post_norms {
                    vector(b, &p(name), d).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: vector(&mut b, &p("attn_norm.weight"), d)?,
                q,
                k,
                v,
                qk_norms,
                o: matrix(
                    &mut b,
                    expect_tensor(g, &p("attn_output.weight"), &[qw, d])?,
                    &p("attn_output.bias"),
                )?,
                post_attn_norm: post(&mut b, "post_attention_norm.weight")?,
                ffn_norm: vector(&mut b, &p("ffn_norm.weight"), d)?,
                gate,
                up,
                down: b.matrix(
                    file,
                    expect_tensor(g, &p("ffn_down.weight"), &[ffn, d])?,
                    None,
                )?,
                post_ffn_norm: post(&mut b, "post_ffw_norm.weight")?,
                span: s.span(i),
            });
        }
        // A sliding layer keeps its window and one forward pass's keys: those a pass writes
        // never overwrite keys that one of its queries still reads.
        let slots = |span| match span {
            Span::Global => s.context,
            Span::Window(w) => s.context.min(w + MAX_ROWS - 1),
        };
        let kv = layers
            .iter()
            .map(|l| b.kv_cache(slots(l.span), kvw))
            .collect::<Result<_>>()?;
        // Llama 3's per-frequency divisors, when the file has them.
        let factors = match g.tensor("rope_freqs.weight") {
            Some(_) => Some(file.f32_values(expect_tensor(g, "rope_freqs.weight", &[hd / 2])?)?),
            None => None,
        };
        let table = |base: f32| rope_table(base, hd, s.context, s.rope_linear, factors.as_deref());
        let rope_global = b.vector(&table(s.rope_base))?;
        let rope_local = match &s.sliding {
            Some(sl) if sl.rope_base != s.rope_base => Some(b.vector(&table(sl.rope_base))?),
            _ => None,
        };
        b.loaded();
        Ok(Transformer {
            tally: Tally::new(g, &spec),
            work: Work::default(),
            spec,
            b,
            embed,
            out_norm,
            output,
            layers,
            kv,
            rope_global,
            rope_local,
            tap: None,
        })
    }
}

impl<B: Backend> Model for Transformer<B> {
    fn forward(&mut self, ids: &[u32], pos0: usize, want: Want) -> Readback {
        B::around_pass(ids.len(), || self.pass(ids, pos0, want))
    }

    fn context(&self) -> usize {
        self.spec.context
    }

    fn work(&self) -> Work {
        self.work
    }

    fn device(&self) -> Device {
        B::DEVICE
    }

    fn vocab(&self) -> usize {
        self.spec.vocab
    }

    fn set_tap(&mut self, tap: Option<Tap>) {
        self.tap = tap;
    }
}

impl<B: Backend> Transformer<B> {
    fn pass(&mut self, ids: &[u32], pos0: usize, want: Want) -> Readback {
        let s = &self.spec;
        let b = &mut self.b;
        let n = ids.len();
        assert!(n <= MAX_ROWS, "a forward pass of {n} rows: the sliding layers' caches hold one pass of at most {MAX_ROWS} beyond their window");
        let logit_rows = match want {
            Want::Nothing => 0,
            Want::Rows => n,
            _ => 1,
        };
        let spans = self.layers.iter().map(|l| l.span);
        self.work = self.work + self.tally.pass(s, spans, n, pos0, logit_rows);
        let (d, hd) = (s.dim, s.head_dim);
        let mut x = b.act(n, d);
        b.embed(&self.embed, ids, s.embed_scale, &mut x);

        let mut h = b.act(n, d);
        let mut q = b.act(n, s.heads * hd);
        let mut k = b.act(n, s.kv_heads * hd);
        let mut v = b.act(n, s.kv_heads * hd);
        let mut attn = b.act(n, s.heads * hd);
        let mut gate = b.act(n, s.ffn);
        let tap = &mut self.tap;
        // The residual add of a layer's output happens in the next layer's first norm_matmul
        // (or the output's): that is where the layer's `l_out` exists.
        let mut pending = Pending::Nothing;
        for (il, (l, kv)) in self.layers.iter().zip(&mut self.kv).enumerate() {
            let rope = match (&self.rope_local, l.span) {
                (Some(local), Span::Window(_)) => local,
                _ => &self.rope_global,
            };
            b.norm_matmul(
                &mut x,
                pending.residual(&h),
                &l.attn_norm,
                s.eps,
                &[&l.q, &l.k, &l.v],
                Mix::Each,
                &mut [&mut q, &mut k, &mut v],
            );
            if let Some(before) = il.checked_sub(1) {
                tap_out(tap, b, "l_out", Some(before), d, &x);
            }
            tap_out(tap, b, "Vcur", Some(il), s.kv_heads * hd, &v);
            let scale = if s.qk_norms { 1.0 } else { s.q_scale };
            let shape = AttnShape {
                n_heads: s.heads,
                n_kv_heads: s.kv_heads,
                head_dim: hd,
                span: l.span,
                rope: s.rope,
                scale,
                softcap: s.attn_softcap,
            };
            b.attention(
                &mut q,
                &k,
                &v,
                l.qk_norms.as_ref().map(|(a, b)| (a, b)),
                s.eps,
                rope,
                kv,
                pos0,
                shape,
                &mut attn,
            );
            // q is roped in place, as llama.cpp's last `Qcur`; with q/k norms it also holds
            // the score scale (folded into the q norm's weights), which llama.cpp applies after.
            let q_scale = if s.qk_norms { s.q_scale } else { 1.0 };
            tap_scaled(tap, b, "Qcur", Some(il), s.heads * hd, &q, q_scale.recip());
            tap_out(tap, b, "kqv_out", Some(il), s.heads * hd, &attn);
            b.matmul(&l.o, &attn, &mut h);
            b.norm_matmul(
                &mut x,
                Some((&h, l.post_attn_norm.as_ref())),
                &l.ffn_norm,
                s.eps,
                &[&l.gate, &l.up],
                s.gate,
                &mut [&mut gate],
            );
            // The residual stream after attention: llama.cpp's Gemma graphs call it `sa_out`.
            let sa = if s.post_norms { "sa_out" } else { "ffn_inp" };
            tap_out(tap, b, sa, Some(il), d, &x);
            b.matmul(&l.down, &gate, &mut h);
            tap_out(tap, b, "ffn_out", Some(il), d, &h);
            pending = Pending::BlockOutput {
                post_norm: l.post_ffn_norm.as_ref(),
            };
        }
        // Only the last position's logits are needed, unless a text is being scored.
        let (mut last, h_last, rows) = if want == Want::Rows {
            (x, h, n)
        } else {
            (b.last_row(&x), b.last_row(&h), 1)
        };
        let (output, out_norm) = (self.output.as_ref().unwrap_or(&self.embed), &self.out_norm);
        let last_layer = s.layers - 1;
        finish(b, &mut last, rows, s.vocab, want, |b, last, logits| {
            b.norm_matmul(
                last,
                pending.residual(&h_last),
                out_norm,
                s.eps,
                &[output],
                Mix::Each,
                &mut [logits],
            );
            tap_out(tap, b, "l_out", Some(last_layer), d, last);
            if s.final_softcap > 0.0 {
                b.softcap(logits, s.final_softcap);
            }
            tap_out(tap, b, "result_output", None, s.vocab, logits);
        })
    }
}
