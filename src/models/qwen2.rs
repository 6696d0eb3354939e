//! Qwen 2 and 2.5: Llama's block with biases on the q, k and v projections (loaded when the
//! file has them) and rope on NeoX halves.

use super::transformer::Spec;
use crate::error::Result;
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    Spec::read(g, context)
}
