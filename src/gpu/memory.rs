//! Where values live on the GPU: activations in one arena buffer, norm weights and rope
//! tables in one vectors buffer, each matrix in one or more weight buffers, and the KV cache.

use super::Gpu;
use crate::backend::Backend;
use crate::gguf::DType;
use std::cell::RefCell;
use std::rc::Rc;

/// All activations, at element offsets in one buffer that grows (copying) when needed.
#[derive(Default)]
pub(super) struct Arena {
    pub(super) buf: Option<wgpu::Buffer>,
    pub(super) capacity: usize,
    /// Stack of live allocations `(offset, len, live)`; freed ones pop once on top.
    pub(super) stack: Vec<(usize, usize, bool)>,
    pub(super) top: usize,
    /// Set when the buffer must grow before the next dispatch.
    pub(super) want: usize,
}

/// Norm weights and rope tables, gathered on the host while the model loads and uploaded
/// as one buffer before the first dispatch.
#[derive(Default)]
pub(super) struct Vectors {
    pub(super) host: Vec<f32>,
    pub(super) buf: Option<wgpu::Buffer>,
    pub(super) uploaded: usize,
}

pub struct Matrix {
    pub(super) dtype: DType,
    pub(super) cols: usize,
    pub(super) row_bytes: usize,
    /// Row ranges in buffers of at most `max_binding` bytes (the 178 MB embedding of
    /// Gemma 3 270M is more than WebGPU's default 128 MiB binding).
    pub(super) parts: Vec<Part>,
    /// Added to the products: its offset in the vectors buffer.
    pub(super) bias: Option<Vector>,
}

pub(super) struct Part {
    pub(super) buf: wgpu::Buffer,
    pub(super) row0: usize,
    pub(super) rows: usize,
}

#[derive(Clone, Copy)]
pub struct Vector {
    pub(super) off: usize,
}

pub struct Act {
    pub(super) off: usize,
    pub(super) rows: usize,
    pub(super) width: usize,
    /// 0 or `rows × width`: which half of the allocation holds the values (a residual
    /// update writes the other half, as other workgroups may still read this one).
    pub(super) half: usize,
    pub(super) arena: Rc<RefCell<Arena>>,
}

impl Act {
    pub(super) fn at(&self) -> u32 {
        (self.off + self.half) as u32
    }
    pub(super) fn other(&self) -> u32 {
        (self.off + self.rows * self.width - self.half) as u32
    }
}

impl Drop for Act {
    fn drop(&mut self) {
        self.arena.borrow_mut().free(self.off);
    }
}

pub struct Kv {
    pub(super) k: wgpu::Buffer,
    pub(super) v: wgpu::Buffer,
    pub(super) width: usize,
    pub(super) slots: usize,
}

impl Arena {
    pub(super) fn alloc(&mut self, len: usize) -> usize {
        let off = self.top;
        self.stack.push((off, len, true));
        self.top += len.div_ceil(64) * 64;
        self.want = self.want.max(self.top);
        off
    }

    fn free(&mut self, off: usize) {
        if let Some(e) = self.stack.iter_mut().find(|e| e.0 == off && e.2) {
            e.2 = false;
        }
        while self.stack.last().is_some_and(|e| !e.2) {
            self.stack.pop();
        }
        self.top = self.stack.last().map_or(0, |e| e.0 + e.1.div_ceil(64) * 64);
    }
}

impl Gpu {
    /// Activations holding `data` (`rows × width`), for tests and self-checks.
    pub fn act_from(&mut self, data: &[f32], rows: usize, width: usize) -> Act {
        assert_eq!(data.len(), rows * width);
        let a = self.act(rows, width);
        self.prepare();
        // The arena may be written by commands still unsubmitted: submit them first.
        self.submit();
        self.queue.write_buffer(
            &self.arena_buf(),
            a.at() as u64 * 4,
            bytemuck::cast_slice(data),
        );
        a
    }

    /// A storage buffer of `bytes` (at least 16, a multiple of 4).
    pub(super) fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Uploads `data`, padding the tail to the 4 bytes `write_buffer` wants.
    pub(super) fn upload(&self, buf: &wgpu::Buffer, data: &[u8]) {
        let whole = data.len() & !3;
        if whole > 0 {
            self.queue.write_buffer(buf, 0, &data[..whole]);
        }
        if whole < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.queue.write_buffer(buf, whole as u64, &tail);
        }
    }

    /// Makes the arena and vector buffers current before recording a dispatch that binds them.
    pub(super) fn prepare(&mut self) {
        let want = self.arena.borrow().want;
        if want > self.arena.borrow().capacity {
            let capacity = want.next_power_of_two().max(1 << 16);
            let buf = self.storage("activations", capacity as u64 * 4);
            let old = self.arena.borrow_mut().buf.replace(buf.clone());
            if let Some(old) = old {
                self.encoder()
                    .copy_buffer_to_buffer(&old, 0, &buf, 0, old.size());
            }
            self.arena.borrow_mut().capacity = capacity;
        }
        if self.vecs.buf.is_none() || self.vecs.uploaded != self.vecs.host.len() {
            let buf = self.storage("vectors", self.vecs.host.len() as u64 * 4);
            self.upload(&buf, bytemuck::cast_slice(&self.vecs.host));
            self.vecs.buf = Some(buf);
            self.vecs.uploaded = self.vecs.host.len();
        }
    }

    pub(super) fn arena_buf(&self) -> wgpu::Buffer {
        self.arena
            .borrow()
            .buf
            .clone()
            .expect("prepare() allocates the arena")
    }

    pub(super) fn vecs_buf(&self) -> wgpu::Buffer {
        self.vecs
            .buf
            .clone()
            .expect("prepare() uploads the vectors")
    }
}
