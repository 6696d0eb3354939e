//! Loading a model and generating text: prefill, then decode one token at a time with the
//! KV cache, streaming each piece, until EOS, a stop string, `max_tokens` or the context end.

use crate::backend::{Backend, Readback};
use crate::bail;
use crate::chat::{ChatTemplate, Message};
use crate::config::ModelCard;
use crate::constraint::{mask_logits, ResponseFormat, TokenConstraint};
use crate::cost::{Cost, Work};
use crate::cpu::Cpu;
use crate::error::{Code, Result};
use crate::gguf::Gguf;
use crate::models::{self, Model};
use crate::sampler::{Sampler, SamplerConfig, Scores, TopLogits, Want};
use crate::score::{
    perplexity, row_scores, Score, ScoreOptions, ScoreStats, ScoredToken, MAX_TOP_LOGPROBS,
};
use crate::tokenizer::{EarlyTokenizer, StreamDecoder, Tokenizer, MERGES_KEY, VOCABULARY_KEYS};
use crate::weights::ModelBytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const DEFAULT_CONTEXT: usize = 2048;
/// Prompts are fed in slices of this many tokens, bounding the activations' memory (and
/// the sliding layers' caches).
const PREFILL_CHUNK: usize = models::MAX_ROWS;
/// The most logits a scoring pass reads back (16 MB): 16 rows of Gemma 3's vocabulary.
const SCORE_FLOATS: usize = 1 << 22;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GenerateOptions {
    pub max_tokens: usize,
    #[serde(flatten)]
    pub sampler: SamplerConfig,
    /// Generation ends before any of these strings; they are not part of the text.
    pub stop: Vec<String>,
    /// When prompt + `max_tokens` do not fit the context: keep the end of the prompt
    /// (after BOS) instead of failing with `context_overflow`.
    pub truncate: bool,
    /// Stop at EOS and end-of-turn tokens (true), or generate through them.
    pub stop_at_eos: bool,
    /// Hold the output to a JSON Schema, a regex or a grammar.
    pub response_format: Option<ResponseFormat>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampler: SamplerConfig::default(),
            stop: Vec::new(),
            truncate: false,
            stop_at_eos: true,
            response_format: None,
        }
    }
}

/// A conversation's prompt ids, and how many of its oldest messages were left out to fit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatPrompt {
    pub ids: Vec<u32>,
    pub dropped_messages: usize,
}

/// One generated token, as streamed to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct Piece {
    pub token: u32,
    /// New text, whole UTF-8 characters only (may be empty while a character is split
    /// across tokens, or while text might be the start of a stop string).
    pub text: String,
    /// This token as the alternatives are reported (its own text and log-probability),
    /// when `top_logprobs` asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<TopToken>,
    /// Most likely alternatives at this step, when `top_logprobs` asked for them.
    pub top: Vec<TopToken>,
}

/// An alternative the model weighed at one step.
#[derive(Debug, Clone, Serialize)]
pub struct TopToken {
    pub token: u32,
    /// The token's own text (lossy when it is part of a multi-byte character).
    pub text: String,
    pub logprob: f32,
}

/// What one `Engine::step` did.
#[derive(Debug, Clone)]
pub enum Event {
    /// Fed `done` of the prompt's `total` tokens (long prompts take several steps).
    Prefill {
        done: usize,
        total: usize,
    },
    Piece(Piece),
    Done(Output),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// EOS, end of turn, or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Leading prompt tokens whose keys were already in the cache (the conversation so
    /// far, when a request extends the last one): only the others were computed.
    pub cached_prompt_tokens: usize,
    pub completion_tokens: usize,
    pub time_to_first_token_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    /// Time spent computing what a `response_format` allows (included in the above).
    pub constraint_ms: f64,
    /// What its forward passes read and computed, and the energy that comes to.
    pub cost: Cost,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish_reason: FinishReason,
    pub stats: Stats,
}

pub struct Engine {
    model: Box<dyn Model>,
    /// The file the model came from, and its header less the vocabulary: what rebuilding
    /// the model on another backend reads.
    file: Arc<ModelBytes>,
    header: Gguf,
    pub tokenizer: Tokenizer,
    pub card: ModelCard,
    chat: Option<ChatTemplate>,
    /// Tokens whose keys and values are in the cache, so a prompt that extends the last
    /// conversation only computes what is new.
    cached: Vec<u32>,
    /// Bumped whenever the cache is repurposed, so a stale `Generation` cannot continue.
    epoch: u64,
    /// The vocabulary as the constraint engine reads it, built on first use.
    #[cfg(feature = "grammars")]
    grammars: Option<crate::constraint::Grammars>,
}

/// A text being scored (`Engine::score_start`), one forward pass per step.
pub struct Scoring {
    epoch: u64,
    ids: Vec<u32>,
    opts: ScoreOptions,
    window: usize,
    stride: usize,
    /// Tokens of the text a window after the first reads (the window less its BOS).
    body: usize,
    bos: Option<u32>,
    tokens: Vec<ScoredToken>,
    /// The current window: `ids[start..end]`, as `input` (BOS first after the first window,
    /// `offset` of them), read up to `pos`.
    start: usize,
    end: usize,
    input: Vec<u32>,
    offset: usize,
    pos: usize,
    /// Tokens before this are scored (by an earlier window).
    scored_to: usize,
    read: usize,
    t0: f64,
    work0: Work,
}

impl Scoring {
    /// Tokens scored so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.tokens.len(), self.ids.len())
    }
}

/// A generation in progress. `Engine::start` makes one and `Engine::step` advances it by
/// one prompt chunk or one token, so a caller (the browser worker) can stop between steps.
pub struct Generation {
    epoch: u64,
    opts: GenerateOptions,
    prompt: Vec<u32>,
    /// What the model said about the next token; `None` until the prompt is fed.
    scores: Option<Scores>,
    /// The last sampled token, fed to the model at the next step.
    unfed: Option<u32>,
    sampler: Sampler,
    /// What keeps the output valid, under a `response_format`.
    constraint: Option<Box<dyn TokenConstraint>>,
    history: Vec<u32>,
    tokens: Vec<u32>,
    text: String,
    decoder: StreamDecoder,
    /// Text that may be the beginning of a stop string.
    held: String,
    finish: Option<FinishReason>,
    /// Prompt tokens reused from the cache when the generation started.
    reused: usize,
    constraint_ms: f64,
    t0: f64,
    t_first: f64,
    work0: Work,
}

impl Generation {
    /// What a step needs from the model: a constrained step masks the whole row first.
    fn want(&self) -> Want {
        match self.constraint {
            Some(_) => Want::Logits,
            None => self.sampler.want(),
        }
    }
}

impl Engine {
    /// Parses, validates and loads a whole GGUF file. `context` is the number of positions
    /// to allocate the KV cache for (capped at the model's trained context).
    pub fn load(file: ModelBytes, context: usize) -> Result<Self> {
        Self::load_on(Cpu, file, context)
    }

    /// `load`, with the model's kernels on `backend` (the CPU or a GPU).
    pub fn load_on<B: Backend + 'static>(
        backend: B,
        file: ModelBytes,
        context: usize,
    ) -> Result<Self> {
        Self::load_with(backend, file, None, context, EarlyTokenizer::off())
    }

    /// `load_on`, with the file's header when it was parsed as the file streamed in, and
    /// the tokenizer that may be building from it already (`EarlyTokenizer`).
    pub fn load_with<B: Backend + 'static>(
        backend: B,
        file: ModelBytes,
        header: Option<Gguf>,
        context: usize,
        mut early: EarlyTokenizer,
    ) -> Result<Self> {
        let mut gguf = match header {
            Some(g) => g,
            None => Gguf::parse(file.as_slice())?,
        };
        let file = Arc::new(file);
        let (card, chat) = (ModelCard::read(&gguf), ChatTemplate::from_gguf(&gguf));
        // Built here, the tokenizer comes before the model allocates its KV cache, and takes
        // the vocabulary's metadata out first: the three at once were the load's peak
        // memory. Built early on a pool thread, it finishes while the model loads. Either
        // way its error waits, so that a file's model errors are reported first.
        let built_here = early.build_unless_started(&mut gguf);
        gguf.metadata
            .retain(|k, _| !VOCABULARY_KEYS.contains(&k.as_str()) && k != MERGES_KEY);
        let model = models::load(backend, &gguf, &file, context)?;
        let tokenizer = built_here
            .or_else(|| early.take())
            .expect("a started build gives a tokenizer")?;
        if tokenizer.vocab_size() != model.vocab() {
            bail!(
                Code::InvalidMetadata,
                "the vocabulary has {} tokens but the embedding has {} rows; the file is inconsistent",
                tokenizer.vocab_size(),
                model.vocab()
            );
        }
        Ok(Engine {
            model,
            file,
            header: gguf,
            card,
            chat,
            tokenizer,
            cached: Vec::new(),
            epoch: 0,
            #[cfg(feature = "grammars")]
            grammars: None,
        })
    }

    /// Rebuilds the model on `backend` (after a lost GPU, or to try one); the tokenizer
    /// and settings stay, the KV cache starts empty.
    pub fn use_backend<B: Backend + 'static>(&mut self, backend: B) -> Result<()> {
        self.model = models::load(backend, &self.header, &self.file, self.model.context())?;
        self.cached.clear();
        self.epoch += 1;
        Ok(())
    }

    /// Forgets what the KV cache holds, so that the next prompt is computed whole (what a
    /// benchmark on a warm engine measures, as llama.cpp's reset).
    pub fn forget(&mut self) {
        self.cached.clear();
        self.epoch += 1;
    }

    /// Where the model computes now, which decides its answers' energy figures.
    pub fn device(&self) -> crate::cost::Device {
        self.model.device()
    }

    pub fn context(&self) -> usize {
        self.model.context()
    }

    /// Prompt ids for plain text completion (BOS first when the model wants it).
    pub fn encode(&mut self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true, false)
    }

    /// Prompt ids for a conversation, through the model's chat template.
    pub fn encode_chat(&mut self, messages: &[Message]) -> Result<Vec<u32>> {
        self.encode_chat_with_tools(messages, &[])
    }

    /// `encode_chat`, the model told of `tools` it may call (OpenAI's tool definitions).
    pub fn encode_chat_with_tools(
        &mut self,
        messages: &[Message],
        tools: &[serde_json::Value],
    ) -> Result<Vec<u32>> {
        let Some(t) = &self.chat else {
            bail!(
                Code::InvalidChat,
                "this model has no chat template; use plain completion instead"
            );
        };
        let text = t.render_with_tools(messages, tools)?;
        let mut ids = self.tokenizer.encode(&text, false, true)?;
        if let Some(bos) = self.tokenizer.bos.filter(|_| self.tokenizer.add_bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// Prompt ids for a conversation that leaves `reserve` positions of the context for
    /// the answer: while it does not fit, its oldest turn (a user message and the replies
    /// up to the next one) is dropped; leading system messages and the last turn stay.
    pub fn encode_chat_fitting(
        &mut self,
        messages: &[Message],
        tools: &[serde_json::Value],
        reserve: usize,
    ) -> Result<ChatPrompt> {
        let system = messages.iter().take_while(|m| m.role == "system").count();
        let mut kept = messages.to_vec();
        let mut dropped = 0;
        loop {
            let ids = self.encode_chat_with_tools(&kept, tools)?;
            if ids.len() + reserve <= self.context() {
                return Ok(ChatPrompt {
                    ids,
                    dropped_messages: dropped,
                });
            }
            // The oldest turn after the system messages: up to the next user message, so
            // there is none when the last turn is all that is left.
            let after_first = kept.get(system + 1..).unwrap_or_default();
            let Some(n) = after_first
                .iter()
                .position(|m| m.role == "user")
                .map(|i| i + 1)
            else {
                bail!(
                    Code::ContextOverflow,
                    "the last message and the system prompt ({} tokens) plus max_tokens ({reserve}) exceed the context of {} tokens; shorten the message, lower max_tokens, or load with a larger contextLength",
                    ids.len(),
                    self.context()
                );
            };
            dropped += kept.drain(system..system + n).count();
        }
    }

    /// Sets the forward pass's debug hook (`models::Tap`: each intermediate by llama.cpp's
    /// name), or removes it with `None`.
    pub fn set_tap(&mut self, tap: Option<crate::models::Tap>) {
        self.model.set_tap(tap);
    }

    /// Logits after `ids`, reusing the cache for the prefix shared with the last call.
    pub fn logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        block_on(self.logits_async(ids))
    }

    /// `logits`, for a backend that needs the event loop to read results (WebGPU in a page).
    pub async fn logits_async(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        self.check_prompt(ids)?;
        self.reuse_prefix(ids);
        let mut logits = Vec::new();
        while self.cached.len() < ids.len() {
            logits = self.feed_chunk(ids, Want::Logits).await?;
        }
        Ok(logits)
    }

    /// The log-probability of each of `ids` after the ones before, the best alternatives,
    /// and the perplexity: every position's logits, a few rows per forward pass.
    pub fn score(&mut self, ids: &[u32], opts: &ScoreOptions) -> Result<Score> {
        let mut s = self.score_start(ids, opts.clone())?;
        loop {
            if let Some(score) = block_on(self.score_step_async(&mut s))? {
                return Ok(score);
            }
        }
    }

    /// Starts scoring `ids`; `score_step_async` reads one pass at a time, so a caller can
    /// stop between passes. A text longer than the context is read in windows `stride` apart.
    pub fn score_start(&mut self, ids: &[u32], opts: ScoreOptions) -> Result<Scoring> {
        if opts.top_logprobs > MAX_TOP_LOGPROBS {
            bail!(
                Code::InvalidArgument,
                "topLogprobs is at most {MAX_TOP_LOGPROBS}, not {}",
                opts.top_logprobs
            );
        }
        if ids.len() < 2 {
            bail!(
                Code::InvalidArgument,
                "a text to score needs at least two tokens (the first is what the others follow)"
            );
        }
        let context = self.context();
        let window = ids.len().min(context);
        let stride = opts.stride.unwrap_or(context / 2).min(window);
        let bos = self.tokenizer.bos.filter(|&b| ids[0] == b);
        // A window after the first starts with BOS again when the text did (as llama.cpp's
        // perplexity tool does), then reads `body` tokens of the text.
        let body = window - usize::from(bos.is_some());
        if window < ids.len() && (stride == 0 || stride + 1 > body) {
            bail!(
                Code::InvalidArgument,
                "stride must be between 1 and {} for a context of {context} tokens",
                body.saturating_sub(1)
            );
        }
        self.check_prompt(&ids[..window])?;
        let mut s = Scoring {
            epoch: 0,
            ids: ids.to_vec(),
            opts,
            window,
            stride,
            body,
            bos,
            tokens: vec![ScoredToken {
                id: ids[0],
                text: self.tokenizer.decode(&ids[..1]),
                logprob: None,
                top: vec![],
            }],
            start: 0,
            end: 0,
            input: Vec::new(),
            offset: 0,
            pos: 0,
            scored_to: 1,
            read: 0,
            t0: now_ms(),
            work0: self.model.work(),
        };
        self.score_window(&mut s);
        Ok(s)
    }

    /// Sets up the window that starts at `s.start`, on an empty cache.
    fn score_window(&mut self, s: &mut Scoring) {
        let len = if s.start == 0 { s.window } else { s.body };
        s.end = (s.start + len).min(s.ids.len());
        s.input = s.bos.filter(|_| s.start > 0).into_iter().collect();
        s.offset = s.input.len();
        s.input.extend_from_slice(&s.ids[s.start..s.end]);
        s.pos = 0;
        self.cached.clear();
        self.epoch += 1;
        s.epoch = self.epoch;
    }

    /// Reads the next pass of a `Scoring`; the whole `Score` once the text is read.
    pub async fn score_step_async(&mut self, s: &mut Scoring) -> Result<Option<Score>> {
        if s.epoch != self.epoch {
            bail!(
                Code::Superseded,
                "another request used this engine since this scoring started; start it again"
            );
        }
        // Rows per pass: every logit of a pass is read back (a GPU binds them in one buffer).
        let rows = (SCORE_FLOATS / self.model.vocab()).clamp(1, models::MAX_ROWS);
        let to = (s.pos + rows).min(s.input.len() - 1);
        let pending = self.model.forward(&s.input[s.pos..to], s.pos, Want::Rows);
        let logits = self.settle(pending, &s.input[s.pos..to]).await?;
        for (r, row) in logits.chunks_exact(self.model.vocab()).enumerate() {
            // Row r predicts the token at window position pos + r + 1.
            let at = s.start + s.pos + r + 1 - s.offset;
            if at >= s.scored_to {
                let text = |id| self.tokenizer.decode(&[id]);
                let (logprob, top) = row_scores(row, s.ids[at], s.opts.top_logprobs, text);
                s.tokens.push(ScoredToken {
                    id: s.ids[at],
                    text: text(s.ids[at]),
                    logprob: Some(logprob),
                    top,
                });
            }
        }
        s.read += to - s.pos;
        s.pos = to;
        if s.pos + 1 < s.input.len() {
            return Ok(None);
        }
        s.scored_to = s.end;
        if s.end < s.ids.len() {
            s.start = s.end - (s.body - s.stride);
            self.score_window(s);
            return Ok(None);
        }
        let ms = now_ms() - s.t0;
        Ok(Some(Score {
            perplexity: perplexity(&s.tokens),
            tokens: std::mem::take(&mut s.tokens),
            window: s.window,
            stride: s.stride,
            stats: ScoreStats {
                ms,
                tokens_per_second: rate(s.read, ms),
                cost: self.cost_since(s.work0),
            },
        }))
    }

    /// Generates from prompt ids. `on_piece` sees every token as it comes and returns
    /// `false` to stop, which ends the call with an `aborted` error; the engine stays usable.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_piece: &mut dyn FnMut(&Piece) -> bool,
    ) -> Result<Output> {
        let mut g = self.start(prompt, opts.clone())?;
        loop {
            match self.step(&mut g)? {
                Event::Prefill { .. } => {}
                Event::Piece(p) => {
                    if !on_piece(&p) {
                        bail!(Code::Aborted, "generation was stopped by the caller");
                    }
                }
                Event::Done(out) => return Ok(out),
            }
        }
    }

    /// Begins a generation from prompt ids; nothing is computed until `step`. Starting
    /// another generation (or calling `logits`) ends this one. A `response_format` is
    /// compiled here (built with `grammars`; otherwise see `start_with`).
    pub fn start(&mut self, prompt: &[u32], opts: GenerateOptions) -> Result<Generation> {
        #[cfg(feature = "grammars")]
        if let Some(format) = &opts.response_format {
            let constraint = self.grammars()?.matcher(format)?;
            return self.start_with(prompt, opts, constraint.map(|m| Box::new(m) as _));
        }
        self.start_with(prompt, opts, None)
    }

    /// `start`, with the constraint for the options' `response_format` made by the caller
    /// (the page's grammar module).
    pub fn start_with(
        &mut self,
        prompt: &[u32],
        opts: GenerateOptions,
        constraint: Option<Box<dyn TokenConstraint>>,
    ) -> Result<Generation> {
        let free = matches!(opts.response_format, None | Some(ResponseFormat::Text));
        if !free && constraint.is_none() {
            bail!(
                Code::Internal,
                "a responseFormat needs the grammar module, which was not given"
            );
        }
        let ctx = self.context();
        let mut prompt = prompt.to_vec();
        if prompt.len() + opts.max_tokens > ctx {
            if !opts.truncate || opts.max_tokens >= ctx {
                bail!(
                    Code::ContextOverflow,
                    "the prompt ({} tokens) plus max_tokens ({}) exceed the context of {} tokens; shorten the prompt, lower max_tokens, pass truncate, or load with a larger contextLength",
                    prompt.len(),
                    opts.max_tokens,
                    ctx
                );
            }
            let keep_bos = usize::from(
                self.tokenizer.bos.is_some() && prompt.first() == self.tokenizer.bos.as_ref(),
            );
            let drop = prompt.len() + opts.max_tokens - ctx;
            prompt.drain(keep_bos..keep_bos + drop);
        }
        self.check_prompt(&prompt)?;
        self.reuse_prefix(&prompt);
        Ok(Generation {
            epoch: self.epoch,
            sampler: Sampler::new(opts.sampler.clone()),
            constraint,
            history: prompt.clone(),
            prompt,
            opts,
            scores: None,
            unfed: None,
            tokens: Vec::new(),
            text: String::new(),
            decoder: StreamDecoder::default(),
            held: String::new(),
            finish: None,
            reused: self.cached.len(),
            constraint_ms: 0.0,
            t0: now_ms(),
            t_first: 0.0,
            work0: self.model.work(),
        })
    }

    /// Advances `g` by one prompt chunk or one token. After `Event::Done`, `g` is spent.
    pub fn step(&mut self, g: &mut Generation) -> Result<Event> {
        block_on(self.step_async(g))
    }

    /// `step`, for a backend that needs the event loop to read results (WebGPU in a page).
    pub async fn step_async(&mut self, g: &mut Generation) -> Result<Event> {
        if g.epoch != self.epoch {
            bail!(
                Code::Superseded,
                "another request used this engine since this generation started; start it again"
            );
        }
        if g.scores.is_none() {
            let want = g.want();
            let out = self.feed_chunk(&g.prompt, want).await?;
            if self.cached.len() == g.prompt.len() {
                g.scores = Some(self.scores(out, want));
                g.t_first = now_ms();
                if g.opts.max_tokens == 0 {
                    g.finish = Some(FinishReason::Length);
                }
            }
            return Ok(Event::Prefill {
                done: self.cached.len(),
                total: g.prompt.len(),
            });
        }
        if let Some(reason) = g.finish {
            return Ok(Event::Done(self.finish(g, reason)));
        }
        if let Some(tok) = g.unfed.take() {
            let want = g.want();
            let pending = self.model.forward(&[tok], self.cached.len(), want);
            let out = self.settle(pending, &[tok]).await?;
            g.scores = Some(self.scores(out, want));
        }
        let scores = g.scores.as_mut().expect("the prompt was fed");
        if let (Some(c), Scores::Logits(logits)) = (&mut g.constraint, &mut *scores) {
            let t = now_ms();
            mask_logits(&c.allowed()?, logits);
            g.constraint_ms += now_ms() - t;
        }
        let pick = g.sampler.sample_scores(scores, &g.history);
        let tok = pick.token;
        let weighed = |token, logprob| TopToken {
            token,
            text: self.tokenizer.decode(&[token]),
            logprob,
        };
        let chosen = pick.logprob.map(|l| weighed(tok, l));
        let top = pick
            .top
            .into_iter()
            .map(|c| weighed(c.token, c.logprob))
            .collect();
        g.tokens.push(tok);
        g.history.push(tok);
        if g.opts.stop_at_eos && self.tokenizer.stop_ids.contains(&tok) {
            g.finish = Some(FinishReason::Stop);
            // Text held back for a possible stop string is the end of the answer after all.
            let rest = std::mem::take(&mut g.held) + &g.decoder.finish();
            if rest.is_empty() {
                return Ok(Event::Done(self.finish(g, FinishReason::Stop)));
            }
            g.text.push_str(&rest);
            return Ok(Event::Piece(Piece {
                token: tok,
                text: rest,
                chosen,
                top,
            }));
        }
        let complete = match &mut g.constraint {
            Some(c) => {
                let t = now_ms();
                c.consume(tok)?;
                g.constraint_ms += now_ms() - t;
                c.is_done()
            }
            None => false,
        };
        g.held.push_str(&g.decoder.push(&self.tokenizer, tok));
        let (mut emit, stopped) = split_at_stop(&mut g.held, &g.opts.stop);
        if complete {
            // Nothing may follow a complete constrained output: the end, without waiting
            // for the model to choose EOS.
            g.finish = Some(FinishReason::Stop);
            emit.push_str(&std::mem::take(&mut g.held));
            emit.push_str(&g.decoder.finish());
        } else if stopped {
            g.finish = Some(FinishReason::Stop);
        } else if g.tokens.len() >= g.opts.max_tokens || g.history.len() >= self.context() {
            g.finish = Some(FinishReason::Length);
            emit.push_str(&std::mem::take(&mut g.held));
            emit.push_str(&g.decoder.finish());
        } else {
            g.unfed = Some(tok);
        }
        g.text.push_str(&emit);
        Ok(Event::Piece(Piece {
            token: tok,
            text: emit,
            chosen,
            top,
        }))
    }

    fn finish(&mut self, g: &mut Generation, reason: FinishReason) -> Output {
        let t_end = now_ms();
        g.finish = Some(reason);
        let decode_n = g.tokens.len().saturating_sub(1);
        Output {
            stats: Stats {
                prompt_tokens: g.prompt.len(),
                cached_prompt_tokens: g.reused,
                completion_tokens: g.tokens.len(),
                time_to_first_token_ms: g.t_first - g.t0,
                prefill_tokens_per_second: rate(g.prompt.len(), g.t_first - g.t0),
                decode_tokens_per_second: rate(decode_n, t_end - g.t_first),
                constraint_ms: g.constraint_ms,
                cost: self.cost_since(g.work0),
            },
            prompt_tokens: g.prompt.clone(),
            tokens: std::mem::take(&mut g.tokens),
            text: std::mem::take(&mut g.text),
            finish_reason: reason,
        }
    }

    /// The constraint engine's view of the vocabulary, built on first use.
    #[cfg(feature = "grammars")]
    fn grammars(&mut self) -> Result<&crate::constraint::Grammars> {
        if self.grammars.is_none() {
            let words = self.tokenizer.grammar_words(self.model.vocab());
            let grammars = crate::constraint::Grammars::new(&words, &self.tokenizer.stop_ids)?;
            self.grammars = Some(grammars);
        }
        Ok(self.grammars.as_ref().expect("just built"))
    }

    /// The model's output tokens as the constraint engine reads them (for the page's
    /// grammar module).
    pub fn grammar_words(&self) -> Vec<Vec<u8>> {
        self.tokenizer.grammar_words(self.model.vocab())
    }

    fn check_prompt(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            bail!(Code::InvalidArgument, "the prompt is empty");
        }
        if ids.len() > self.context() {
            bail!(Code::ContextOverflow, "the prompt has {} tokens but the context holds {}; shorten it or load the model with a larger contextLength", ids.len(), self.context());
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.model.vocab()) {
            bail!(
                Code::InvalidArgument,
                "token id {bad} is outside the vocabulary ({} tokens)",
                self.model.vocab()
            );
        }
        Ok(())
    }

    /// Keeps the cached prefix shared with `ids`, but always recomputes the last token to
    /// get its logits.
    fn reuse_prefix(&mut self, ids: &[u32]) {
        let keep = self
            .cached
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        self.cached.truncate(keep);
        self.epoch += 1;
    }

    /// Feeds the next slice of `ids` after the cached prefix; what `want` asks of the
    /// logits after it, if it is the last slice (nothing is read for the others).
    async fn feed_chunk(&mut self, ids: &[u32], want: Want) -> Result<Vec<f32>> {
        let from = self.cached.len();
        let to = ids.len().min(from + PREFILL_CHUNK);
        let pending = self.model.forward(
            &ids[from..to],
            from,
            if to == ids.len() { want } else { Want::Nothing },
        );
        self.settle(pending, &ids[from..to]).await
    }

    fn scores(&self, out: Vec<f32>, want: Want) -> Scores {
        match want {
            Want::Top { temp, .. } => {
                Scores::Top(TopLogits::from_row(&out, self.model.vocab(), temp))
            }
            _ => Scores::Logits(out),
        }
    }

    /// What the model read and computed since it had done `work0`.
    fn cost_since(&self, work0: Work) -> Cost {
        Cost::of(self.model.work() - work0, self.model.device())
    }

    /// Waits for a forward pass; only when it succeeded do its tokens count as cached. A
    /// failed one (a lost GPU) leaves the cache as it was before the call.
    async fn settle(&mut self, pending: Readback, fed: &[u32]) -> Result<Vec<f32>> {
        let logits = pending.await?;
        self.cached.extend_from_slice(fed);
        Ok(logits)
    }
}

/// Moves out of `held` the text that can be shown: everything before a stop string (then
/// `true`), or everything but a tail that could still grow into one.
fn split_at_stop(held: &mut String, stops: &[String]) -> (String, bool) {
    let hit = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| held.find(s.as_str()))
        .min();
    if let Some(at) = hit {
        let out = held[..at].to_owned();
        held.clear();
        return (out, true);
    }
    let keep = stops
        .iter()
        .flat_map(|s| {
            (1..s.len())
                .rev()
                .filter(|&n| s.is_char_boundary(n))
                .map(move |n| &s[..n])
        })
        .filter(|p| held.ends_with(p))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let out: String = held.drain(..held.len() - keep).collect();
    (out, false)
}

fn rate(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// Drives a future to completion on this thread. The CPU backend's futures are ready at
/// once and native wgpu's block inside; only WebGPU in a page needs a real executor.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::hint::spin_loop();
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1000.0
}

#[cfg(target_arch = "wasm32")]
fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[cfg(test)]
mod tests {
    use super::split_at_stop;

    #[test]
    fn stop_strings_cut_and_hold_back() {
        let stops = vec!["\n\nUser:".to_string()];
        let mut held = "Hello\n\nUs".to_string();
        assert_eq!(
            split_at_stop(&mut held, &stops),
            ("Hello".to_string(), false)
        );
        assert_eq!(held, "\n\nUs");
        held.push_str("er: hi");
        assert_eq!(split_at_stop(&mut held, &stops), (String::new(), true));
        let mut held = "no stop here".to_string();
        assert_eq!(
            split_at_stop(&mut held, &stops),
            ("no stop here".to_string(), false)
        );
    }
}
