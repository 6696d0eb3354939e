//! Loading a model and generating text: prefill, then decode one token at a time with the
//! KV cache, streaming each piece, until EOS, a stop string, `max_tokens` or the context end.

use crate::bail;
use crate::chat::{ChatTemplate, Message};
use crate::config::ModelCard;
use crate::cpu::Cpu;
use crate::error::Result;
use crate::gguf::Gguf;
use crate::models::{self, Model};
use crate::sampler::{Candidate, Sampler, SamplerConfig};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use crate::weights::ModelBytes;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const DEFAULT_CONTEXT: usize = 2048;
/// Prompts are fed in slices of this many tokens, bounding the activations' memory.
const PREFILL_CHUNK: usize = 256;

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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_tokens: 256, sampler: SamplerConfig::default(), stop: Vec::new(), truncate: false, stop_at_eos: true }
    }
}

/// One generated token, as streamed to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct Piece {
    pub token: u32,
    /// New text, whole UTF-8 characters only (may be empty while a character is split
    /// across tokens, or while text might be the start of a stop string).
    pub text: String,
    /// Most likely alternatives at this step, when `top_logprobs` asked for them.
    pub top: Vec<Candidate>,
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
    pub completion_tokens: usize,
    pub time_to_first_token_ms: f64,
    pub prefill_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
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
    pub tokenizer: Tokenizer,
    pub card: ModelCard,
    chat: Option<ChatTemplate>,
    /// Tokens whose keys and values are in the cache, so a prompt that extends the last
    /// conversation only computes what is new.
    cached: Vec<u32>,
}

impl Engine {
    /// Parses, validates and loads a whole GGUF file. `context` is the number of positions
    /// to allocate the KV cache for (capped at the model's trained context).
    pub fn load(file: ModelBytes, context: usize) -> Result<Self> {
        let gguf = Gguf::parse(file.as_slice())?;
        let file = Arc::new(file);
        let model = models::load(Cpu, &gguf, &file, context)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        if tokenizer.vocab_size() != model.vocab() {
            bail!(
                "invalid_metadata",
                "the vocabulary has {} tokens but the embedding has {} rows; the file is inconsistent",
                tokenizer.vocab_size(),
                model.vocab()
            );
        }
        Ok(Engine { model, card: ModelCard::read(&gguf), chat: ChatTemplate::from_gguf(&gguf), tokenizer, cached: Vec::new() })
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
        let Some(t) = &self.chat else {
            bail!("invalid_chat", "this model has no chat template; use plain completion instead");
        };
        let text = t.render(messages)?;
        let mut ids = self.tokenizer.encode(&text, false, true)?;
        if let Some(bos) = self.tokenizer.bos.filter(|_| self.tokenizer.add_bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// Logits after `ids`, reusing the cache for the prefix shared with the last call.
    pub fn logits(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.is_empty() {
            bail!("invalid_argument", "the prompt is empty");
        }
        if ids.len() > self.context() {
            bail!("context_overflow", "the prompt has {} tokens but the context holds {}; shorten it or load the model with a larger contextLength", ids.len(), self.context());
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.model.vocab()) {
            bail!("invalid_argument", "token id {bad} is outside the vocabulary ({} tokens)", self.model.vocab());
        }
        // Keep the shared prefix, but always recompute the last token to get its logits.
        let keep = self.cached.iter().zip(ids).take_while(|(a, b)| a == b).count().min(ids.len() - 1);
        self.cached.truncate(keep);
        let mut logits = Vec::new();
        for chunk in ids[keep..].chunks(PREFILL_CHUNK) {
            logits = self.model.forward(chunk, self.cached.len());
            self.cached.extend_from_slice(chunk);
        }
        Ok(logits)
    }

    /// Generates from prompt ids. `on_piece` sees every token as it comes and returns
    /// `false` to stop, which ends the call with an `aborted` error; the engine stays usable.
    pub fn generate(&mut self, prompt: &[u32], opts: &GenerateOptions, on_piece: &mut dyn FnMut(&Piece) -> bool) -> Result<Output> {
        let ctx = self.context();
        let mut prompt = prompt.to_vec();
        if prompt.len() + opts.max_tokens > ctx {
            if !opts.truncate || opts.max_tokens >= ctx {
                bail!(
                    "context_overflow",
                    "the prompt ({} tokens) plus max_tokens ({}) exceed the context of {} tokens; shorten the prompt, lower max_tokens, pass truncate, or load with a larger contextLength",
                    prompt.len(),
                    opts.max_tokens,
                    ctx
                );
            }
            let keep_bos = usize::from(self.tokenizer.bos.is_some() && prompt.first() == self.tokenizer.bos.as_ref());
            let drop = prompt.len() + opts.max_tokens - ctx;
            prompt.drain(keep_bos..keep_bos + drop);
        }

        let t0 = now_ms();
        let mut logits = self.logits(&prompt)?;
        let t_first = now_ms();
        let mut sampler = Sampler::new(opts.sampler.clone());
        let mut history = prompt.clone();
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut decoder = StreamDecoder::default();
        let mut held = String::new(); // text that may be the beginning of a stop string
        let mut finish = FinishReason::Length;
        while tokens.len() < opts.max_tokens {
            let (tok, top) = sampler.sample(&mut logits, &history);
            tokens.push(tok);
            history.push(tok);
            if opts.stop_at_eos && self.tokenizer.stop_ids.contains(&tok) {
                finish = FinishReason::Stop;
                break;
            }
            held.push_str(&decoder.push(&self.tokenizer, tok));
            let (emit, stopped) = split_at_stop(&mut held, &opts.stop);
            text.push_str(&emit);
            if !on_piece(&Piece { token: tok, text: emit, top }) {
                self.settle_cache(&history);
                bail!("aborted", "generation was stopped by the caller");
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            if tokens.len() == opts.max_tokens || history.len() >= ctx {
                break;
            }
            logits = self.model.forward(&[tok], history.len() - 1);
            self.cached.push(tok);
        }
        if finish == FinishReason::Length {
            held.push_str(&decoder.finish());
            text.push_str(&held);
        }
        self.settle_cache(&history);
        let t_end = now_ms();
        let decode_n = tokens.len().saturating_sub(1);
        Ok(Output {
            stats: Stats {
                prompt_tokens: prompt.len(),
                completion_tokens: tokens.len(),
                time_to_first_token_ms: t_first - t0,
                prefill_tokens_per_second: rate(prompt.len(), t_first - t0),
                decode_tokens_per_second: rate(decode_n, t_end - t_first),
            },
            prompt_tokens: prompt,
            tokens,
            text,
            finish_reason: finish,
        })
    }

    /// The cache holds keys for every fed token: the last sampled token was never fed.
    fn settle_cache(&mut self, history: &[u32]) {
        let fed = self.cached.len().min(history.len());
        debug_assert_eq!(&self.cached[..fed], &history[..fed]);
        self.cached.truncate(fed);
    }
}

/// Moves out of `held` the text that can be shown: everything before a stop string (then
/// `true`), or everything but a tail that could still grow into one.
fn split_at_stop(held: &mut String, stops: &[String]) -> (String, bool) {
    let hit = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| held.find(s.as_str())).min();
    if let Some(at) = hit {
        let out = held[..at].to_owned();
        held.clear();
        return (out, true);
    }
    let keep = stops
        .iter()
        .flat_map(|s| (1..s.len()).rev().filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
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

#[cfg(not(target_arch = "wasm32"))]
fn now_ms() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
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
        assert_eq!(split_at_stop(&mut held, &stops), ("Hello".to_string(), false));
        assert_eq!(held, "\n\nUs");
        held.push_str("er: hi");
        assert_eq!(split_at_stop(&mut held, &stops), (String::new(), true));
        let mut held = "no stop here".to_string();
        assert_eq!(split_at_stop(&mut held, &stops), ("no stop here".to_string(), false));
    }
}
