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

/// Eight independent lanes of wrapping adds: the compiler vectorises it (AVX2 here), so the
/// loop is bound by memory, not by the adds (a NumPy sum is not: it measured 8.4 GB/s).
fn sum(xs: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in xs.chunks_exact(8) {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(*x);
        }
    }
    acc.iter().fold(0, |s, a| s.wrapping_add(*a))
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
