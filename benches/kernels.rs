//! `./build.sh bench`: the default model's matrices through candle-core's dot products and
//! ours, then greedy decode of the whole engine. One thread, native.

use candle_core::quantized::k_quants::{BlockQ5_0, BlockQ8_0, GgmlType};
use ouvert::backend::Backend;
use ouvert::cpu::quant::blocks;
use ouvert::cpu::Cpu;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::gguf::Gguf;
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;
use std::sync::Arc;
use std::time::Instant;

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t0 = Instant::now();
    for _ in 0..reps {
        f();
    }
    t0.elapsed().as_secs_f64() / reps as f64
}

/// candle's own matrix × vector for a Q8_0-activation type: one row at a time.
fn candle_matvec<T: GgmlType<VecDotType = BlockQ8_0>>(
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    dot: fn(usize, &[T], &[BlockQ8_0]) -> f32,
) {
    let w: &[T] = blocks(w);
    let nb = cols / 32;
    let mut xq = vec![BlockQ8_0::zeros(); nb];
    BlockQ8_0::from_float(x, &mut xq);
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        *o = dot(cols, &w[r * nb..(r + 1) * nb], &xq);
    }
}

fn main() {
    let path =
        std::env::var("OUVERT_MODEL").unwrap_or_else(|_| "models/gemma-3-270m-q4_k_m.gguf".into());
    let bytes = std::fs::read(&path).expect("run ./build.sh model first");
    let g = Gguf::parse(&bytes).unwrap();
    let file = Arc::new(ModelBytes::from_slice(&bytes).unwrap());
    println!("| matrix | type | candle scalar | candle | ouvert | ouvert vs candle |");
    println!("|---|---|---|---|---|---|");
    for name in [
        "blk.0.ffn_gate.weight",
        "blk.0.attn_q.weight",
        "token_embd.weight",
    ] {
        let t = g.tensor(name).unwrap();
        let m = Cpu.matrix(&file, t, None).unwrap();
        let x: Vec<f32> = (0..m.cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![0f32; m.rows];
        let reps = (1_000_000_000 / t.bytes).clamp(3, 2000);
        let w = m.bytes();
        let (scalar, candle) = match t.dtype.name() {
            "Q5_0" => (
                time(reps, || {
                    candle_matvec::<BlockQ5_0>(
                        w,
                        m.rows,
                        m.cols,
                        &x,
                        &mut out,
                        BlockQ5_0::vec_dot_unopt,
                    )
                }),
                time(reps, || {
                    candle_matvec::<BlockQ5_0>(w, m.rows, m.cols, &x, &mut out, BlockQ5_0::vec_dot)
                }),
            ),
            _ => (
                time(reps, || {
                    candle_matvec::<BlockQ8_0>(
                        w,
                        m.rows,
                        m.cols,
                        &x,
                        &mut out,
                        BlockQ8_0::vec_dot_unopt,
                    )
                }),
                time(reps, || {
                    candle_matvec::<BlockQ8_0>(w, m.rows, m.cols, &x, &mut out, BlockQ8_0::vec_dot)
                }),
            ),
        };
        let ours = time(reps, || m.matmul(&x, 1, &mut out));
        let gbs = |s: f64| format!("{:.3} ms ({:.1} GB/s)", s * 1e3, t.bytes as f64 / s / 1e9);
        println!(
            "| {name} {}×{} | {} | {} | {} | {} | {:.2}× |",
            m.rows,
            m.cols,
            t.dtype.name(),
            gbs(scalar),
            gbs(candle),
            gbs(ours),
            candle / ours
        );
    }

    let mut e = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 2048).unwrap();
    let prompt = e.encode("La Loire est le plus long fleuve de France. Elle prend sa source au mont Gerbier-de-Jonc, dans le massif central, puis traverse").unwrap();
    let opts = GenerateOptions {
        max_tokens: 128,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    let mut best = (0f64, 0f64);
    for _ in 0..3 {
        e = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 2048).unwrap(); // cold cache each round
        let s = e.generate(&prompt, &opts, &mut |_| true).unwrap().stats;
        best = (
            best.0.max(s.prefill_tokens_per_second),
            best.1.max(s.decode_tokens_per_second),
        );
    }
    println!("\nengine, 1 thread, best of 3: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s (128 tokens, greedy)", best.0, prompt.len(), best.1);
}
