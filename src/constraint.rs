//! Constrained decoding: output held to a JSON Schema, a regular expression or a grammar.
//! `llguidance` (the engine llama.cpp and vLLM use) computes, before each step, the set of
//! tokens that keep the output valid; the sampler draws only from those.
//!
//! llguidance adds ~350 KB gzipped to a wasm build, so the page's engine is built without
//! it (no `grammars` feature) and a second, small wasm module holds it (`grammar-module`),
//! which the worker loads on the first constrained request and plugs into the engine as a
//! `TokenConstraint`. Natively the engine builds its own (`Engine::start`).

use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the output must be (`responseFormat` in the page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// Free text: no constraint.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid under this schema.
    JsonSchema { schema: Value },
    /// Text matched whole by this regular expression (Rust `regex` syntax, as JavaScript's
    /// for the common cases; no look-around or back-references).
    Regex { pattern: String },
    /// Text derived from a grammar, written in Lark (llguidance's dialect) or GBNF
    /// (llama.cpp's): exactly one of the two.
    Grammar {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lark: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gbnf: Option<String>,
    },
}

/// What the engine asks of a constraint at each step.
pub trait TokenConstraint {
    /// The tokens allowed next, as a bit set (bit `i % 32` of word `i / 32`: token `i`).
    fn allowed(&mut self) -> Result<Vec<u32>>;
    /// Advances past a sampled token (one `allowed` allowed).
    fn consume(&mut self, token: u32) -> Result<()>;
    /// The output is complete and nothing may follow it.
    fn is_done(&mut self) -> bool;
}

/// Sets every logit whose token `bits` leaves out to −∞ (tokens past its end included).
pub fn mask_logits(bits: &[u32], logits: &mut [f32]) {
    for (i, chunk) in logits.chunks_mut(32).enumerate() {
        let word = bits.get(i).copied().unwrap_or(0);
        if word != u32::MAX {
            for (b, l) in chunk.iter_mut().enumerate() {
                if word >> b & 1 == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
}

#[cfg(feature = "grammars")]
pub use engine::{Grammars, Matcher};

/// JSON as a model writes it in one line: `{"a": 1, "b": [2, 3]}`. No free whitespace,
/// which a small model can otherwise fill with newlines until `max_tokens`. llguidance's
/// `x-guidance` options; `www/tool-calls.js` gives tool calls the same (tests/options.rs).
pub fn json_layout() -> serde_json::Value {
    serde_json::json!({ "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": " })
}

#[cfg(feature = "grammars")]
mod engine {
    use super::{ResponseFormat, TokenConstraint};
    use crate::bail;
    use crate::error::{Code, Error, Result};
    use llguidance::api::TopLevelGrammar;
    use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
    use llguidance::ParserFactory;
    use serde_json::{json, Value};
    use std::sync::Arc;

    impl ResponseFormat {
        /// The grammar llguidance compiles, or `None` for free text.
        fn grammar(&self) -> Result<Option<TopLevelGrammar>> {
            let with_options = |mut schema: Value| {
                if let Value::Object(m) = &mut schema {
                    m.entry("x-guidance").or_insert_with(super::json_layout);
                }
                TopLevelGrammar::from_json_schema(schema)
            };
            Ok(Some(match self {
                ResponseFormat::Text => return Ok(None),
                ResponseFormat::JsonObject => with_options(json!({ "type": "object" })),
                ResponseFormat::JsonSchema { schema } => {
                    match schema {
                        Value::Object(_) | Value::Bool(true) => {}
                        _ => bail!(
                            Code::InvalidArgument,
                            "responseFormat.schema must be a JSON Schema object"
                        ),
                    }
                    with_options(schema.clone())
                }
                ResponseFormat::Regex { pattern } => TopLevelGrammar::from_regex(pattern),
                ResponseFormat::Grammar { lark, gbnf } => match (lark, gbnf) {
                    (Some(lark), None) => TopLevelGrammar::from_lark(lark.clone()),
                    (None, Some(gbnf)) => TopLevelGrammar::from_lark(crate::gbnf::to_lark(gbnf)?),
                    _ => bail!(
                        Code::InvalidArgument,
                        "a grammar responseFormat takes exactly one of lark and gbnf"
                    ),
                },
            }))
        }
    }

    /// What llguidance knows of a vocabulary, built once per model on first use (about a
    /// second for 262,144 tokens natively) and shared by every constrained generation.
    pub struct Grammars {
        factory: ParserFactory,
    }

    impl Grammars {
        /// `words[id]` is token `id`'s bytes (`Tokenizer::grammar_words`); `stop_ids` end a
        /// generation (the first is EOS to llguidance).
        pub fn new(words: &[Vec<u8>], stop_ids: &[u32]) -> Result<Self> {
            let info = TokRxInfo::new(words.len() as u32, stop_ids.first().copied().unwrap_or(0));
            let trie = TokTrie::from(&info, words).with_eos_tokens(stop_ids);
            let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
            // The default slices (JSON strings and the like, precomputed over the vocabulary)
            // make this build ~2× longer and a mask ~3× quicker: the build is once per model.
            let mut factory = ParserFactory::new_simple(&env).map_err(internal)?;
            factory.quiet();
            Ok(Grammars { factory })
        }

        /// A matcher for one generation (none for free text); an error names what the
        /// engine cannot honour.
        pub fn matcher(&self, format: &ResponseFormat) -> Result<Option<Matcher>> {
            let Some(grammar) = format.grammar()? else {
                return Ok(None);
            };
            let parser = self.factory.create_parser(grammar).map_err(|e| {
                Error::new(
                    Code::InvalidArgument,
                    format!("the responseFormat cannot be used: {e}"),
                )
            })?;
            Ok(Some(Matcher(llguidance::Matcher::new(Ok(parser)))))
        }
    }

    /// The state of one constrained output.
    pub struct Matcher(llguidance::Matcher);

    impl TokenConstraint for Matcher {
        fn allowed(&mut self) -> Result<Vec<u32>> {
            let allowed = self.0.compute_mask_or_eos().map_err(internal)?;
            if allowed.num_set() == 0 {
                bail!(
                    Code::Internal,
                    "the constraint allows no token here; please report the schema or grammar"
                );
            }
            Ok(allowed.as_slice().to_vec())
        }

        fn consume(&mut self, token: u32) -> Result<()> {
            self.0.consume_token(token).map_err(internal)
        }

        fn is_done(&mut self) -> bool {
            self.0.is_stopped()
        }
    }

    fn internal(e: impl std::fmt::Display) -> Error {
        Error::new(Code::Internal, format!("the constraint engine failed: {e}"))
    }
}
