//! Gemma 2: Gemma's post-norms and GELU gate without q/k norms, sliding-window and global
//! layers alternating (one rope base), and soft-capped attention scores and logits.

use super::transformer::{Sliding, Spec};
use crate::backend::Mix;
use crate::config::Meta;
use crate::error::Result;
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    let m = Meta::new(g)?;
    let mut s = Spec::read(g, context)?;
    let base = m.opt_f32("rope.freq_base_swa")?.unwrap_or(s.rope_base);
    s.sliding = Some(Sliding::read(g, s.layers, 4096, 2, base)?);
    s.embed_scale = (s.dim as f32).sqrt();
    s.gate = Mix::GeluGate;
    s.post_norms = true;
    s.gemma_query_scale(46);
    s.attn_softcap = m.opt_f32("attn_logit_softcapping")?.unwrap_or(50.0);
    s.final_softcap = m.opt_f32("final_logit_softcapping")?.unwrap_or(30.0);
    Ok(s)
}
