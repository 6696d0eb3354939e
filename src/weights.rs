//! The model file held once in memory, 8-byte aligned so quantized blocks can be read in
//! place. On the web the download streams straight into this buffer (see `wasm.rs`).

use crate::bail;
use crate::error::Result;
use crate::gguf::{DType, Gguf, TensorInfo};

pub struct ModelBytes {
    words: Vec<u64>,
    len: usize,
}

impl ModelBytes {
    /// A zeroed buffer for a file of `len` bytes; fails cleanly instead of aborting when
    /// the allocation is refused (a wasm page out of memory).
    pub fn zeroed(len: usize) -> Result<Self> {
        let n = len.div_ceil(8);
        let mut words = Vec::new();
        if words.try_reserve_exact(n).is_err() {
            bail!("model_too_large", "could not reserve {} MB for the model file; close other tabs or pick a smaller model", len >> 20);
        }
        words.resize(n, 0);
        Ok(ModelBytes { words, len })
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut m = Self::zeroed(bytes.len())?;
        m.as_mut_slice().copy_from_slice(bytes);
        Ok(m)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the u64 storage covers at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.len) }
    }

    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        &self.as_slice()[t.offset..t.offset + t.bytes]
    }

    /// An f32 tensor's values (norm weights are stored as F32 in GGUF).
    pub fn f32_values(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        if t.dtype != DType::F32 {
            bail!("unsupported_quantization", "tensor {:?} should be F32 but is {}", t.name, t.dtype.name());
        }
        Ok(self.tensor_bytes(t).chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    }
}

/// Looks up a tensor and checks its shape (ggml order: `[cols, rows]` for a matrix).
pub fn expect_tensor<'a>(g: &'a Gguf, name: &str, dims: &[usize]) -> Result<&'a TensorInfo> {
    let Some(t) = g.tensor(name) else {
        bail!("missing_tensor", "the model file has no tensor {name:?}; it may be incomplete or for another architecture");
    };
    if t.dims != dims {
        bail!("invalid_tensor", "tensor {name:?} has shape {:?} but the model's metadata implies {:?}", t.dims, dims);
    }
    Ok(t)
}
