//! Weights to the GPU: each matrix in buffers no larger than one binding, uploaded at load
//! or, while a streaming file arrives, as soon as its last byte is in.

use super::memory::Part;
use super::Gpu;
use crate::bail;
use crate::error::{Code, Result};
use crate::gguf::TensorInfo;

/// Weights going to the GPU as a streaming file arrives: once the header is whole
/// (`HeaderWatch`), each matrix is uploaded as soon as its last byte is in, instead of all
/// of them after the file. The model then takes them (`Backend::matrix`) as if uploaded at
/// load.
pub struct StreamingUpload {
    gpu: Gpu,
    /// The matrices still to come, last in the file first.
    pending: Vec<TensorInfo>,
}

impl StreamingUpload {
    pub fn new(gpu: Gpu) -> Self {
        StreamingUpload {
            gpu,
            pending: Vec::new(),
        }
    }

    /// The file's tensor table, from its header.
    pub fn expect(&mut self, tensors: &[TensorInfo]) {
        self.pending = tensors
            .iter()
            .filter(|t| t.dims.len() >= 2)
            .cloned()
            .collect();
        self.pending
            .sort_by_key(|t| std::cmp::Reverse(t.offset + t.bytes));
    }

    /// Called as the file arrives, with all of it so far: uploads the matrices now whole.
    pub fn offer(&mut self, arrived: &[u8]) {
        while let Some(t) = self.pending.pop_if(|t| t.offset + t.bytes <= arrived.len()) {
            // One that does not fit the kernels is left for the load to report.
            if let Ok(parts) = self.gpu.parts(&t, &arrived[t.offset..t.offset + t.bytes]) {
                self.gpu.early_bytes += t.bytes;
                self.gpu.early.insert((t.offset, t.bytes), parts);
            }
        }
    }

    /// Bytes of weights uploaded so far.
    pub fn uploaded(&self) -> usize {
        self.gpu.early_bytes
    }

    /// The GPU, holding what was uploaded.
    pub fn finish(self) -> Gpu {
        self.gpu
    }
}

impl Gpu {
    /// A matrix's rows in buffers of at most `max_binding` bytes, uploaded from `bytes`.
    pub(super) fn parts(&self, t: &TensorInfo, bytes: &[u8]) -> Result<Vec<Part>> {
        let (rows, cols) = (t.dims[1..].iter().product::<usize>(), t.dims[0]);
        let row_bytes = cols / t.dtype.block() * t.dtype.block_bytes();
        if cols % 32 != 0 || row_bytes as u64 > self.max_binding {
            bail!(Code::UnsupportedQuantization, "tensor {:?} ({cols} columns) does not fit the GPU kernels' 32-value chunks or binding size", t.name);
        }
        let per_part = (self.max_binding as usize / row_bytes).max(1);
        let mut parts = Vec::new();
        for row0 in (0..rows).step_by(per_part) {
            let n = per_part.min(rows - row0);
            let buf = self.storage(&t.name, (n * row_bytes) as u64);
            self.upload(&buf, &bytes[row0 * row_bytes..(row0 + n) * row_bytes]);
            parts.push(Part { buf, row0, rows: n });
        }
        Ok(parts)
    }
}
