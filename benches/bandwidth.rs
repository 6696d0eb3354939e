//! The decode bound of this machine: a streaming read over a buffer far larger than the
//! caches (vectorised, one and two threads), and the weight bytes each model reads per
//! decoded token. Writes `target/bench-bandwidth.json` for `benches/table.mjs`.
//!
//!     cargo bench --bench bandwidth -- MODEL.gguf...

use std::time::Instant;

/// Bytes read per second by `threads` threads each summing its share of `buf` (best of 8).
fn read_rate(buf: &[u64], threads: usize) -> f64 {
    let part = buf.len().div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..8 {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let jobs: Vec<_> = buf.chunks(part).map(|c| s.spawn(move || sum(c))).collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        });
        std::hint::black_box(sums);
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::mem::size_of_val(buf) as f64 / best
}

/// A vectorised read: 256-bit loads into four independent accumulators (AVX2), so the
/// loop is bound by memory, not by the adds (a NumPy sum is not: it measured 8.4 GB/s; a
/// plain Rust loop 5.4).
fn sum(xs: &[u64]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    // SAFETY: AVX2 is enabled for this build; the loads stay inside `xs`.
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_setzero_si256(); 4];
        let chunks = xs.chunks_exact(16);
        let rest: u64 = chunks.remainder().iter().fold(0, |s, x| s.wrapping_add(*x));
        for c in chunks {
            let p = c.as_ptr() as *const __m256i;
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(k)));
            }
        }
        let mut out = [0u64; 4];
        let total = _mm256_add_epi64(
            _mm256_add_epi64(acc[0], acc[1]),
            _mm256_add_epi64(acc[2], acc[3]),
        );
        _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, total);
        out.iter().fold(rest, |s, a| s.wrapping_add(*a))
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    xs.iter().fold(0, |s, x| s.wrapping_add(*x))
}

/// The bytes a decode step reads: every matrix once, the output projection included (the
/// embedding when it is tied), but not the embedding table beside an output projection,
/// of which a step reads one row.
fn weight_bytes_per_token(path: &str) -> usize {
    let bytes = std::fs::read(path).expect("model file");
    let g = ouvert::gguf::Gguf::parse(&bytes).expect("GGUF");
    let tied = g.tensor("output.weight").is_none();
    g.tensors
        .iter()
        .filter(|t| tied || t.name != "token_embd.weight")
        .map(|t| t.bytes)
        .sum()
}

fn main() {
    let models: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.ends_with(".gguf"))
        .collect();
    // 1 GiB: far past any cache; touched first so the pages exist.
    let buf: Vec<u64> = (0..(1usize << 27)).map(|i| i as u64).collect();
    let one = read_rate(&buf, 1);
    let two = read_rate(&buf, 2);
    println!(
        "streaming read, 1 GiB, best of 8: {:.1} GB/s on one thread, {:.1} GB/s on two",
        one / 1e9,
        two / 1e9
    );
    let mut per_model = serde_json::Map::new();
    for m in &models {
        let b = weight_bytes_per_token(m);
        println!(
            "{m}: {:.1} MB of weights per decoded token: bound {:.1} tok/s on one thread, {:.1} on two",
            b as f64 / 1e6,
            one / b as f64,
            two / b as f64
        );
        let name = std::path::Path::new(m)
            .file_name()
            .unwrap()
            .to_string_lossy();
        per_model.insert(name.into_owned(), (b as u64).into());
    }
    let json = serde_json::json!({ "read1": one, "read2": two, "weightBytesPerToken": per_model });
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-bandwidth.json");
    std::fs::write(out, json.to_string()).expect("write the result");
}
