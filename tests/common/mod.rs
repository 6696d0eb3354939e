//! Shared by the integration tests: the default model and the llama.cpp reference.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default model, fetched by `./build.sh model` (which `./build.sh test` runs first).
pub fn model_path() -> PathBuf {
    let p = std::env::var_os("OUVERT_MODEL").map(PathBuf::from).unwrap_or_else(|| root().join("models/gemma-3-270m-q4_k_m.gguf"));
    assert!(p.exists(), "{} is missing: run ./build.sh model", p.display());
    p
}

/// `../shared/reference/…` (beside the checkout), or `OUVERT_REFERENCE`.
pub fn reference() -> serde_json::Value {
    let p = std::env::var_os("OUVERT_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference/gemma-3-270m-q4_k_m.reference.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// How many leading greedy tokens must equal llama.cpp's: up to the first step whose
/// reference top-2 margin is below `min_margin` (a near tie another engine may break
/// the other way).
pub fn must_match(margins: &[f64], min_margin: f64) -> usize {
    margins.iter().position(|&m| m < min_margin).unwrap_or(margins.len())
}
