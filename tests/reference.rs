//! The engine against llama.cpp on the default model (../shared/reference/).

mod common;
use common::*;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::sampler::{argmax, SamplerConfig};
use ouvert::weights::ModelBytes;

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
        let want_prompt = ids(&r["prompt_ids"]);
        let prompt = e.encode(p["text"].as_str().unwrap()).unwrap();
        assert_eq!(prompt, want_prompt, "{id}: prompt ids differ from llama.cpp");

        // First position: the top-5 ids equal llama.cpp's, logits within 0.05.
        let logits = e.logits(&prompt).unwrap();
        let mut worst = 0f64;
        for (rank, t) in r["top5_first"].as_array().unwrap().iter().enumerate() {
            let tid = t["id"].as_u64().unwrap() as usize;
            let diff = (logits[tid] as f64 - t["logit"].as_f64().unwrap()).abs();
            worst = worst.max(diff);
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            if order[rank] != tid {
                failures.push(format!("{id}: top-5 rank {rank} is {} (logit {}), llama.cpp has {tid}", order[rank], logits[order[rank]]));
            }
        }
        if worst > 0.05 {
            failures.push(format!("{id}: first-position logit off by {worst:.4} (> 0.05)"));
        }

        // Greedy continuation, up to the first near tie of the reference.
        let margins: Vec<f64> = r["step_margin"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect();
        let want = ids(&r["greedy_ids"]);
        let n = must_match(&margins, 0.1);
        let opts = GenerateOptions { max_tokens: want.len(), sampler: SamplerConfig::greedy(), stop_at_eos: false, ..Default::default() };
        let got = e.generate(&prompt, &opts, &mut |_| true).unwrap().tokens;
        assert_eq!(argmax(&logits), got[0], "{id}: first greedy token differs from the logits' argmax");
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!("{id:18} worst top5 logit diff {worst:.4}; greedy equal for {same} steps (must: {n})");
        if same < n {
            failures.push(format!("{id}: greedy differs at step {same} (ref margin {}) : got {:?}, want {:?}", margins[same], &got[..n], &want[..n]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
