//! The engine against llama.cpp on the default model (../shared/reference/).
//!
//! Tolerances, and why they are not tighter: this small model turns last-bit differences
//! into visible logit changes. Changing only the order in which the Q5_0 dot product sums
//! its blocks (scalar vs SIMD, the same math) moves the "english" top logit by 0.16;
//! llama.cpp's own f16 roundings (KV cache, queries, attention weights, GELU table) each
//! move logits by 0.3–0.6 when left out. The reference ran with flash attention, whose CPU
//! kernel keeps the attention sum in f16 for batches under 64 rows and in f32 above:
//! following it exactly (tried; `tests/tools/llama_tensors.py` dumps llama.cpp's tensors)
//! makes "one_word" exact natively, but every other prompt still drifts through the
//! mat-mul kernels' accumulation order (tinyBLAS for batched Q5_0/Q8_0, AVX2 Q4_K/Q6_K,
//! repacked Q4_K), and the f16 sum amplifies the wasm kernels' other order (one_word 0.78
//! off there). So the CPU path keeps ggml's non-flash roundings, and greedy tokens are held to
//! llama.cpp's up to its first step with a top-2 margin below 0.25 (DESIGN.md), the
//! first-position logits to `LOGIT_TOL`, and the top-5 order wherever llama.cpp's own
//! logits are more than `ORDER_GAP` apart (the wasm build, whose simd128 kernels sum in
//! yet another order, swaps two tokens 0.45 apart five logits below the top one).
//! llama.cpp's own source built for wasm (wllama; `benches/wllama-numerics.mjs`) is no
//! closer: 0.15–0.29 off in centered first-position logits, and it leaves these greedy
//! tokens before the first 0.1 margin on 3 of the 8 prompts.

mod common;
use common::*;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::sampler::{argmax, SamplerConfig};
use ouvert::weights::ModelBytes;

const MARGIN: f64 = 0.25;
const LOGIT_TOL: f64 = 0.75;
const ORDER_GAP: f64 = 0.5;

fn engine() -> Engine {
    let bytes = std::fs::read(model_path()).unwrap();
    Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap()
}

#[test]
fn prompts_match_llama_cpp() {
    let reference = reference();
    let mut e = engine();
    let mut failures = Vec::new();
    for p in reference["prompts"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let r = &p["llama_cpp"];
        let prompt = e.encode(p["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            prompt,
            ids(&r["prompt_ids"]),
            "{id}: prompt ids differ from llama.cpp"
        );

        let logits = e.logits(&prompt).unwrap();
        let top5: Vec<(usize, f64)> = r["top5_first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_u64().unwrap() as usize,
                    t["logit"].as_f64().unwrap(),
                )
            })
            .collect();
        let diff = |(t, want): (usize, f64)| logits[t] as f64 - want;
        let worst = top5.iter().map(|&t| diff(t).abs()).fold(0.0, f64::max);
        // Softmax ignores a shift of all logits: the spread around the top-1 is what decides.
        let worst_centered = top5
            .iter()
            .map(|&t| (diff(t) - diff(top5[0])).abs())
            .fold(0.0, f64::max);
        if worst > LOGIT_TOL {
            failures.push(format!("{id}: first-position logit off by {worst:.4}"));
        }
        for (i, &(a, la)) in top5.iter().enumerate() {
            for &(b, lb) in &top5[i + 1..] {
                if la - lb > ORDER_GAP && logits[a] <= logits[b] {
                    failures.push(format!(
                        "{id}: token {b} ranks above {a}, llama.cpp has them {:.3} apart",
                        la - lb
                    ));
                }
            }
        }

        let margins = margins(&r["step_margin"]);
        let want = ids(&r["greedy_ids"]);
        let n = must_match(&margins, MARGIN);
        let opts = GenerateOptions {
            max_tokens: want.len(),
            sampler: SamplerConfig::greedy(),
            stop_at_eos: false,
            ..Default::default()
        };
        let got = e.generate(&prompt, &opts, &mut |_| true).unwrap().tokens;
        assert_eq!(
            argmax(&logits),
            got[0],
            "{id}: the first greedy token is the logits' argmax"
        );
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!("{id:18} top-5 logits off by ≤{worst:.3} (centered ≤{worst_centered:.3}); greedy equal for {same} steps (must: {n}; to the first 0.1 margin: {})", must_match(&margins, 0.1));
        if same < n {
            failures.push(format!(
                "{id}: greedy differs at step {same} (reference margin {}): got {:?}, want {:?}",
                margins[same],
                &got[..n],
                &want[..n]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
