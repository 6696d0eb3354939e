//! Gemma 3 (text): pre- and post-norms around attention and the GELU-gated MLP, q/k norms,
//! five sliding-window layers for each global one with their own rope base, embeddings
//! scaled by √d, and the output projection tied to the embedding.
//!
//! Norm weights in GGUF already include Gemma's "+1" (llama.cpp adds it at conversion).

use super::transformer::{Sliding, Spec};
use crate::backend::Mix;
use crate::config::Meta;
use crate::error::Result;
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    let m = Meta::new(g)?;
    let mut s = Spec::read(g, context)?;
    s.rope_base = m.opt_f32("rope.freq_base")?.unwrap_or(1_000_000.0);
    let local_base = m.opt_f32("rope.freq_base_swa")?.unwrap_or(10_000.0);
    s.sliding = Some(Sliding::read(g, s.layers, 512, 6, local_base)?);
    s.embed_scale = (s.dim as f32).sqrt();
    s.gate = Mix::GeluGate;
    s.post_norms = true;
    s.qk_norms = true;
    s.gemma_query_scale(62);
    Ok(s)
}
