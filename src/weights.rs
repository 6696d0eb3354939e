//! The model file held once in memory, 8-byte aligned so quantized blocks can be read in
//! place. On the web the download streams straight into this buffer (see `wasm.rs`).

use crate::bail;
use crate::error::{Code, Result};
use crate::gguf::{DType, Gguf, TensorInfo};

pub struct ModelBytes {
    words: Vec<u64>,
    len: usize,
}

impl ModelBytes {
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut m = Filling::new(bytes.len())?;
        m.push(bytes)?;
        m.finish()
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

    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        &self.as_slice()[t.offset..t.offset + t.bytes]
    }

    /// An f32 tensor's values (norm weights are stored as F32 in GGUF).
    pub fn f32_values(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        if t.dtype != DType::F32 {
            bail!(
                Code::UnsupportedQuantization,
                "tensor {:?} should be F32 but is {}",
                t.name,
                t.dtype.name()
            );
        }
        Ok(self
            .tensor_bytes(t)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }
}

/// A model file arriving in pieces, written straight into the buffer the engine keeps. The
/// buffer is reserved, not written: fresh memory (wasm's `memory.grow`, an `mmap`) is paged
/// in as the file fills it, so the first bytes (the header, for the early tokenizer) land at
/// once instead of after ~0.1 s of zeroing 253 MB.
pub struct Filling {
    /// Capacity for the whole file; the first `written` bytes are the file's.
    words: Vec<u64>,
    len: usize,
    written: usize,
}

impl Filling {
    /// Reserves room for a file of `len` bytes; fails cleanly instead of aborting when the
    /// allocation is refused (a wasm page out of memory).
    pub fn new(len: usize) -> Result<Self> {
        let mut words = Vec::new();
        if words.try_reserve_exact(len.div_ceil(8)).is_err() {
            bail!(Code::ModelTooLarge, "could not reserve {} MB for the model file; close other tabs or pick a smaller model", len >> 20);
        }
        Ok(Filling {
            words,
            len,
            written: 0,
        })
    }

    /// The file's size, as announced.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes that have arrived.
    pub fn written(&self) -> &[u8] {
        // SAFETY: the first `written` bytes of the allocation were written.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.written) }
    }

    /// Appends the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.len() > self.len - self.written {
            bail!(
                Code::InvalidArgument,
                "received {} bytes, more than the announced {}",
                self.written + chunk.len(),
                self.len
            );
        }
        // SAFETY: in bounds of the allocation, checked above; `chunk` cannot overlap it (we
        // hold it mutably).
        unsafe {
            std::ptr::copy_nonoverlapping(
                chunk.as_ptr(),
                (self.words.as_mut_ptr() as *mut u8).add(self.written),
                chunk.len(),
            )
        };
        self.written += chunk.len();
        Ok(())
    }

    /// Where the rest of the file goes, for a reader that writes it itself (wasm: a view
    /// handed to an OPFS synchronous read); then `advance`.
    pub fn rest(&mut self) -> (*mut u8, usize) {
        // SAFETY: `written <= len`, within the allocation.
        (
            unsafe { (self.words.as_mut_ptr() as *mut u8).add(self.written) },
            self.len - self.written,
        )
    }

    /// Marks `n` more bytes, written through `rest()`, as arrived.
    ///
    /// # Safety
    /// The `n` bytes after those already written must have been written.
    pub unsafe fn advance(&mut self, n: usize) -> Result<()> {
        if n > self.len - self.written {
            bail!(
                Code::InvalidArgument,
                "cannot advance {n} bytes past {} of {}",
                self.written,
                self.len
            );
        }
        self.written += n;
        Ok(())
    }

    /// The whole file, once every byte has arrived.
    pub fn finish(mut self) -> Result<ModelBytes> {
        if self.written < self.len {
            bail!(
                Code::TruncatedFile,
                "only {} of {} bytes of the model arrived; fetch it again",
                self.written,
                self.len
            );
        }
        let n = self.len.div_ceil(8);
        // The last word's bytes past the end of the file, so that every word is written.
        let tail = n * 8 - self.len;
        // SAFETY: within the allocation of `n` words; afterwards all `n` words are written.
        unsafe {
            std::ptr::write_bytes((self.words.as_mut_ptr() as *mut u8).add(self.len), 0, tail);
            self.words.set_len(n);
        }
        Ok(ModelBytes {
            words: self.words,
            len: self.len,
        })
    }
}

/// Looks up a tensor and checks its shape (ggml order: `[cols, rows]` for a matrix).
pub fn expect_tensor<'a>(g: &'a Gguf, name: &str, dims: &[usize]) -> Result<&'a TensorInfo> {
    let Some(t) = g.tensor(name) else {
        bail!(Code::MissingTensor, "the model file has no tensor {name:?}; it may be incomplete or for another architecture");
    };
    if t.dims != dims {
        bail!(
            Code::InvalidTensor,
            "tensor {name:?} has shape {:?} but the model's metadata implies {:?}",
            t.dims,
            dims
        );
    }
    Ok(t)
}
