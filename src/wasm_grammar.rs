//! The page's grammar module: this crate built with `grammar-module`, so that only what
//! constrained decoding needs is in it (llguidance, ~350 KB gzipped, kept out of the
//! engine's wasm). The worker loads it on the first request with a `responseFormat`.

use crate::constraint::{Grammars, ResponseFormat, TokenConstraint};
use crate::error::{Code, Error};
use wasm_bindgen::prelude::*;

/// A model's vocabulary as llguidance reads it: built once per model (about a second).
#[wasm_bindgen]
pub struct GrammarVocabulary(Grammars);

#[wasm_bindgen]
impl GrammarVocabulary {
    /// From the engine's `grammarVocabulary()`: the tokens' bytes, where each ends, and the
    /// ids that end a generation.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], ends: &[u32], stop_ids: &[u32]) -> Result<GrammarVocabulary, JsValue> {
        let mut words = Vec::with_capacity(ends.len());
        let mut from = 0;
        for &end in ends {
            let end = end as usize;
            let word = bytes.get(from..end).ok_or_else(|| {
                Error::new(
                    Code::InvalidArgument,
                    "the vocabulary's ends run past its bytes",
                )
            })?;
            words.push(word.to_vec());
            from = end;
        }
        Ok(GrammarVocabulary(Grammars::new(&words, stop_ids)?))
    }

    /// The matcher for one generation under `format` (the `responseFormat` option, as
    /// JSON), or `undefined` for free text; `invalid_argument` names what cannot be honoured.
    pub fn matcher(&self, format: &str) -> Result<Option<GrammarMatcher>, JsValue> {
        let format: ResponseFormat = serde_json::from_str(format)
            .map_err(|e| Error::new(Code::InvalidArgument, format!("bad responseFormat: {e}")))?;
        Ok(self.0.matcher(&format)?.map(GrammarMatcher))
    }
}

/// One constrained output in progress: what the engine's `start` takes as its constraint.
#[wasm_bindgen]
pub struct GrammarMatcher(crate::constraint::Matcher);

#[wasm_bindgen]
impl GrammarMatcher {
    /// The tokens allowed next, as a bit set.
    pub fn allowed(&mut self) -> Result<Vec<u32>, JsValue> {
        Ok(self.0.allowed()?)
    }

    pub fn consume(&mut self, token: u32) -> Result<(), JsValue> {
        Ok(self.0.consume(token)?)
    }

    #[wasm_bindgen(js_name = isDone)]
    pub fn is_done(&mut self) -> bool {
        self.0.is_done()
    }
}
