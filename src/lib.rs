//! Ouvert: open language models that run inside a web page. See ARCHITECTURE.md.

pub mod backend;
pub mod chat;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod models;
pub mod sampler;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod weights;

pub use error::{Error, Result};
