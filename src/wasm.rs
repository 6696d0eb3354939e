//! The engine as seen from JavaScript (wasm-bindgen). Errors arrive as real `Error`
//! objects with a stable `code` property.
//!
//! Loading streams: JS creates a `ModelLoader` for the file's size, pushes each downloaded
//! chunk straight into wasm memory, then hands the loader to `WasmEngine.load`, so the
//! file exists once in memory.

use crate::chat::Message;
use crate::engine::{Engine, Event, GenerateOptions, Generation};
use crate::error::Error;
use crate::weights::ModelBytes;
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;

fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    let _ = js_sys::Reflect::set(&err, &"code".into(), &e.code.into());
    err.into()
}

fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| js_error(Error::new("internal", e.to_string())))
}

/// Runs this build's SIMD kernels against scalar code on random data; throws if they differ.
#[wasm_bindgen(js_name = kernelSelfCheck)]
pub fn kernel_self_check() -> Result<(), JsValue> {
    crate::cpu::dot::self_check().map_err(|m| js_error(Error::new("internal", m)))
}

#[wasm_bindgen]
pub struct ModelLoader {
    bytes: ModelBytes,
    written: usize,
    /// Hashes as the chunks arrive, so verifying costs no second pass over the file.
    hasher: Option<Sha256>,
}

#[wasm_bindgen]
impl ModelLoader {
    /// Reserves wasm memory for a model file of `size` bytes; `hash` computes its SHA-256
    /// on the way in.
    #[wasm_bindgen(constructor)]
    pub fn new(size: f64, hash: bool) -> Result<ModelLoader, JsValue> {
        if !(size >= 0.0 && size <= u32::MAX as f64) {
            return Err(js_error(Error::new("model_too_large", format!("a {size}-byte model does not fit in a browser's 4 GB wasm memory"))));
        }
        Ok(ModelLoader { bytes: ModelBytes::zeroed(size as usize).map_err(js_error)?, written: 0, hasher: hash.then(Sha256::new) })
    }

    /// Appends the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        let end = self.written + chunk.len();
        if end > self.bytes.len() {
            return Err(js_error(Error::new("invalid_argument", format!("received {end} bytes, more than the announced {}", self.bytes.len()))));
        }
        self.bytes.as_mut_slice()[self.written..end].copy_from_slice(chunk);
        self.written = end;
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        Ok(())
    }

    /// The file's SHA-256 in hex, once every byte has arrived (when asked for at creation).
    pub fn sha256(&self) -> Option<String> {
        let h = self.hasher.as_ref().filter(|_| self.written == self.bytes.len())?;
        Some(h.clone().finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    #[wasm_bindgen(getter)]
    pub fn loaded(&self) -> f64 {
        self.written as f64
    }
}

#[wasm_bindgen]
pub struct WasmEngine {
    engine: Engine,
    /// The generation `step` advances; one at a time per engine.
    generation: Option<Generation>,
}

#[wasm_bindgen]
impl WasmEngine {
    /// Parses and loads the file the loader holds; `context` positions of KV cache.
    pub fn load(loader: ModelLoader, context: usize) -> Result<WasmEngine, JsValue> {
        if loader.written < loader.bytes.len() {
            return Err(js_error(Error::new(
                "truncated_file",
                format!("only {} of {} bytes of the model arrived; fetch it again", loader.written, loader.bytes.len()),
            )));
        }
        Ok(WasmEngine { engine: Engine::load(loader.bytes, context).map_err(js_error)?, generation: None })
    }

    /// The model card plus the context and vocabulary sizes.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let mut v = serde_json::to_value(&self.engine.card).unwrap_or_default();
        v["contextLength"] = self.engine.context().into();
        v["vocabSize"] = self.engine.tokenizer.vocab_size().into();
        to_js(&v)
    }

    pub fn tokenize(&mut self, text: &str, parse_special: bool) -> Result<Vec<u32>, JsValue> {
        self.engine.tokenizer.encode(text, true, parse_special).map_err(js_error)
    }

    pub fn detokenize(&self, ids: &[u32]) -> String {
        self.engine.tokenizer.decode(ids)
    }

    /// The vocabulary entries of `ids` as the model sees them (`▁the`, `<0x0A>`), for
    /// showing a prompt as tokens.
    #[wasm_bindgen(js_name = tokenStrings)]
    pub fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&id| self.engine.tokenizer.token(id).unwrap_or("").to_owned()).collect()
    }

    /// Prompt ids of a conversation (`[{role, content}]`) through the model's chat template.
    #[wasm_bindgen(js_name = encodeChat)]
    pub fn encode_chat(&mut self, messages: JsValue) -> Result<Vec<u32>, JsValue> {
        let messages: Vec<Message> = serde_wasm_bindgen::from_value(messages)
            .map_err(|e| js_error(Error::new("invalid_argument", format!("messages must be [{{role, content}}] with string fields: {e}"))))?;
        self.engine.encode_chat(&messages).map_err(js_error)
    }

    /// Begins generating from prompt ids; `step` advances it. Ends any generation in progress.
    pub fn start(&mut self, ids: &[u32], options: JsValue) -> Result<(), JsValue> {
        self.generation = None;
        let opts = generate_options(options)?;
        self.generation = Some(self.engine.start(ids, opts).map_err(js_error)?);
        Ok(())
    }

    /// One prompt chunk or one token: `{type: "prefill", done, total}`, `{type: "piece",
    /// token, text, top}` or `{type: "done", output}`. Between steps the caller may stop.
    pub fn step(&mut self) -> Result<JsValue, JsValue> {
        let Some(g) = self.generation.as_mut() else {
            return Err(js_error(Error::new("invalid_argument", "no generation in progress; call start first")));
        };
        let event = self.engine.step(g).map_err(|e| {
            self.generation = None;
            js_error(e)
        })?;
        let v = match event {
            Event::Prefill { done, total } => serde_json::json!({ "type": "prefill", "done": done, "total": total }),
            Event::Piece(p) => serde_json::json!({ "type": "piece", "token": p.token, "text": p.text, "top": p.top }),
            Event::Done(out) => {
                self.generation = None;
                serde_json::json!({ "type": "done", "output": out })
            }
        };
        to_js(&v)
    }

    /// Drops the generation in progress; the engine stays ready for the next one.
    pub fn cancel(&mut self) {
        self.generation = None;
    }

    /// Logits after `ids` (for tests and the teaching demo).
    pub fn logits(&mut self, ids: &[u32]) -> Result<Vec<f32>, JsValue> {
        self.engine.logits(ids).map_err(js_error)
    }
}

fn generate_options(options: JsValue) -> Result<GenerateOptions, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(GenerateOptions::default());
    }
    serde_wasm_bindgen::from_value(options).map_err(|e| js_error(Error::new("invalid_argument", format!("bad generation options: {e}"))))
}
