//! Heap held by a loaded engine, and its peak while loading and generating, counted by a
//! global allocator natively: the wasm engine makes the same allocations, and wasm memory
//! never shrinks, so its peak is what a page keeps (BENCHMARKS.md, "Memory").

mod common;
use common::*;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::gguf::Gguf;
use ouvert::sampler::SamplerConfig;
use ouvert::tokenizer::Tokenizer;
use ouvert::weights::ModelBytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The peak of the whole run (`PEAK` restarts with each phase).
static TOP: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = NOW.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
    TOP.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        NOW.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, size) };
        if !q.is_null() {
            // Counted as the new block before the old one goes, as a copying realloc holds both.
            grew(size);
            NOW.fetch_sub(l.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

const MB: f64 = 1e6;

/// Runs `f`, printing the heap it leaves and its peak above the heap before it.
fn phase<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let before = NOW.load(Relaxed);
    PEAK.store(before, Relaxed);
    let t = f();
    let (now, peak) = (NOW.load(Relaxed), PEAK.load(Relaxed));
    eprintln!(
        "{label:34} keeps {:7.1} MB, peak {:7.1} MB above before (heap now {:.1} MB)",
        (now as f64 - before as f64) / MB,
        (peak - before) as f64 / MB,
        now as f64 / MB
    );
    t
}

/// Issue 5's budget: the CPU path's peak stays within 1.3× the file (a page's wasm memory
/// never shrinks, so this peak is what it keeps).
#[test]
fn a_load_and_a_generation_peak_under_1_3x_the_file() {
    let raw = std::fs::read(model_path()).unwrap();
    let len = raw.len();
    let file = phase("the file in memory (as the loader)", || {
        ModelBytes::from_slice(&raw).unwrap()
    });
    drop(raw);
    TOP.store(NOW.load(Relaxed), Relaxed); // from here on, the file as the engine holds it
    let mut gguf = phase("header parsed", || Gguf::parse(file.as_slice()).unwrap());
    let tokenizer = phase("tokenizer built (as the engine: vocabulary taken)", || {
        Tokenizer::from_gguf_taking(&mut gguf, None, false).unwrap()
    });
    drop((gguf, tokenizer));
    let mut e = phase("engine loaded (context 2048)", || {
        Engine::load(file, 2048).unwrap()
    });
    let opts = GenerateOptions {
        max_tokens: 16,
        sampler: SamplerConfig::greedy(),
        ..Default::default()
    };
    phase("a 16-token generation", || {
        e.generate(&[2, 818, 5279, 529, 7001, 563], &opts, &mut |_| true)
            .unwrap()
    });
    let peak = TOP.load(Relaxed);
    eprintln!(
        "peak heap of the load {:.1} MB = {:.2}× the {:.1} MB file",
        peak as f64 / MB,
        peak as f64 / len as f64,
        len as f64 / MB
    );
    assert!(
        peak as f64 <= 1.3 * len as f64,
        "the peak heap is {:.2}× the file",
        peak as f64 / len as f64
    );
}
