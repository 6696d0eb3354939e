//! The engine as seen from JavaScript (wasm-bindgen). Errors arrive as real `Error`
//! objects with a stable `code` property.
//!
//! Loading streams: JS creates a `ModelLoader` for the file's size, pushes each downloaded
//! chunk straight into wasm memory, then hands the loader to `WasmEngine.load`, so the
//! file exists once in memory.

use crate::chat::Message;
use crate::constraint::TokenConstraint;
use crate::cpu::Cpu;
use crate::engine::{Engine, Event, GenerateOptions, Generation, Scoring};
use crate::error::{Code, Error};
use crate::gguf::{Gguf, HeaderWatch};
use crate::gpu::{Gpu, StreamingUpload};
use crate::tokenizer::{EarlyTokenizer, MergeOrder};
use crate::weights::Filling;
#[cfg(feature = "kernel-bench")]
use crate::weights::ModelBytes;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

fn js_error(e: Error) -> JsValue {
    e.into()
}

fn chat_messages(messages: JsValue) -> Result<Vec<Message>, JsValue> {
    serde_wasm_bindgen::from_value(messages).map_err(|e| {
        js_error(Error::new(
            Code::InvalidArgument,
            format!("messages must be [{{role, content}}] with string fields (and tool_calls, tool_call_id, name for tools): {e}"),
        ))
    })
}

/// OpenAI's tool definitions, passed to the chat template as they are.
fn chat_tools(tools: JsValue) -> Result<Vec<serde_json::Value>, JsValue> {
    from_js_or_default(tools, "tools must be an array of tool definitions")
}

/// A JS value read into `T` (its default when undefined or null); `invalid_argument` saying
/// `what` otherwise.
fn from_js_or_default<T: serde::de::DeserializeOwned + Default>(
    v: JsValue,
    what: &str,
) -> Result<T, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(v)
        .map_err(|e| js_error(Error::new(Code::InvalidArgument, format!("{what}: {e}"))))
}

fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(Error::new(Code::Internal, e.to_string())))
}

/// Runs this build's SIMD kernels against scalar code on random data; throws if they differ.
#[wasm_bindgen(js_name = kernelSelfCheck)]
pub fn kernel_self_check() -> Result<(), JsValue> {
    crate::cpu::dot::self_check()
        .and_then(|()| crate::cpu::kdot::self_check())
        .and_then(|()| crate::cpu::quant::self_check())
        .map_err(|m| js_error(Error::new(Code::Internal, m)))
}

/// The threaded build's worker pool (wasm-bindgen-rayon): JS awaits `initThreadPool(n)`,
/// then calls `threadsStarted(n)` so the mat-muls start splitting their rows.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = threadsStarted)]
pub fn threads_started(n: usize) {
    crate::cpu::par::pool_started(n);
}

/// A WebGPU device opened while the model downloads (`openGpu`), for `ModelLoader.useGpu`.
#[wasm_bindgen]
pub struct GpuDevice {
    gpu: Gpu,
}

/// Opens the browser's WebGPU adapter and a device; rejects (with the reason) where there
/// is none.
#[wasm_bindgen(js_name = openGpu)]
pub async fn open_gpu() -> Result<GpuDevice, JsValue> {
    Ok(GpuDevice {
        gpu: Gpu::new().await.map_err(js_error)?,
    })
}

#[wasm_bindgen]
pub struct ModelLoader {
    file: Filling,
    /// The header, parsed once as the file arrives when the tokenizer or the GPU can start
    /// on it before the whole file is in; the load then takes it.
    watch: HeaderWatch,
    header: Option<Gguf>,
    /// The device the weights go to as they arrive, once given (`useGpu`).
    gpu: Option<StreamingUpload>,
    /// Hashes as the chunks arrive, so verifying costs no second pass over the file.
    hasher: Option<Sha256>,
    tokenizer: EarlyTokenizer,
}

#[wasm_bindgen]
impl ModelLoader {
    /// Reserves wasm memory for a model file of `size` bytes; `hash` computes its SHA-256
    /// on the way in.
    #[wasm_bindgen(constructor)]
    pub fn new(size: f64, hash: bool) -> Result<ModelLoader, JsValue> {
        if !(size >= 0.0 && size <= u32::MAX as f64) {
            return Err(js_error(Error::new(
                Code::ModelTooLarge,
                format!("a {size}-byte model does not fit in a browser's 4 GB wasm memory"),
            )));
        }
        let file = Filling::new(size as usize).map_err(js_error)?;
        let watch = HeaderWatch::new(size as usize);
        Ok(ModelLoader {
            file,
            watch,
            header: None,
            gpu: None,
            hasher: hash.then(Sha256::new),
            tokenizer: EarlyTokenizer::if_threaded(),
        })
    }

    /// Uploads the weights to `device` as they arrive (and those already in now); `load`
    /// then runs the model there (backend "auto" or "webgpu").
    #[wasm_bindgen(js_name = useGpu)]
    pub fn use_gpu(&mut self, device: GpuDevice) {
        let mut upload = StreamingUpload::new(device.gpu);
        if let Some(h) = &self.header {
            upload.expect(&h.tensors);
        }
        self.gpu = Some(upload);
        self.arrived();
    }

    /// What starts before the whole file is in: the tokenizer's build, the GPU's uploads.
    fn arrived(&mut self) {
        let arrived = self.file.written();
        if self.header.is_none() && (self.tokenizer.wants_header() || self.gpu.is_some()) {
            self.header = self.watch.offer(arrived);
            if let Some(h) = &mut self.header {
                self.tokenizer.start(h);
                if let Some(g) = &mut self.gpu {
                    g.expect(&h.tensors);
                }
            }
        }
        if let Some(g) = &mut self.gpu {
            g.offer(arrived);
        }
    }

    /// Builds the tokenizer with a merge order cached from an earlier load of this model
    /// (`WasmEngine.takeMergeOrder`), before the file arrives. False (and nothing used) for
    /// bytes that are not an intact order.
    #[wasm_bindgen(js_name = useMergeOrder)]
    pub fn use_merge_order(&mut self, bytes: &[u8]) -> bool {
        MergeOrder::from_bytes(bytes)
            .map(|o| self.tokenizer.use_merge_order(o))
            .is_some()
    }

    /// Keeps the merge order the tokenizer's build derives, for `WasmEngine.takeMergeOrder`.
    #[wasm_bindgen(js_name = keepMergeOrder)]
    pub fn keep_merge_order(&mut self) {
        self.tokenizer.keep_merge_order();
    }

    /// Appends the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        self.file.push(chunk).map_err(js_error)?;
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        self.arrived();
        Ok(())
    }

    /// The part of the file's buffer not yet written, as a view into wasm memory, for a
    /// reader that fills it itself (an OPFS synchronous handle reads straight into it, with
    /// no copy through JS). Valid until wasm next allocates; then call `advance`.
    pub fn remaining(&mut self) -> js_sys::Uint8Array {
        let (rest, len) = self.file.rest();
        // SAFETY: the view covers bytes this loader owns; JS uses it before wasm allocates
        // again (the only way the memory could move or grow under it).
        unsafe { js_sys::Uint8Array::view_mut_raw(rest, len) }
    }

    /// Marks `n` more bytes as written through `remaining()`. Not for a hashing loader: it
    /// would not see those bytes.
    pub fn advance(&mut self, n: f64) -> Result<(), JsValue> {
        if self.hasher.is_some() || n.is_nan() || n < 0.0 {
            return Err(js_error(Error::new(
                Code::InvalidArgument,
                format!(
                    "cannot advance {n} bytes{}",
                    if self.hasher.is_some() {
                        " while hashing"
                    } else {
                        ""
                    }
                ),
            )));
        }
        // SAFETY: the reader wrote these bytes through `remaining()` (and wasm memory is
        // always initialised: a lying reader leaves zeros or old bytes, which the engine
        // validates like any file). `Filling` refuses a count past the file's end.
        unsafe { self.file.advance(n as usize) }.map_err(js_error)?;
        self.arrived();
        Ok(())
    }

    /// The file's SHA-256 in hex, once every byte has arrived (when asked for at creation).
    pub fn sha256(&self) -> Option<String> {
        let h = self
            .hasher
            .as_ref()
            .filter(|_| self.file.written().len() == self.file.len())?;
        Some(
            h.clone()
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    #[wasm_bindgen(getter)]
    pub fn loaded(&self) -> f64 {
        self.file.written().len() as f64
    }
}

/// Where the model runs: `"wasm"` (the CPU, simd128) or `"webgpu"`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    Wasm,
    WebGpu,
}

struct Inner {
    engine: Engine,
    /// The generation `step` advances; one at a time per engine.
    generation: Option<Generation>,
    /// The text `scoreStep` reads, pass by pass.
    scoring: Option<Scoring>,
    backend: Where,
    adapter: Option<String>,
    /// Why `"auto"` did not pick WebGPU, or why the engine left it.
    fallback: Option<Error>,
    lose_device: Option<Box<dyn Fn()>>,
    /// Bytes of weights uploaded to the GPU while the file was still arriving.
    streamed: usize,
}

#[wasm_bindgen]
pub struct WasmEngine {
    inner: Rc<RefCell<Inner>>,
}

fn busy() -> JsValue {
    js_error(Error::new(
        Code::Busy,
        "the engine is in the middle of another call; wait for it to finish",
    ))
}

#[wasm_bindgen]
impl WasmEngine {
    /// Parses and loads the file the loader holds; `context` positions of KV cache.
    /// `backend`: `"wasm"`, `"webgpu"` (fails with `webgpu_unavailable` when there is no
    /// adapter), or `"auto"` (WebGPU when an adapter passes a check against the CPU, else
    /// wasm; `info().fallback` says why).
    pub async fn load(
        loader: ModelLoader,
        context: usize,
        backend: String,
    ) -> Result<WasmEngine, JsValue> {
        let file = loader.file.finish().map_err(js_error)?;
        if !matches!(backend.as_str(), "auto" | "webgpu" | "wasm") {
            return Err(js_error(Error::new(
                Code::InvalidArgument,
                format!("unknown backend {backend:?}; use \"auto\", \"webgpu\" or \"wasm\""),
            )));
        }
        let mut engine = Engine::load_with(Cpu, file, loader.header, context, loader.tokenizer)
            .map_err(js_error)?;
        let (mut gpu, mut fallback) = (None, None);
        if backend != "wasm" {
            match to_gpu(&mut engine, loader.gpu.map(StreamingUpload::finish)).await {
                Ok(g) => gpu = Some(g),
                Err(e) if backend == "auto" => fallback = Some(e),
                Err(e) => return Err(js_error(e)),
            }
        }
        let backend = if gpu.is_some() {
            Where::WebGpu
        } else {
            Where::Wasm
        };
        let (adapter, lose_device, streamed) = match gpu {
            Some((a, l, s)) => (Some(a), Some(l), s),
            None => (None, None, 0),
        };
        let inner = Inner {
            engine,
            generation: None,
            scoring: None,
            backend,
            adapter,
            fallback,
            lose_device,
            streamed,
        };
        Ok(WasmEngine {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    /// The model card, context and vocabulary sizes, and where the model runs.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let i = self.inner.try_borrow().map_err(|_| busy())?;
        let mut v = serde_json::to_value(&i.engine.card).unwrap_or_default();
        v["contextLength"] = i.engine.context().into();
        v["vocabSize"] = i.engine.tokenizer.vocab_size().into();
        v["backend"] = if i.backend == Where::WebGpu {
            "webgpu"
        } else {
            "wasm"
        }
        .into();
        v["threads"] = crate::cpu::par::threads().into();
        v["simd"] = if cfg!(target_feature = "relaxed-simd") {
            "relaxed"
        } else {
            "simd128"
        }
        .into();
        v["energy"] =
            serde_json::to_value(crate::cost::energy_model(i.engine.device())).unwrap_or_default();
        v["energy"]["hostedPrompt"] =
            serde_json::to_value(crate::cost::HOSTED_PROMPT).unwrap_or_default();
        if let Some(a) = &i.adapter {
            v["adapter"] = a.as_str().into();
            v["streamedToGpu"] = i.streamed.into();
        }
        if let Some(e) = &i.fallback {
            v["fallback"] = serde_json::json!({ "code": e.code, "message": e.message });
        }
        to_js(&v)
    }

    /// The merge order the load derived (when its loader was asked to keep it), once, as a
    /// file to cache next to the model; undefined when there is none (a cached order was
    /// used, or the vocabulary has its own merges).
    #[wasm_bindgen(js_name = takeMergeOrder)]
    pub fn take_merge_order(&self) -> Result<Option<Vec<u8>>, JsValue> {
        Ok(self
            .inner
            .try_borrow_mut()
            .map_err(|_| busy())?
            .engine
            .tokenizer
            .take_merge_order()
            .map(|o| o.to_bytes()))
    }

    pub fn tokenize(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, JsValue> {
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        i.engine
            .tokenizer
            .encode(text, true, parse_special)
            .map_err(js_error)
    }

    pub fn detokenize(&self, ids: &[u32]) -> Result<String, JsValue> {
        Ok(self
            .inner
            .try_borrow()
            .map_err(|_| busy())?
            .engine
            .tokenizer
            .decode(ids))
    }

    /// The vocabulary entries of `ids` as the model sees them (`▁the`, `<0x0A>`), for
    /// showing a prompt as tokens.
    #[wasm_bindgen(js_name = tokenStrings)]
    pub fn token_strings(&self, ids: &[u32]) -> Result<Vec<String>, JsValue> {
        let i = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(ids
            .iter()
            .map(|&id| i.engine.tokenizer.token(id).unwrap_or("").to_owned())
            .collect())
    }

    /// How each of `ids` reads on screen: `{ text }`, `{ text, special: true }` for a
    /// control token, or `{ bytes }` where a token holds part of a character.
    #[wasm_bindgen(js_name = tokenPieces)]
    pub fn token_pieces(&self, ids: &[u32]) -> Result<JsValue, JsValue> {
        let i = self.inner.try_borrow().map_err(|_| busy())?;
        let pieces: Vec<_> = ids
            .iter()
            .map(|&id| i.engine.tokenizer.token_piece(id))
            .collect();
        to_js(&pieces)
    }

    /// Prompt ids of a conversation (`[{role, content}]`) through the model's chat template,
    /// with the `tools` it may call (OpenAI's definitions), if any.
    #[wasm_bindgen(js_name = encodeChat)]
    pub fn encode_chat(&self, messages: JsValue, tools: JsValue) -> Result<Vec<u32>, JsValue> {
        let messages = chat_messages(messages)?;
        let tools = chat_tools(tools)?;
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        i.engine
            .encode_chat_with_tools(&messages, &tools)
            .map_err(js_error)
    }

    /// `{ids, droppedMessages}`: a conversation's prompt ids leaving room for the answer
    /// (`options.maxTokens`), its oldest turns dropped while it does not fit (the system
    /// prompt stays).
    #[wasm_bindgen(js_name = encodeChatFitting)]
    pub fn encode_chat_fitting(
        &self,
        messages: JsValue,
        options: JsValue,
        tools: JsValue,
    ) -> Result<JsValue, JsValue> {
        let messages = chat_messages(messages)?;
        let tools = chat_tools(tools)?;
        let reserve = generate_options(options)?.max_tokens;
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        to_js(
            &i.engine
                .encode_chat_fitting(&messages, &tools, reserve)
                .map_err(js_error)?,
        )
    }

    /// Begins generating from prompt ids; `step` advances it. Ends any generation in progress.
    /// Under `options.responseFormat`, `constraint` is the grammar module's `GrammarMatcher`
    /// for it (anything with `allowed()`, `consume(token)` and `isDone()`).
    pub fn start(&self, ids: &[u32], options: JsValue, constraint: JsValue) -> Result<(), JsValue> {
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        i.stop();
        let opts = generate_options(options)?;
        let constraint = (!constraint.is_undefined() && !constraint.is_null())
            .then(|| Box::new(JsConstraint(constraint)) as Box<dyn TokenConstraint>);
        let g = i
            .engine
            .start_with(ids, opts, constraint)
            .map_err(js_error)?;
        i.generation = Some(g);
        Ok(())
    }

    /// One prompt chunk or one token, resolving to `{type: "prefill", done, total}`,
    /// `{type: "piece", token, text, chosen, top}` or `{type: "done", output}`. Between
    /// steps the caller may stop. A lost GPU rejects with `webgpu_lost` and moves the engine
    /// to wasm.
    // The borrow is the engine's lock for the whole step: a call that arrives during the
    // await fails with `busy` instead of running on a cache this step is changing.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn step(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut i = inner.try_borrow_mut().map_err(|_| busy())?;
            let Some(mut g) = i.generation.take() else {
                return Err(js_error(Error::new(
                    Code::InvalidArgument,
                    "no generation in progress; call start first",
                )));
            };
            let event = match i.engine.step_async(&mut g).await {
                Ok(e) => e,
                Err(e) => return Err(js_error(i.recover(e))),
            };
            let v = match event {
                Event::Prefill { done, total } => {
                    serde_json::json!({ "type": "prefill", "done": done, "total": total })
                }
                Event::Piece(p) => {
                    serde_json::json!({ "type": "piece", "token": p.token, "text": p.text, "chosen": p.chosen, "top": p.top })
                }
                Event::Done(out) => serde_json::json!({ "type": "done", "output": out }),
            };
            if v["type"] != "done" {
                i.generation = Some(g);
            }
            to_js(&v)
        })
    }

    /// The model's output tokens as the grammar module reads them: every token's bytes one
    /// after the other, where each ends, and the ids that end a generation.
    #[wasm_bindgen(js_name = grammarVocabulary)]
    pub fn grammar_vocabulary(&self) -> Result<JsValue, JsValue> {
        let i = self.inner.try_borrow().map_err(|_| busy())?;
        let words = i.engine.grammar_words();
        let mut ends: Vec<u32> = Vec::with_capacity(words.len());
        let mut bytes = Vec::new();
        for w in &words {
            bytes.extend_from_slice(w);
            ends.push(bytes.len() as u32);
        }
        let out = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &k.into(), &v);
        set("bytes", js_sys::Uint8Array::from(bytes.as_slice()).into())?;
        set("ends", js_sys::Uint32Array::from(ends.as_slice()).into())?;
        let stops = &i.engine.tokenizer.stop_ids;
        set(
            "stopIds",
            js_sys::Uint32Array::from(stops.as_slice()).into(),
        )?;
        Ok(out.into())
    }

    /// Drops the generation or scoring in progress; the engine stays ready for the next one.
    pub fn cancel(&self) -> Result<(), JsValue> {
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        i.stop();
        Ok(())
    }

    /// Begins scoring token ids (`options`: `{ topLogprobs, stride }`); `scoreStep` reads
    /// one forward pass at a time. Ends any generation in progress.
    #[wasm_bindgen(js_name = startScore)]
    pub fn start_score(&self, ids: &[u32], options: JsValue) -> Result<(), JsValue> {
        let mut i = self.inner.try_borrow_mut().map_err(|_| busy())?;
        i.stop();
        let opts = from_js_or_default(options, "bad score options")?;
        let s = i.engine.score_start(ids, opts).map_err(js_error)?;
        i.scoring = Some(s);
        Ok(())
    }

    /// Reads the next pass: `{ type: "progress", done, total }` (tokens scored), then
    /// `{ type: "done", score }`.
    #[wasm_bindgen(js_name = scoreStep)]
    // The borrow is the engine's lock for the whole pass, as in `step`.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn score_step(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut i = inner.try_borrow_mut().map_err(|_| busy())?;
            let Some(mut s) = i.scoring.take() else {
                return Err(js_error(Error::new(
                    Code::InvalidArgument,
                    "no scoring in progress; call startScore first",
                )));
            };
            match i.engine.score_step_async(&mut s).await {
                Ok(Some(score)) => to_js(&serde_json::json!({ "type": "done", "score": score })),
                Ok(None) => {
                    let (done, total) = s.progress();
                    i.scoring = Some(s);
                    to_js(&serde_json::json!({ "type": "progress", "done": done, "total": total }))
                }
                Err(e) => Err(js_error(i.recover(e))),
            }
        })
    }

    /// Resolves to the logits after `ids` (for tests and the teaching demo).
    // The borrow is the engine's lock for the whole step: a call that arrives during the
    // await fails with `busy` instead of running on a cache this step is changing.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn logits(&self, ids: Vec<u32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut i = inner.try_borrow_mut().map_err(|_| busy())?;
            match i.engine.logits_async(&ids).await {
                Ok(l) => Ok(js_sys::Float32Array::from(l.as_slice()).into()),
                Err(e) => Err(js_error(i.recover(e))),
            }
        })
    }

    /// Destroys the GPU device, as a driver reset would (for tests of the recovery path).
    #[wasm_bindgen(js_name = loseDeviceForTesting)]
    pub fn lose_device_for_testing(&self) -> Result<bool, JsValue> {
        let i = self.inner.try_borrow().map_err(|_| busy())?;
        Ok(i.lose_device.as_ref().map(|f| f()).is_some())
    }
}

impl Inner {
    /// Ends the generation or scoring in progress (one request at a time).
    fn stop(&mut self) {
        self.generation = None;
        self.scoring = None;
    }

    /// After a failed call: a lost GPU moves the model to the CPU, so the next request works.
    fn recover(&mut self, e: Error) -> Error {
        if self.backend == Where::WebGpu
            && (e.code == Code::WebgpuLost || e.code == Code::WebgpuError)
        {
            self.backend = Where::Wasm;
            self.adapter = None;
            self.lose_device = None;
            self.fallback = Some(e.clone());
            if let Err(cpu) = self.engine.use_backend(Cpu) {
                return cpu;
            }
        }
        e
    }
}

/// What the browser says its WebGPU adapter is (`GPUAdapterInfo`: vendor, architecture,
/// description); wgpu leaves the name empty on the web.
async fn browser_adapter_name() -> Option<String> {
    use js_sys::Reflect;
    let get = |o: &JsValue, k: &str| {
        Reflect::get(o, &JsValue::from_str(k))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    };
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let info = get(
        &wasm_bindgen_futures::JsFuture::from(promise).await.ok()?,
        "info",
    )?;
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .iter()
        .filter_map(|k| get(&info, k)?.as_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" ") + " (WebGPU)")
}

/// Moves `engine`'s model to a WebGPU adapter (`opened` while the file arrived, holding what
/// it uploaded, or opened now), after checking that it computes what the CPU does: one
/// token's logits, where a broken kernel would be off by far more than rounding. Gives the
/// adapter, a way to lose the device for tests, and the bytes uploaded while streaming.
async fn to_gpu(
    engine: &mut Engine,
    opened: Option<Gpu>,
) -> Result<(String, Box<dyn Fn()>, usize), Error> {
    let gpu = match opened {
        Some(g) => g,
        None => Gpu::new().await?,
    };
    let streamed = gpu.early_bytes;
    let adapter = browser_adapter_name()
        .await
        .unwrap_or_else(|| gpu.adapter.clone());
    let lose = gpu.destroyer();
    // Ordinary text, as the model reads it (BOS first where it wants one): a control token
    // alone, such as Qwen's <|endoftext|>, sets off activations so large that rounding
    // alone moves its logits by about 2.
    let probe = engine.encode("The")?;
    let want = engine.logits_async(&probe).await?;
    engine.use_backend(gpu)?;
    let got = engine.logits_async(&probe).await;
    let ok = got.as_ref().is_ok_and(|got| {
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        crate::sampler::argmax(got) == crate::sampler::argmax(&want) && worst < SELF_CHECK_TOLERANCE
    });
    if !ok {
        let why = match got {
            Err(e) => e.message,
            Ok(_) => "its logits differ from the CPU's".to_owned(),
        };
        engine.use_backend(Cpu)?;
        return Err(Error::new(Code::WebgpuUnavailable, format!("the WebGPU adapter {adapter} failed the self-check ({why}); the model runs on the CPU")));
    }
    Ok((adapter, lose, streamed))
}

/// GPU and CPU logits differ by rounding only (the CPU quantizes activations to 8 bits as
/// llama.cpp does; the GPU does not): well under 1 on this scale, where a wrong kernel is
/// off by tens.
const SELF_CHECK_TOLERANCE: f32 = 2.0;

/// A constraint from the grammar module, called through JavaScript at each step.
struct JsConstraint(JsValue);

impl JsConstraint {
    fn call(&self, method: &str, args: &js_sys::Array) -> crate::Result<JsValue> {
        let failed = |e: JsValue| {
            let code = js_sys::Reflect::get(&e, &"code".into())
                .ok()
                .and_then(|c| c.as_string());
            let message = js_sys::Reflect::get(&e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| format!("{e:?}"));
            let code = match code.as_deref() {
                Some("invalid_argument") => Code::InvalidArgument,
                _ => Code::Internal,
            };
            Error::new(code, format!("the grammar module failed: {message}"))
        };
        let f: js_sys::Function = js_sys::Reflect::get(&self.0, &method.into())
            .map_err(failed)?
            .dyn_into()
            .map_err(|_| Error::new(Code::Internal, format!("the constraint has no {method}()")))?;
        f.apply(&self.0, args).map_err(failed)
    }
}

impl TokenConstraint for JsConstraint {
    fn allowed(&mut self) -> crate::Result<Vec<u32>> {
        let bits = self.call("allowed", &js_sys::Array::new())?;
        Ok(js_sys::Uint32Array::new(&bits).to_vec())
    }

    fn consume(&mut self, token: u32) -> crate::Result<()> {
        self.call("consume", &js_sys::Array::of1(&token.into()))
            .map(|_| ())
    }

    fn is_done(&mut self) -> bool {
        self.call("isDone", &js_sys::Array::new())
            .is_ok_and(|v| v.is_truthy())
    }
}

fn generate_options(options: JsValue) -> Result<GenerateOptions, JsValue> {
    from_js_or_default(options, "bad generation options")
}

/// Per weight type, what the mat-muls of one decode step cost in this build: each matrix
/// times one activation row, `reps` times (milliseconds and bytes per step, summed by type;
/// the output projection apart). Only in the `kernel-bench` build (`benches/wasm-kernels.mjs`).
#[cfg(feature = "kernel-bench")]
#[wasm_bindgen(js_name = benchMatmuls)]
pub fn bench_matmuls(bytes: &[u8], reps: usize) -> Result<JsValue, JsValue> {
    use crate::backend::Backend;
    let file = std::sync::Arc::new(ModelBytes::from_slice(bytes).map_err(js_error)?);
    let g = crate::gguf::Gguf::parse(file.as_slice()).map_err(js_error)?;
    let tied = g.tensor("output.weight").is_none();
    let mut by = serde_json::Map::new();
    for t in g.tensors.iter().filter(|t| t.dims.len() == 2) {
        let output = t.name == "output.weight" || tied && t.name == "token_embd.weight";
        if t.name == "token_embd.weight" && !tied {
            continue; // a step reads one row of it
        }
        let m = Cpu.matrix(&file, t, None).map_err(js_error)?;
        let x: Vec<f32> = (0..m.cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![0f32; m.rows];
        let start = js_sys::Date::now();
        for _ in 0..reps.max(1) {
            m.matmul(&x, 1, &mut out);
        }
        let ms = (js_sys::Date::now() - start) / reps.max(1) as f64;
        let key = format!(
            "{}{}",
            t.dtype.name(),
            if output { " (output)" } else { "" }
        );
        let e = by
            .entry(key)
            .or_insert(serde_json::json!({ "ms": 0.0, "bytes": 0 }));
        e["ms"] = (e["ms"].as_f64().unwrap_or(0.0) + ms).into();
        e["bytes"] = (e["bytes"].as_u64().unwrap_or(0) + t.bytes as u64).into();
    }
    to_js(&serde_json::Value::Object(by))
}
