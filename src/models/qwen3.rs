//! Qwen 3: Qwen 2's block without biases and with per-head RMS norms of queries and keys.

use super::transformer::Spec;
use crate::error::Result;
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    let mut s = Spec::read(g, context)?;
    s.qk_norms = true;
    Ok(s)
}
