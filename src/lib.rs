//! Ouvert: open language models that run inside a web page. See ARCHITECTURE.md.

pub mod backend;
pub mod chat;
pub mod config;
pub mod constraint;
pub mod cost;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod fastmath;
pub mod gbnf;
pub mod gguf;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod models;
pub mod sampler;
pub mod score;
pub mod tokenizer;
#[cfg(all(target_arch = "wasm32", not(feature = "grammar-module")))]
pub mod wasm;
#[cfg(all(target_arch = "wasm32", feature = "grammar-module"))]
pub mod wasm_grammar;
pub mod weights;

pub use error::{Error, Result};
