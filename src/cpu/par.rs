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
    #[cfg(feature = "threads")]
    if crew::active() {
        return crew::over_rows(rows, cols, n, align, out, f);
    }
    let parts = threads() * 4;
    if parts <= 4 || rows < 2 * align * parts || rows * cols * n < MIN_SPLIT_WORK {
        return f(0..rows, out);
    }
    split(rows, n, align, parts, out, f);
}

/// Runs `f` (a decode step's forward pass) with the other threads of the pool spinning,
/// ready for its mat-muls: handing a mat-mul's rows to a sleeping pool thread costs a wake
/// (tens to hundreds of microseconds in wasm) twice per mat-mul, a hundred times a step.
/// Without threads, or on one, it only calls `f`.
pub fn crew<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "threads")]
    if threads() > 1 && !crew::active() {
        return crew::run(f);
    }
    f()
}

/// `f(i)` for `i` in `0..n`, in order: on the crew while one runs (`crew`), else in turn.
/// For a decode step's work outside the mat-muls, split into a fixed number of parts so
/// the result does not depend on the threads.
pub fn on_crew<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    #[cfg(feature = "threads")]
    if crew::active() {
        return crew::map(n, f);
    }
    (0..n).map(f).collect()
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

/// The crew of `crew()`: pool threads that spin on one job slot while a forward pass runs.
/// A job is a mat-mul's rows in chunks; the caller and the crew take chunks from a shared
/// counter until none is left, so a thread the system pauses delays only its own chunk.
#[cfg(feature = "threads")]
mod crew {
    use super::threads;
    use std::ops::Range;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::SeqCst};

    /// One mat-mul's work: `chunks` calls of `run`, handed out through `next`.
    struct Job<'a> {
        run: &'a (dyn Fn(usize) + Sync),
        chunks: usize,
        next: AtomicUsize,
        done: AtomicUsize,
    }

    impl Job<'_> {
        fn work(&self) {
            loop {
                let i = self.next.fetch_add(1, SeqCst);
                if i >= self.chunks {
                    return;
                }
                (self.run)(i);
                self.done.fetch_add(1, SeqCst);
            }
        }
    }

    /// The crew is spinning (set by its owner only).
    static ACTIVE: AtomicBool = AtomicBool::new(false);
    /// The job on offer, or null.
    static JOB: AtomicPtr<Job<'static>> = AtomicPtr::new(std::ptr::null_mut());
    /// Counts the jobs offered: a crew thread looks at `JOB` once per offer.
    static EPOCH: AtomicUsize = AtomicUsize::new(0);
    /// Crew threads that may be reading `JOB`'s job: the owner frees a job only at zero.
    static READERS: AtomicUsize = AtomicUsize::new(0);
    /// Crew threads running or lingering.
    static LIVE: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        /// This thread owns the running crew (only it offers jobs).
        static OWNER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub fn active() -> bool {
        OWNER.with(|o| o.get())
    }

    /// How long a crew thread spins on after its crew ended, in case the next decode step
    /// starts (about a millisecond): then no thread has to be woken for it.
    const LINGER_SPINS: usize = 1 << 20;

    pub fn run<R>(f: impl FnOnce() -> R) -> R {
        // One crew at a time (two engines on two threads: the second runs as before).
        if ACTIVE.swap(true, SeqCst) {
            return f();
        }
        // Threads still lingering from the last crew join this one; the rest are started.
        let lingering = LIVE.load(SeqCst);
        for _ in lingering..threads() - 1 {
            LIVE.fetch_add(1, SeqCst);
            rayon::spawn(crew_thread);
        }
        OWNER.with(|o| o.set(true));
        // Ends the crew even if `f` panics (crew threads hold no reference into this
        // stack between jobs: `share` waits for them).
        struct End;
        impl Drop for End {
            fn drop(&mut self) {
                OWNER.with(|o| o.set(false));
                ACTIVE.store(false, SeqCst);
            }
        }
        let _end = End;
        f()
    }

    /// A crew thread: spins on plain loads until a job it has not seen is offered, and
    /// leaves once no crew has been active for `LINGER_SPINS` turns.
    fn crew_thread() {
        let mut seen = EPOCH.load(SeqCst);
        let mut idle = 0;
        while idle < LINGER_SPINS {
            let epoch = EPOCH.load(SeqCst);
            if epoch == seen {
                idle = if ACTIVE.load(SeqCst) { 0 } else { idle + 1 };
                std::hint::spin_loop();
                continue;
            }
            READERS.fetch_add(1, SeqCst);
            let job = JOB.load(SeqCst);
            if !job.is_null() {
                // SAFETY: the owner keeps the job alive until READERS is back to 0.
                unsafe { &*job }.work();
            }
            READERS.fetch_sub(1, SeqCst);
            seen = epoch;
        }
        LIVE.fetch_sub(1, SeqCst);
    }

    /// Runs `run(0..chunks)` on the caller and the crew; returns when every call has.
    fn share(chunks: usize, run: &(dyn Fn(usize) + Sync)) {
        let job = Job {
            run,
            chunks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        };
        // Withdraws the job and waits for every reader to let go of it before this frame
        // ends, also when a chunk panics here.
        struct Withdraw;
        impl Drop for Withdraw {
            fn drop(&mut self) {
                JOB.store(std::ptr::null_mut(), SeqCst);
                while READERS.load(SeqCst) > 0 {
                    std::hint::spin_loop();
                }
            }
        }
        // SAFETY (the lifetime): `Withdraw` keeps the job alive for its readers.
        let ptr = &job as *const Job as *mut Job<'static>;
        let _withdraw = Withdraw;
        JOB.store(ptr, SeqCst);
        EPOCH.fetch_add(1, SeqCst);
        job.work();
        while job.done.load(SeqCst) < chunks {
            std::hint::spin_loop();
        }
    }

    /// `super::on_crew` on the crew.
    pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        let slots: Vec<std::sync::Mutex<Option<T>>> = (0..n).map(|_| Default::default()).collect();
        share(n, &|i| *slots[i].lock().unwrap() = Some(f(i)));
        slots
            .into_iter()
            .map(|s| s.into_inner().unwrap().expect("every part ran"))
            .collect()
    }

    /// `super::over_rows` on the crew: one activation row's outputs in chunks of rows.
    pub fn over_rows(
        rows: usize,
        cols: usize,
        n: usize,
        align: usize,
        out: &mut [f32],
        f: impl Fn(Range<usize>, &mut [f32]) + Sync,
    ) {
        // At least 65,536 multiply-adds a chunk, at most eight chunks a thread.
        let chunks = (rows * cols / (1 << 16)).clamp(1, 8 * threads());
        let step = rows.div_ceil(chunks).next_multiple_of(align);
        if n != 1 || step >= rows {
            return f(0..rows, out);
        }
        let out = Shared(out.as_mut_ptr());
        let run = |i: usize| {
            let r = i * step..((i + 1) * step).min(rows);
            if r.is_empty() {
                return;
            }
            // SAFETY: chunks are disjoint row ranges of the one activation row's outputs.
            let part = unsafe { std::slice::from_raw_parts_mut(out.at(r.start), r.len()) };
            f(r, part);
        };
        share(rows.div_ceil(step), &run);
    }

    /// The outputs' address, shared by the chunks that write disjoint parts of them.
    #[derive(Clone, Copy)]
    struct Shared(*mut f32);
    // SAFETY: each chunk writes only its own rows.
    unsafe impl Sync for Shared {}
    impl Shared {
        fn at(self, i: usize) -> *mut f32 {
            self.0.wrapping_add(i)
        }
    }
}
