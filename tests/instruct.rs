//! The instruct model (Qwen2.5 Coder 0.5B Instruct: `qwen2`, byte-level BPE, ChatML) against
//! llama.cpp (../shared/reference/), and conversations: the cache kept between turns, the
//! oldest turns dropped when a conversation outgrows the context.
//!
//! Greedy tokens are held to llama.cpp's up to its first step with a top-2 margin below
//! 0.25, as for the default model (tests/reference.rs says why not tighter).

mod common;
use common::*;
use ouvert::chat::Message;
use ouvert::engine::{Engine, FinishReason, GenerateOptions};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;

const MARGIN: f64 = 0.25;
const IM_END: u32 = 151645;

fn engine(context: usize) -> Engine {
    let bytes = std::fs::read(instruct_model_path()).unwrap();
    Engine::load(ModelBytes::from_slice(&bytes).unwrap(), context).unwrap()
}

fn message(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

fn messages(v: &serde_json::Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| message(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

fn greedy(max_tokens: usize, stop_at_eos: bool) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerConfig::greedy(),
        stop_at_eos,
        ..Default::default()
    }
}

/// Prompt ids (plain, or through the file's chat template), greedy tokens and the stop at
/// `<|im_end|>`, on every reference prompt.
#[test]
fn prompts_match_llama_cpp() {
    let reference = instruct_reference();
    let mut e = engine(1024);
    let mut failures = Vec::new();
    for p in reference["prompts"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let r = &p["llama_cpp"];
        let prompt = match p.get("messages") {
            Some(m) => e.encode_chat(&messages(m)).unwrap(),
            None => e.encode(p["text"].as_str().unwrap()).unwrap(),
        };
        assert_eq!(
            prompt,
            ids(&r["prompt_ids"]),
            "{id}: prompt ids differ from llama.cpp"
        );

        let margins = margins(&r["step_margin"]);
        let want = ids(&r["greedy_ids"]);
        let n = must_match(&margins, MARGIN);
        let got = e
            .generate(&prompt, &greedy(want.len(), false), &mut |_| true)
            .unwrap()
            .tokens;
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        eprintln!("{id:16} greedy equal for {same} steps (must: {n})");
        if same < n {
            failures.push(format!(
                "{id}: greedy differs at step {same} (reference margin {}): got {:?}, want {:?}",
                margins[same],
                &got[..n],
                &want[..n]
            ));
        }
        // Where llama.cpp's answer ends within the steps that must match, ours ends there too.
        if let Some(end) = want[..n].iter().position(|&t| t == IM_END) {
            let out = e
                .generate(&prompt, &greedy(want.len(), true), &mut |_| true)
                .unwrap();
            assert_eq!(
                out.finish_reason,
                FinishReason::Stop,
                "{id}: the answer ends at <|im_end|>"
            );
            assert_eq!(
                out.tokens,
                want[..=end],
                "{id}: the answer ends where llama.cpp's does"
            );
            let text = r["greedy_text"].as_str().unwrap();
            assert_eq!(
                out.text,
                text[..text.find("<|im_end|>").unwrap()],
                "{id}: answer text"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A second turn computes only its new tokens: the first turn's prompt and answer stay in
/// the cache.
#[test]
fn the_next_turn_reuses_the_conversation_in_the_cache() {
    let mut e = engine(1024);
    let mut chat = vec![message(
        "user",
        "My name is Léa. Say hello to me in one short sentence.",
    )];
    let first = e.encode_chat(&chat).unwrap();
    let out = e
        .generate(&first, &greedy(40, true), &mut |_| true)
        .unwrap();
    assert_eq!(
        out.finish_reason,
        FinishReason::Stop,
        "the first answer ends: {:?}",
        out.text
    );
    assert_eq!(out.stats.cached_prompt_tokens, 0);
    chat.push(message("assistant", &out.text));
    chat.push(message("user", "What is my name?"));
    let second = e.encode_chat(&chat).unwrap();
    let out2 = e
        .generate(&second, &greedy(20, true), &mut |_| true)
        .unwrap();
    // The first prompt and every answer token but the last (`<|im_end|>`, sampled, not fed).
    let reused = out2.stats.cached_prompt_tokens;
    eprintln!(
        "turn 2: {} of {} prompt tokens from the cache; first token {:.0} ms (turn 1: {:.0} ms)",
        reused,
        out2.stats.prompt_tokens,
        out2.stats.time_to_first_token_ms,
        out.stats.time_to_first_token_ms
    );
    assert_eq!(reused, first.len() + out.tokens.len() - 1);
    assert_eq!(
        &second[..reused],
        &[&first[..], &out.tokens[..out.tokens.len() - 1]].concat()[..]
    );
    assert!(
        out2.text.contains("Léa"),
        "the model remembers: {:?}",
        out2.text
    );
}

/// A conversation longer than the context loses its oldest turns, never the system prompt
/// or the last message; when even those do not fit, `context_overflow`.
#[test]
fn a_long_conversation_drops_its_oldest_turns() {
    let mut e = engine(256);
    let mut chat = vec![message("system", "You are terse.")];
    for i in 0..12 {
        chat.push(message(
            "user",
            &format!("Question number {i}: what is {i} plus {i}?"),
        ));
        chat.push(message("assistant", &format!("{i} plus {i} is {}.", 2 * i)));
    }
    chat.push(message("user", "And what is 7 times 6?"));
    let whole = e.encode_chat(&chat).unwrap().len();
    let fitted = e.encode_chat_fitting(&chat, &[], 64).unwrap();
    assert!(
        whole + 64 > 256,
        "the conversation ({whole} tokens) must not fit"
    );
    assert!(fitted.ids.len() + 64 <= 256);
    assert!(
        fitted.dropped_messages > 0 && fitted.dropped_messages.is_multiple_of(2),
        "whole turns"
    );
    let kept = [&chat[..1], &chat[1 + fitted.dropped_messages..]].concat();
    assert_eq!(
        fitted.ids,
        e.encode_chat(&kept).unwrap(),
        "system prompt and the newest turns"
    );
    // One turn fewer would not have fitted: only what had to go went.
    let one_more = [&chat[..1], &chat[fitted.dropped_messages - 1..]].concat();
    assert!(e.encode_chat(&one_more).unwrap().len() + 64 > 256);
    let out = e
        .generate(&fitted.ids, &greedy(64, true), &mut |_| true)
        .unwrap();
    assert!(!out.tokens.is_empty());

    let huge = vec![
        message("system", "You are terse."),
        message("user", &"word ".repeat(400)),
    ];
    assert_eq!(
        e.encode_chat_fitting(&huge, &[], 64).unwrap_err().code,
        "context_overflow"
    );
    // Nothing but a system prompt, too long: an error, not a panic (which kills a worker).
    let only_system = vec![message("system", &"word ".repeat(400))];
    assert_eq!(
        e.encode_chat_fitting(&only_system, &[], 64)
            .unwrap_err()
            .code,
        "context_overflow"
    );
}

/// On a GPU (lavapipe in `./build.sh test`, where a forward pass of this model takes seconds):
/// a two-turn chat whose answer llama.cpp ends within the steps that must match, answered
/// whole, ending at `<|im_end|>` as there. (SwiftShader answers another one in
/// tests/browser/webgpu.test.mjs.)
#[test]
fn on_the_gpu_an_answer_matches_llama_cpp() {
    let Some(g) = gpu() else { return };
    let bytes = std::fs::read(instruct_model_path()).unwrap();
    let mut e = Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 512).unwrap();
    let reference = instruct_reference();
    let id = "chat_two_turns";
    let p = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap();
    let r = &p["llama_cpp"];
    let prompt = e.encode_chat(&messages(&p["messages"])).unwrap();
    assert_eq!(prompt, ids(&r["prompt_ids"]), "{id}: prompt ids");
    let margins = margins(&r["step_margin"]);
    let want = ids(&r["greedy_ids"]);
    let end = want.iter().position(|&t| t == IM_END).unwrap();
    assert!(
        end < must_match(&margins, MARGIN),
        "{id}: the reference answer ends in time"
    );
    let out = e
        .generate(&prompt, &greedy(want.len(), true), &mut |_| true)
        .unwrap();
    eprintln!("{id:16} on the GPU: {:?}", out.text);
    assert_eq!(
        out.tokens,
        want[..=end],
        "{id}: GPU greedy tokens and their end"
    );
    assert_eq!(out.finish_reason, FinishReason::Stop);
}
