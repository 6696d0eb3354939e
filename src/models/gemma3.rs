//! Gemma 3 (text): pre- and post-norms around attention and the GELU-gated MLP, q/k norms,
//! five sliding-window layers for each global one with their own rope bases, embeddings
//! scaled by √d, and the output projection tied to the embedding.
//!
//! Norm weights in GGUF already include Gemma's "+1" (llama.cpp adds it at conversion).

use super::{finish, rope_table, Model};
use crate::backend::{AttnShape, Backend, Mix, Readback, Span};
use crate::config::Meta;
use crate::error::Result;
use crate::gguf::Gguf;
use crate::sampler::Want;
use crate::weights::{expect_tensor, ModelBytes};
use std::sync::Arc;

/// Gemma 3 interleaves five sliding-window layers with one global layer.
const SLIDING_PATTERN: usize = 6;
/// Rope base of the sliding-window layers when the file does not say (llama.cpp's default).
const LOCAL_ROPE_BASE: f32 = 10_000.0;

#[derive(Debug, Clone)]
pub struct Config {
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub eps: f32,
    pub window: usize,
    pub rope_global: f32,
    pub rope_local: f32,
    pub vocab: usize,
    pub context: usize,
}

impl Config {
    pub fn read(g: &Gguf, context: usize) -> Result<Self> {
        let m = Meta::new(g)?;
        let dim = m.usize("embedding_length")?;
        let heads = m.usize("attention.head_count")?;
        let kv_heads = m.usize("attention.head_count_kv")?;
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            crate::bail!("invalid_metadata", "{heads} attention heads cannot share {kv_heads} key/value heads");
        }
        let head_dim = m.opt_usize("attention.key_length")?.unwrap_or(dim / heads);
        if head_dim == 0 || head_dim % 2 != 0 || m.opt_usize("attention.value_length")?.unwrap_or(head_dim) != head_dim {
            crate::bail!("invalid_metadata", "unsupported attention head size {head_dim}");
        }
        // The vocabulary size is the embedding's row count.
        let vocab = match g.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 && t.dims[0] == dim => t.dims[1],
            Some(t) => crate::bail!("invalid_tensor", "token_embd.weight has shape {:?}, not [{dim}, vocabulary]", t.dims),
            None => crate::bail!("missing_tensor", "the model file has no token_embd.weight"),
        };
        let trained = m.usize("context_length")?;
        // Every layer has its own tensors: a count beyond the file's tensors is a lie, caught
        // before anything is allocated per layer.
        let layers = m.usize("block_count")?;
        if layers == 0 || layers > g.tensors.len() {
            crate::bail!("invalid_metadata", "gemma3.block_count is {layers}, but the file has {} tensors", g.tensors.len());
        }
        Ok(Config {
            dim,
            layers,
            heads,
            kv_heads,
            head_dim,
            ffn: m.usize("feed_forward_length")?,
            eps: m.opt_f32("attention.layer_norm_rms_epsilon")?.unwrap_or(1e-6),
            window: m.opt_usize("attention.sliding_window")?.unwrap_or(512),
            rope_global: m.opt_f32("rope.freq_base")?.unwrap_or(1_000_000.0),
            rope_local: m.opt_f32("rope.freq_base_swa")?.unwrap_or(LOCAL_ROPE_BASE),
            vocab,
            context: context.min(trained).max(1),
        })
    }

    fn span(&self, layer: usize) -> Span {
        if layer % SLIDING_PATTERN < SLIDING_PATTERN - 1 {
            Span::Window(self.window)
        } else {
            Span::Global
        }
    }
}

struct Layer<B: Backend> {
    attn_norm: B::Vector,
    q: B::Matrix,
    k: B::Matrix,
    v: B::Matrix,
    q_norm: B::Vector,
    k_norm: B::Vector,
    o: B::Matrix,
    post_attn_norm: B::Vector,
    ffn_norm: B::Vector,
    gate: B::Matrix,
    up: B::Matrix,
    down: B::Matrix,
    post_ffn_norm: B::Vector,
    span: Span,
}

pub struct Gemma3<B: Backend> {
    cfg: Config,
    b: B,
    embed: B::Matrix,
    out_norm: B::Vector,
    layers: Vec<Layer<B>>,
    /// One cache per layer, apart from the weights so a step can read one and write the other.
    kv: Vec<B::Kv>,
    rope_global: B::Vector,
    rope_local: B::Vector,
}

impl<B: Backend> Gemma3<B> {
    pub fn load(mut b: B, g: &Gguf, file: &Arc<ModelBytes>, context: usize) -> Result<Self> {
        let cfg = Config::read(g, context)?;
        let (d, hd, ffn) = (cfg.dim, cfg.head_dim, cfg.ffn);
        let (qw, kvw) = (cfg.heads * hd, cfg.kv_heads * hd);
        let matrix = |b: &mut B, name: String, dims: &[usize]| -> Result<B::Matrix> { b.matrix(file, expect_tensor(g, &name, dims)?) };
        let vector = |b: &mut B, name: String, len: usize| -> Result<B::Vector> { b.vector(&file.f32_values(expect_tensor(g, &name, &[len])?)?) };

        // Gemma scales queries by 1/√head_dim (query_pre_attn_scalar). Rope is linear, so the
        // scale folds into the q-norm weights: one multiply fewer per token.
        let q_scale = (hd as f32).sqrt().recip();
        let q_norm = |b: &mut B, name: String| -> Result<B::Vector> {
            let w = file.f32_values(expect_tensor(g, &name, &[hd])?)?;
            b.vector(&w.iter().map(|x| x * q_scale).collect::<Vec<_>>())
        };
        let embed = matrix(&mut b, "token_embd.weight".into(), &[d, cfg.vocab])?;
        let out_norm = vector(&mut b, "output_norm.weight".into(), d)?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector(&mut b, p("attn_norm"), d)?,
                q: matrix(&mut b, p("attn_q"), &[d, qw])?,
                k: matrix(&mut b, p("attn_k"), &[d, kvw])?,
                v: matrix(&mut b, p("attn_v"), &[d, kvw])?,
                q_norm: q_norm(&mut b, p("attn_q_norm"))?,
                k_norm: vector(&mut b, p("attn_k_norm"), hd)?,
                o: matrix(&mut b, p("attn_output"), &[qw, d])?,
                post_attn_norm: vector(&mut b, p("post_attention_norm"), d)?,
                ffn_norm: vector(&mut b, p("ffn_norm"), d)?,
                gate: matrix(&mut b, p("ffn_gate"), &[d, ffn])?,
                up: matrix(&mut b, p("ffn_up"), &[d, ffn])?,
                down: matrix(&mut b, p("ffn_down"), &[ffn, d])?,
                post_ffn_norm: vector(&mut b, p("post_ffw_norm"), d)?,
                span: cfg.span(i),
            });
        }
        let kv = (0..cfg.layers).map(|_| b.kv_cache(cfg.context, kvw)).collect::<Result<_>>()?;
        let rope_global = b.vector(&rope_table(cfg.rope_global, hd, cfg.context))?;
        let rope_local = b.vector(&rope_table(cfg.rope_local, hd, cfg.context))?;
        Ok(Gemma3 { cfg, b, embed, out_norm, layers, kv, rope_global, rope_local })
    }
}

impl<B: Backend> Model for Gemma3<B> {
    fn forward(&mut self, ids: &[u32], pos0: usize, want: Want) -> Readback {
        let c = &self.cfg;
        let b = &mut self.b;
        let n = ids.len();
        let (d, hd) = (c.dim, c.head_dim);
        let mut x = b.act(n, d);
        b.embed(&self.embed, ids, (d as f32).sqrt(), &mut x);

        let mut h = b.act(n, d);
        let mut q = b.act(n, c.heads * hd);
        let mut k = b.act(n, c.kv_heads * hd);
        let mut v = b.act(n, c.kv_heads * hd);
        let mut attn = b.act(n, c.heads * hd);
        let mut gate = b.act(n, c.ffn);
        // The previous layer's MLP output waits in `h` for its post-norm and residual add,
        // which ride in the next norm_matmul.
        let mut post_ffn: Option<&B::Vector> = None;
        for (l, kv) in self.layers.iter().zip(&mut self.kv) {
            let rope = if l.span == Span::Global { &self.rope_global } else { &self.rope_local };
            b.norm_matmul(&mut x, post_ffn.map(|p| (&h, p)), &l.attn_norm, c.eps, &[&l.q, &l.k, &l.v], Mix::Each, &mut [&mut q, &mut k, &mut v]);
            let shape = AttnShape { n_heads: c.heads, n_kv_heads: c.kv_heads, head_dim: hd, span: l.span };
            b.attention(&mut q, &k, &v, (&l.q_norm, &l.k_norm), c.eps, rope, kv, pos0, shape, &mut attn);
            b.matmul(&l.o, &attn, &mut h);
            b.norm_matmul(&mut x, Some((&h, &l.post_attn_norm)), &l.ffn_norm, c.eps, &[&l.gate, &l.up], Mix::GeluGate, &mut [&mut gate]);
            b.matmul(&l.down, &gate, &mut h);
            post_ffn = Some(&l.post_ffn_norm);
        }
        // Only the last position's logits are needed.
        let (mut last, h_last) = (b.last_row(&x), b.last_row(&h));
        let (embed, out_norm) = (&self.embed, &self.out_norm);
        finish(b, &mut last, c.vocab, want, |b, last, logits| {
            b.norm_matmul(last, post_ffn.map(|p| (&h_last, p)), out_norm, c.eps, &[embed], Mix::Each, &mut [logits]);
        })
    }

    fn context(&self) -> usize {
        self.cfg.context
    }

    fn vocab(&self) -> usize {
        self.cfg.vocab
    }
}
