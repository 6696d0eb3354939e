//! Quantized matrix × activations on the CPU, on candle-core's block types and dot products.
//!
//! Activations are quantized once per call to the weight type's dot partner (Q8_0, Q8_1 or
//! Q8_K, as ggml does), then every weight row is dotted against every activation row while
//! it is hot in cache. Q5_0 and Q8_0 go through our own SIMD dot products (`dot.rs`):
//! candle has none for Q5_0. Q8_0 and Q8_K activations are rounded exactly as ggml rounds
//! them: this small model turns last-bit differences into 0.3-logit ones.

use super::dot::{self, Q5_0, Q8_0};
use super::kdot;
use super::par;
use crate::gguf::DType;
use crate::weights::ModelBytes;
use candle_core::quantized::k_quants::*;
use half::{bf16, f16};
use std::sync::Arc;

/// A weight matrix `[rows × cols]` as raw GGUF blocks, row after row.
pub struct QMatrix {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    pub file: Arc<ModelBytes>,
    pub offset: usize,
    /// Added to every product row (Qwen 2's q, k, v projections).
    pub bias: Option<Vec<f32>>,
}

impl QMatrix {
    pub fn bytes(&self) -> &[u8] {
        &self.file.as_slice()[self.offset..self.offset + self.rows * self.row_bytes()]
    }

    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block() * self.dtype.block_bytes()
    }

    /// `out[t][r] = Σ_c w[r][c] · x[t][c]` for the `n` rows of `x`.
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) {
        assert_eq!(x.len(), n * self.cols);
        assert_eq!(out.len(), n * self.rows);
        let w = self.bytes();
        match self.dtype {
            DType::F32 => mm::<f32>(w, self, x, n, out, f32::vec_dot, GgmlType::from_float),
            DType::F16 => mm::<f16>(w, self, x, n, out, f16::vec_dot, GgmlType::from_float),
            DType::BF16 => mm::<bf16>(w, self, x, n, out, bf16::vec_dot, GgmlType::from_float),
            DType::Q4_0 => {
                mm::<BlockQ4_0>(w, self, x, n, out, BlockQ4_0::vec_dot, GgmlType::from_float)
            }
            DType::Q4_1 => {
                mm::<BlockQ4_1>(w, self, x, n, out, BlockQ4_1::vec_dot, GgmlType::from_float)
            }
            DType::Q5_0 => mm_q8::<Q5_0>(w, self, x, n, out),
            DType::Q5_1 => {
                mm::<BlockQ5_1>(w, self, x, n, out, BlockQ5_1::vec_dot, GgmlType::from_float)
            }
            DType::Q8_0 => mm_q8::<Q8_0>(w, self, x, n, out),
            DType::Q2K => mm::<BlockQ2K>(w, self, x, n, out, BlockQ2K::vec_dot, dot::quantize_q8_k),
            DType::Q3K => mm::<BlockQ3K>(w, self, x, n, out, BlockQ3K::vec_dot, dot::quantize_q8_k),
            DType::Q4K if kdot::SIMD => mm_k::<kdot::Q4K>(w, self, x, n, out),
            DType::Q4K => mm::<BlockQ4K>(w, self, x, n, out, BlockQ4K::vec_dot, dot::quantize_q8_k),
            DType::Q5K => mm::<BlockQ5K>(w, self, x, n, out, BlockQ5K::vec_dot, dot::quantize_q8_k),
            DType::Q6K if kdot::SIMD => mm_k::<kdot::Q6K>(w, self, x, n, out),
            DType::Q6K => mm::<BlockQ6K>(w, self, x, n, out, BlockQ6K::vec_dot, dot::quantize_q8_k),
            DType::Q8K => mm::<BlockQ8K>(w, self, x, n, out, BlockQ8K::vec_dot, dot::quantize_q8_k),
        }
        if let Some(b) = &self.bias {
            out.chunks_exact_mut(self.rows)
                .for_each(|o| o.iter_mut().zip(b).for_each(|(o, b)| *o += b));
        }
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let row = &self.bytes()[r * rb..(r + 1) * rb];
        match self.dtype {
            DType::F32 => f32::to_float(blocks(row), out),
            DType::F16 => f16::to_float(blocks(row), out),
            DType::BF16 => bf16::to_float(blocks(row), out),
            DType::Q4_0 => BlockQ4_0::to_float(blocks(row), out),
            DType::Q4_1 => BlockQ4_1::to_float(blocks(row), out),
            DType::Q5_0 => BlockQ5_0::to_float(blocks(row), out),
            DType::Q5_1 => BlockQ5_1::to_float(blocks(row), out),
            DType::Q8_0 => BlockQ8_0::to_float(blocks(row), out),
            DType::Q2K => BlockQ2K::to_float(blocks(row), out),
            DType::Q3K => BlockQ3K::to_float(blocks(row), out),
            DType::Q4K => BlockQ4K::to_float(blocks(row), out),
            DType::Q5K => BlockQ5K::to_float(blocks(row), out),
            DType::Q6K => BlockQ6K::to_float(blocks(row), out),
            DType::Q8K => BlockQ8K::to_float(blocks(row), out),
        }
    }
}

type DotFn<T> = fn(usize, &[T], &[<T as GgmlType>::VecDotType]) -> f32;
type QuantizeFn<T> = fn(&[f32], &mut [<T as GgmlType>::VecDotType]);

/// Reinterprets GGUF bytes as blocks. GGUF aligns tensor data to 32 bytes and `ModelBytes`
/// to 8, so the cast is aligned; the assert guards the invariant rather than trusting it.
pub fn blocks<T>(bytes: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert!(
        bytes.len().is_multiple_of(size)
            && (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    );
    // SAFETY: candle's block types are repr(C) plain data valid for any bit pattern.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) }
}

/// Activation rows per kernel call: each weight block is unpacked once for all of them,
/// and each activation block loaded once for four weight rows. Four takes 16 accumulators,
/// which AVX-512's 32 vector registers hold; elsewhere two.
const TILE: usize = if cfg!(all(target_arch = "x86_64", target_feature = "avx512vl")) {
    4
} else {
    2
};

/// `$kernel` for `$count` (1..=TILE) activation rows, with `$T` the count as a constant,
/// its `[[f32; 4]; $T]` padded to `TILE` rows.
macro_rules! tiled {
    ($count:expr, |$T:ident| $kernel:expr) => {{
        fn pad<const N: usize>(a: [[f32; 4]; N]) -> [[f32; 4]; TILE] {
            std::array::from_fn(|i| if i < N { a[i] } else { [0.0; 4] })
        }
        match $count {
            1 => {
                const $T: usize = 1;
                pad($kernel)
            }
            2 => {
                const $T: usize = if TILE > 2 { 2 } else { TILE };
                pad($kernel)
            }
            3 => {
                const $T: usize = if TILE > 3 { 3 } else { TILE };
                pad($kernel)
            }
            _ => {
                const $T: usize = TILE;
                pad($kernel)
            }
        }
    }};
}

/// Weights whose activations are Q8_0, through our own dot products (`dot.rs`).
fn mm_q8<W: dot::Unpack + Sync>(w: &[u8], m: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    let act = dot::quantize_q8_0(x);
    let ys: &[Q8_0] = dot::view(&act.blocks);
    let nb = m.cols / 32;
    let (y, yd) = (
        |t: usize| &ys[t * nb..(t + 1) * nb],
        |t: usize| &act.scales[t * nb..(t + 1) * nb],
    );
    by_fours::<W>(blocks(w), m, nb, n, out, |xs, t, count, ahead| {
        tiled!(count, |T| dot::dot4::<W, T>(
            xs,
            std::array::from_fn(|i| y(t + i)),
            std::array::from_fn(|i| yd(t + i)),
            ahead
        ))
    });
}

/// Q4_K and Q6_K in wasm and on x86, through our own four-row dot products (`kdot.rs`):
/// candle's go one row at a time, unpacking each weight block again for every activation
/// row of a prompt.
fn mm_k<W: kdot::Simd + Sync>(w: &[u8], m: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    let nb = m.cols / 256;
    let mut act = vec![BlockQ8K::zeros(); n * nb];
    for (xr, q) in x.chunks_exact(m.cols).zip(act.chunks_exact_mut(nb)) {
        dot::quantize_q8_k(xr, q);
    }
    let ys: &[kdot::Q8K] = dot::view(&act);
    let y = |t: usize| &ys[t * nb..(t + 1) * nb];
    by_fours::<W>(blocks(w), m, nb, n, out, |xs, t, count, ahead| {
        tiled!(count, |T| kdot::dot4::<W, T>(
            xs,
            std::array::from_fn(|i| y(t + i)),
            ahead
        ))
    });
}

/// Runs `dot(rows, t, count, ahead)` over the matrix four weight rows at a time, against
/// activation rows `t..t + count` (`count` ≤ `TILE`); a last group of fewer than four
/// rows repeats its final row. `ahead` is the four rows after the next four, for the
/// kernel to pull into cache (with the first activation rows only), none past this
/// thread's part.
fn by_fours<W: Sync>(
    w: &[W],
    m: &QMatrix,
    nb: usize,
    n: usize,
    out: &mut [f32],
    dot: impl Fn([&[W]; 4], usize, usize, &[W]) -> [[f32; 4]; TILE] + Sync,
) {
    let rows = m.rows;
    let row = |r: usize| &w[r.min(rows - 1) * nb..][..nb];
    par::over_rows(rows, m.cols, n, 4, out, |range, part| {
        let width = range.len();
        let mut put = |t: usize, r: usize, d: [f32; 4]| {
            let (at, k) = (t * width + r - range.start, (range.end - r).min(4));
            part[at..at + k].copy_from_slice(&d[..k]);
        };
        let end = range.end * nb;
        for r in range.clone().step_by(4) {
            let xs = [row(r), row(r + 1), row(r + 2), row(r + 3)];
            let ahead = &w[((r + 8) * nb).min(end)..((r + 12) * nb).min(end)];
            for t in (0..n).step_by(TILE) {
                let ahead = if t == 0 { ahead } else { &[] };
                let count = (n - t).min(TILE);
                let tile = dot(xs, t, count, ahead);
                for (i, d) in tile.into_iter().take(count).enumerate() {
                    put(t + i, r, d);
                }
            }
        }
    });
}

fn mm<T: GgmlType + Sync>(
    w: &[u8],
    m: &QMatrix,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    dot: DotFn<T>,
    quantize: QuantizeFn<T>,
) {
    let w: &[T] = blocks(w);
    let (rows, cols) = (m.rows, m.cols);
    let wb = cols / T::BLCK_SIZE;
    let xb = cols / T::VecDotType::BLCK_SIZE;
    let mut xq = vec![T::VecDotType::zeros(); n * xb];
    for (xr, q) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(xb)) {
        quantize(xr, q);
    }
    par::over_rows(rows, cols, n, 1, out, |range, part| {
        let width = range.len();
        for r in range.clone() {
            let wr = &w[r * wb..(r + 1) * wb];
            for (t, q) in xq.chunks_exact(xb).enumerate() {
                part[t * width + r - range.start] = dot(cols, wr, q);
            }
        }
    });
}

/// This build's mat-mul of K-quant matrices against candle's one-row dots on the same
/// activations, for 7 rows (not a multiple of four) and one, three and six activation rows
/// (tiles of `TILE` and what is left): in wasm and on x86 that is our four-row kernels
/// through `by_fours`. Returns what went wrong.
pub fn self_check() -> Result<(), String> {
    fn check<C: GgmlType<VecDotType = BlockQ8K> + Sync>(dtype: DType) -> Result<(), String> {
        let (rows, cols) = (7, 512);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| (i * 7919 % 2003) as f32 / 1001.5 - 1.0)
            .collect();
        let mut blocks = vec![C::zeros(); rows * cols / C::BLCK_SIZE];
        C::from_float(&w, &mut blocks);
        // SAFETY: candle's blocks are plain data; viewed as their bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                blocks.as_ptr() as *const u8,
                std::mem::size_of_val(&blocks[..]),
            )
        };
        let m = QMatrix {
            dtype,
            rows,
            cols,
            file: Arc::new(ModelBytes::from_slice(bytes).map_err(|e| e.to_string())?),
            offset: 0,
            bias: None,
        };
        for n in [1, 3, 6] {
            let x: Vec<f32> = (0..n * cols)
                .map(|i| (i * 104_729 % 4001) as f32 / 400.0 - 5.0)
                .collect();
            let (mut ours, mut theirs) = (vec![0f32; n * rows], vec![0f32; n * rows]);
            m.matmul(&x, n, &mut ours);
            mm::<C>(
                m.bytes(),
                &m,
                &x,
                n,
                &mut theirs,
                C::vec_dot,
                dot::quantize_q8_k,
            );
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                if (a - b).abs() > 1e-4 * b.abs().max(1.0) {
                    return Err(format!(
                        "{} mat-mul, {n} activation rows, output {i}: {a} vs candle's {b}",
                        dtype.name()
                    ));
                }
            }
        }
        Ok(())
    }
    check::<BlockQ4K>(DType::Q4K)?;
    check::<BlockQ6K>(DType::Q6K)
}

#[cfg(test)]
mod tests {
    #[test]
    fn k_quant_matmul_matches_candle() {
        super::self_check().unwrap();
    }
}
