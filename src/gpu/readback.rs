//! Reading results back: a copy into a mappable buffer, submitted with the work before it,
//! and a future that resolves when the buffer is mapped (at once natively, where the read
//! waits for the GPU).

use super::{lost, Act, Gpu};
use crate::backend::Readback;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

impl Gpu {
    /// `x`'s values, once the GPU has computed them.
    pub(super) fn read_back(&mut self, x: &Act) -> Readback {
        self.prepare();
        let bytes = (x.rows * x.width * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let arena = self.arena_buf();
        self.encoder()
            .copy_buffer_to_buffer(&arena, x.at() as u64 * 4, &staging, 0, bytes);
        self.submit();
        let done = Arc::new(Mutex::new(MapState::default()));
        let d = done.clone();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let mut s = d.lock().unwrap();
            s.result = Some(r.map_err(|e| lost(e.to_string())));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        Box::pin(MapFuture {
            done,
            staging,
            failure: self.failure.clone(),
        })
    }
}

#[derive(Default)]
struct MapState {
    result: Option<Result<()>>,
    waker: Option<std::task::Waker>,
}

/// Resolves when the readback buffer is mapped (at once natively, where `read` waited).
struct MapFuture {
    done: Arc<Mutex<MapState>>,
    staging: wgpu::Buffer,
    failure: Arc<Mutex<Option<Error>>>,
}

impl std::future::Future for MapFuture {
    type Output = Result<Vec<f32>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut s = self.done.lock().unwrap();
        let Some(result) = s.result.take() else {
            s.waker = Some(cx.waker().clone());
            return std::task::Poll::Pending;
        };
        if let Some(e) = self.failure.lock().unwrap().clone() {
            return std::task::Poll::Ready(Err(e));
        }
        std::task::Poll::Ready(result.and_then(|()| {
            let data = self
                .staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| lost(e.to_string()))?;
            let out = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            drop(data);
            self.staging.unmap();
            Ok(out)
        }))
    }
}
