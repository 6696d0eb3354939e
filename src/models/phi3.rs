//! Phi-3 (and Phi-3.5/Phi-4-mini files of this architecture): fused q/k/v and gate/up
//! matrices (split into row ranges at load), SwiGLU, rope on NeoX halves. Its sliding window
//! is ignored, as llama.cpp does; long-context rope factors are not supported.

use super::transformer::Spec;
use crate::bail;
use crate::error::{Code, Result};
use crate::gguf::Gguf;

pub fn spec(g: &Gguf, context: usize) -> Result<Spec> {
    if g.tensor("rope_factors_long.weight").is_some()
        || g.tensor("rope_factors_short.weight").is_some()
    {
        bail!(Code::UnsupportedArchitecture, "Phi-3 long-context rope factors (the 128k models) are not supported; use a 4k-context Phi-3 model");
    }
    Spec::read(g, context)
}
