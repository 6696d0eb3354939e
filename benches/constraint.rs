//! `./build.sh bench`: what constrained decoding costs, natively, one thread. For each model:
//! the time to build the constraint engine's view of the vocabulary (once per model), then a
//! greedy generation under a JSON Schema against the same prompt unconstrained: the mask's
//! time per token as a share of a decode step.

use ouvert::chat::Message;
use ouvert::constraint::{Grammars, ResponseFormat};
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;
use serde_json::json;
use std::time::Instant;

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let models = [
        ("Gemma 3 270M", "gemma-3-270m-q4_k_m.gguf"),
        ("Qwen2.5 0.5B", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ];
    let schema = json!({
        "type": "object",
        "properties": {
            "nom": { "type": "string" },
            "naissance": { "type": "integer", "minimum": 1000, "maximum": 2100 },
            "ville": { "type": "string" },
            "metiers": { "type": "array", "items": { "type": "string" }, "maxItems": 3 }
        },
        "required": ["nom", "naissance", "ville", "metiers"],
        "additionalProperties": false
    });
    let question =
        "Extrais en JSON : « Marie Curie, née à Varsovie en 1867, fut physicienne et chimiste. »";
    println!("| model | vocabulary | build once | mask per token | decode step | mask / step |");
    println!("|---|---|---|---|---|---|");
    for (label, file) in models {
        let path = format!("{root}/models/{file}");
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("{path} is missing: ./build.sh model");
            continue;
        };
        let mut e = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 2048).unwrap();
        let prompt = if e.card.chat_template.is_some() {
            e.encode_chat(&[Message::new("user", question)]).unwrap()
        } else {
            e.encode(question).unwrap()
        };
        let mut opts = GenerateOptions {
            max_tokens: 48,
            sampler: SamplerConfig::greedy(),
            response_format: Some(ResponseFormat::JsonSchema {
                schema: schema.clone(),
            }),
            ..Default::default()
        };
        let t = Instant::now();
        Grammars::new(&e.grammar_words(), &e.tokenizer.stop_ids).unwrap();
        let build = t.elapsed().as_secs_f64() * 1000.0;
        e.generate(&prompt, &opts, &mut |_| true).unwrap(); // the engine's own, built once
        let mut best = f64::MAX;
        let mut mask = 0.0;
        for _ in 0..3 {
            let t = Instant::now();
            let out = e.generate(&prompt, &opts, &mut |_| true).unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if ms < best {
                best = ms;
                mask = out.stats.constraint_ms / out.stats.completion_tokens as f64;
            }
        }
        opts.response_format = None;
        let out = e.generate(&prompt, &opts, &mut |_| true).unwrap();
        let step = 1000.0 / out.stats.decode_tokens_per_second;
        println!(
            "| {label} | {} | {build:.0} ms | {mask:.2} ms | {step:.1} ms | {:.1} % |",
            e.tokenizer.vocab_size(),
            100.0 * mask / step
        );
    }
}
