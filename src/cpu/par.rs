//! Splitting a mat-mul's weight rows over threads, when the crate is built with `threads`
//! (natively: rayon's threads; in wasm: Web Workers sharing the memory, wasm-bindgen-rayon).
//! Every output is still one dot product computed by one thread in the same order, so
//! threads change the speed, never a bit of the result.

use std::ops::Range;

/// Below this many multiply-adds a split costs more than it saves: waking a wasm worker
/// takes tens of microseconds, about what a 256×640 mat-vec (a decode step's k or v) takes.
const MIN_SPLIT_WORK: usize = 1 << 20;

/// Fills `out` (`n` activation rows, each of `rows` outputs of `cols`-long dot products)
/// by calling `f(r0..r1, part)`, where `part` holds `n` rows of `r1 - r0` outputs. Ranges
/// start at multiples of `align` (the kernels' row groups). Small products, or no threads:
/// one call, `part = out`.
pub fn over_rows(
    rows: usize,
    cols: usize,
    n: usize,
    align: usize,
    out: &mut [f32],
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    let parts = threads() * 4;
    if parts <= 4 || rows < 2 * align * parts || rows * cols * n < MIN_SPLIT_WORK {
        return f(0..rows, out);
    }
    split(rows, n, align, parts, out, f);
}

/// Calls `f(i, row)` for each row of `out` (rows of `width` values), over threads when
/// `work` (multiply-adds in all) is worth it. A row is computed whole by one thread.
pub fn each_row(out: &mut [f32], width: usize, work: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    #[cfg(feature = "threads")]
    if threads() > 1 && out.len() > width && work >= MIN_SPLIT_WORK {
        use rayon::prelude::*;
        return out
            .par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, row)| f(i, row));
    }
    let _ = work;
    out.chunks_mut(width)
        .enumerate()
        .for_each(|(i, row)| f(i, row));
}

/// `f(i)` for `i` in `0..n`, its items concatenated in order; over threads when built with
/// them (for work outside the kernels, such as deriving a tokenizer's merges).
pub fn flat_map<T: Send, I: IntoIterator<Item = T>>(
    n: usize,
    f: impl Fn(usize) -> I + Sync + Send,
) -> Vec<T> {
    #[cfg(feature = "threads")]
    if threads() > 1 {
        use rayon::prelude::*;
        return (0..n).into_par_iter().flat_map_iter(f).collect();
    }
    (0..n).flat_map(f).collect()
}

/// `f(i)` for `i` in `0..n`, in order; over threads when built with them.
pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(feature = "threads")]
    if threads() > 1 {
        use rayon::prelude::*;
        return (0..n).into_par_iter().map(f).collect();
    }
    (0..n).map(f).collect()
}

/// `(a(), b())`, the two at once when built with threads.
pub fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    #[cfg(feature = "threads")]
    if threads() > 1 {
        return rayon::join(a, b);
    }
    (a(), b())
}

#[cfg(feature = "threads")]
fn split(
    rows: usize,
    n: usize,
    align: usize,
    parts: usize,
    out: &mut [f32],
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    use rayon::prelude::*;
    let step = rows.div_ceil(parts).next_multiple_of(align);
    let ranges: Vec<Range<usize>> = (0..rows)
        .step_by(step)
        .map(|r| r..(r + step).min(rows))
        .collect();
    let computed: Vec<Vec<f32>> = ranges
        .par_iter()
        .map(|r| {
            let mut part = vec![0f32; n * r.len()];
            f(r.clone(), &mut part);
            part
        })
        .collect();
    for (r, part) in ranges.iter().zip(&computed) {
        for (o, p) in out.chunks_exact_mut(rows).zip(part.chunks_exact(r.len())) {
            o[r.clone()].copy_from_slice(p);
        }
    }
}

#[cfg(not(feature = "threads"))]
fn split(
    rows: usize,
    _: usize,
    _: usize,
    _: usize,
    out: &mut [f32],
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    f(0..rows, out)
}

/// The size of the wasm page's worker pool once it has started (rayon must not be touched
/// before: its default pool would try to spawn threads, which wasm cannot).
#[cfg(all(feature = "threads", target_arch = "wasm32"))]
static WASM_POOL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Records that the wasm page's worker pool runs `n` threads.
#[cfg(all(feature = "threads", target_arch = "wasm32"))]
pub fn pool_started(n: usize) {
    WASM_POOL.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// How many threads the mat-muls use (1 without the `threads` feature, or before a wasm
/// page has started its pool).
pub fn threads() -> usize {
    #[cfg(all(feature = "threads", target_arch = "wasm32"))]
    return WASM_POOL.load(std::sync::atomic::Ordering::Relaxed).max(1);
    #[cfg(all(feature = "threads", not(target_arch = "wasm32")))]
    return rayon::current_num_threads();
    #[cfg(not(feature = "threads"))]
    1
}
