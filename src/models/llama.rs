//! Llama (Llama 2 and 3, SmolLM, TinyLlama, Mistral-style files): RMS norms, SwiGLU, rope on
//! adjacent pairs (llama.cpp's converter permutes q and k for it), an untied output unless
//! the file leaves it out, Llama 3's frequency factors when the file has `rope_freqs`.

use super::transformer::Spec;
use crate::backend::RopeStyle;
use crate::error::Result;
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    let mut s = Spec::read(g, context)?;
    s.rope = RopeStyle::Adjacent;
    Ok(s)
}
