//! Generation behaviour on a tiny random Gemma 3 (written by the test): the KV cache,
//! sliding windows, context limits, aborts and reuse.

mod common;
use common::gguf::tiny_gemma3;
use common::random;
use ouvert::backend::{AttnShape, Backend, RopeStyle, Span};
use ouvert::chat::Message;
use ouvert::cpu::{Act, Cpu};
use ouvert::engine::{Engine, FinishReason, GenerateOptions};
use ouvert::models::{rope_table, MAX_ROWS};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;

fn engine(context: usize) -> Engine {
    Engine::load(
        ModelBytes::from_slice(&tiny_gemma3().build()).unwrap(),
        context,
    )
    .unwrap()
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    }
}

#[test]
fn batched_prefill_equals_token_by_token_across_the_sliding_window() {
    let mut e = engine(64);
    let ids = e.encode("bonjour la bonne lou, bonjour bonjour").unwrap();
    assert!(ids.len() > 20, "longer than the window of 8: {}", ids.len());
    let batched = e.logits(&ids).unwrap();
    let mut fresh = engine(64);
    let mut stepwise = Vec::new();
    for k in 1..=ids.len() {
        stepwise = fresh.logits(&ids[..k]).unwrap(); // reuses the cache, feeds one token
    }
    let worst = batched
        .iter()
        .zip(&stepwise)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "batched and incremental logits differ by {worst}"
    );
}

/// The same past the point where the sliding layers' ring caches (window 8 + 255 slots)
/// wrap: a prompt fed in 256-token slices against one fed token by token.
#[test]
fn prefill_equals_token_by_token_once_the_sliding_caches_wrap() {
    let mut e = engine(1024);
    let ids = e.encode(&"bonjour la bonne lou, ".repeat(70)).unwrap();
    assert!(
        ids.len() > 2 * (8 + MAX_ROWS),
        "the caches wrap more than once: {} tokens",
        ids.len()
    );
    let batched = e.logits(&ids).unwrap();
    let mut fresh = engine(1024);
    let mut stepwise = Vec::new();
    for k in 1..=ids.len() {
        stepwise = fresh.logits(&ids[..k]).unwrap();
    }
    let worst = batched
        .iter()
        .zip(&stepwise)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "batched and incremental logits differ by {worst}"
    );
}

/// A sliding layer's cache is a ring of window + MAX_ROWS - 1 slots: attention over it
/// equals attention over a cache of the whole context, bit for bit, through prompt
/// slices and decode steps that wrap it several times.
#[test]
fn a_sliding_layers_ring_cache_attends_as_a_whole_cache_does() {
    let mut c = Cpu;
    let (heads, kv_heads, hd, window, ctx) = (4, 2, 64, 40, 1400);
    let width = kv_heads * hd;
    let (qn, kn, rope) = (
        random(hd, 1),
        random(hd, 2),
        rope_table(10_000.0, hd, ctx, 1.0, None),
    );
    let shape = AttnShape {
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: hd,
        span: Span::Window(window),
        rope: RopeStyle::Halves,
        scale: 0.125,
        softcap: 0.0,
    };
    let slots = window + MAX_ROWS - 1;
    let (mut ring, mut whole) = (
        c.kv_cache(slots, width).unwrap(),
        c.kv_cache(ctx, width).unwrap(),
    );
    let mut pos = 0;
    for n in [256, 256, 100, 1, 1, 256, 3, 1, 256, 200] {
        let seed = pos as u64 * 3;
        let (q, k, v) = (
            random(n * heads * hd, seed + 10),
            random(n * width, seed + 11),
            random(n * width, seed + 12),
        );
        let act = |data: &[f32], width| Act {
            data: data.to_vec(),
            rows: n,
            width,
        };
        let mut outs = Vec::new();
        for kv in [&mut ring, &mut whole] {
            let mut out = c.act(n, heads * hd);
            c.attention(
                &mut act(&q, heads * hd),
                &act(&k, width),
                &act(&v, width),
                Some((&qn, &kn)),
                1e-6,
                &rope,
                kv,
                pos,
                shape,
                &mut out,
            );
            outs.push(out.data);
        }
        assert!(
            outs[0] == outs[1],
            "{n} rows at {pos}: the ring's attention differs"
        );
        pos += n;
    }
    assert!(
        pos > 3 * slots,
        "the ring wrapped: {pos} positions in {slots} slots"
    );
}

#[test]
fn generation_is_deterministic_and_reports_stats() {
    let mut e = engine(128);
    let ids = e.encode("bonjour").unwrap();
    let a = e.generate(&ids, &greedy(12), &mut |_| true).unwrap();
    let b = engine(128)
        .generate(&ids, &greedy(12), &mut |_| true)
        .unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.tokens.len(), 12);
    assert_eq!(a.finish_reason, FinishReason::Length);
    assert_eq!(a.stats.prompt_tokens, ids.len());
    assert_eq!(a.stats.completion_tokens, 12);
    // The same prompt again finds itself in the cache, unless the engine forgets it.
    let again = e.generate(&ids, &greedy(12), &mut |_| true).unwrap();
    assert_eq!(again.stats.cached_prompt_tokens, ids.len() - 1);
    e.forget();
    let whole = e.generate(&ids, &greedy(12), &mut |_| true).unwrap();
    assert_eq!(whole.stats.cached_prompt_tokens, 0);
    assert_eq!((&again.tokens, &whole.tokens), (&a.tokens, &a.tokens));
    // Seeded sampling replays exactly; another seed gives another text.
    let sampled = |seed| {
        let opts = GenerateOptions {
            max_tokens: 24,
            sampler: SamplerConfig {
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..Default::default()
            },
            stop_at_eos: false,
            ..Default::default()
        };
        engine(128)
            .generate(&ids, &opts, &mut |_| true)
            .unwrap()
            .tokens
    };
    assert_eq!(sampled(1), sampled(1));
    assert_ne!(sampled(1), sampled(2));
}

#[test]
fn pieces_stream_in_order_and_add_up_to_the_text() {
    let mut e = engine(128);
    let ids = e.encode("la").unwrap();
    let mut streamed = String::new();
    let mut tokens = Vec::new();
    let opts = GenerateOptions {
        sampler: SamplerConfig {
            top_logprobs: 3,
            ..SamplerConfig::greedy()
        },
        ..greedy(16)
    };
    let out = e
        .generate(&ids, &opts, &mut |p| {
            streamed.push_str(&p.text);
            tokens.push(p.token);
            assert_eq!(p.top.len(), 3);
            assert_eq!(
                p.top[0].token, p.token,
                "greedy picks the most likely token"
            );
            true
        })
        .unwrap();
    assert_eq!(tokens, out.tokens);
    assert_eq!(streamed, out.text);
}

#[test]
fn context_overflow_is_an_error_and_the_engine_goes_on() {
    let mut e = engine(16);
    let long = e.encode("bonjour la bonne lou, bonjour").unwrap();
    assert!(long.len() > 16);
    assert_eq!(
        e.generate(&long, &greedy(4), &mut |_| true)
            .unwrap_err()
            .code,
        "context_overflow"
    );
    assert_eq!(e.logits(&long).unwrap_err().code, "context_overflow");
    let short = e.encode("la").unwrap();
    assert_eq!(
        e.generate(&short, &greedy(20), &mut |_| true)
            .unwrap_err()
            .code,
        "context_overflow",
        "prompt + max_tokens > context"
    );
    assert_eq!(
        e.generate(&short, &greedy(8), &mut |_| true)
            .unwrap()
            .tokens
            .len(),
        8
    );

    // With truncate, the start of the prompt (after BOS) gives way.
    let opts = GenerateOptions {
        truncate: true,
        ..greedy(4)
    };
    let out = e.generate(&long, &opts, &mut |_| true).unwrap();
    assert_eq!(out.prompt_tokens.len(), 12);
    assert_eq!(out.prompt_tokens[0], 2, "BOS is kept");
    assert_eq!(&out.prompt_tokens[1..], &long[long.len() - 11..]);
}

#[test]
fn an_abort_leaves_the_engine_as_good_as_new() {
    let mut e = engine(128);
    let ids = e.encode("bonjour la").unwrap();
    let mut n = 0;
    let err = e
        .generate(&ids, &greedy(20), &mut |_| {
            n += 1;
            n < 3
        })
        .unwrap_err();
    assert_eq!(err.code, "aborted");
    assert_eq!(n, 3, "stopped within one token");
    let after = e.generate(&ids, &greedy(20), &mut |_| true).unwrap();
    let fresh = engine(128)
        .generate(&ids, &greedy(20), &mut |_| true)
        .unwrap();
    assert_eq!(after.tokens, fresh.tokens);
}

#[test]
fn chat_uses_gemma_turns() {
    let mut e = engine(256);
    let ids = e.encode_chat(&[Message::new("user", "bonjour")]).unwrap();
    let start = e.tokenizer.token_id("<start_of_turn>").unwrap();
    let end = e.tokenizer.token_id("<end_of_turn>").unwrap();
    assert_eq!(ids[0], 2, "one BOS");
    assert_eq!(ids.iter().filter(|&&t| t == 2).count(), 1);
    assert_eq!(ids[1], start);
    assert_eq!(
        ids.iter().filter(|&&t| t == start).count(),
        2,
        "user turn and the opened model turn"
    );
    assert_eq!(ids.iter().filter(|&&t| t == end).count(), 1);
    assert_eq!(e.tokenizer.decode(&ids), "user\nbonjour\nmodel\n");
}

#[test]
fn bad_token_ids_and_empty_prompts_are_errors() {
    let mut e = engine(32);
    assert_eq!(e.logits(&[]).unwrap_err().code, "invalid_argument");
    assert_eq!(
        e.logits(&[2, 100_000]).unwrap_err().code,
        "invalid_argument"
    );
    assert!(e.logits(&[2, 5]).is_ok());
}

#[test]
fn stepping_streams_the_whole_text_and_a_new_start_supersedes_the_old() {
    use ouvert::engine::Event;
    let mut e = engine(256);
    let ids = e.encode("bonjour la bonne lou").unwrap();
    let whole = e.generate(&ids, &greedy(30), &mut |_| true).unwrap();
    // A stop string made of the middle of the greedy text, so pieces get held back.
    let stop = whole
        .text
        .chars()
        .skip(whole.text.chars().count() / 2)
        .take(3)
        .collect::<String>();
    for opts in [
        greedy(30),
        GenerateOptions {
            stop: vec![stop.clone()],
            ..greedy(30)
        },
    ] {
        let mut g = e.start(&ids, opts.clone()).unwrap();
        let (mut streamed, mut prefill_steps) = (String::new(), 0);
        let out = loop {
            match e.step(&mut g).unwrap() {
                Event::Prefill { done, total } => {
                    prefill_steps += 1;
                    assert!(done <= total && total == ids.len());
                }
                Event::Piece(p) => streamed.push_str(&p.text),
                Event::Done(out) => break out,
            }
        };
        assert_eq!(prefill_steps, 1);
        assert_eq!(
            streamed, out.text,
            "the pieces add up to the text (stop {:?})",
            opts.stop
        );
        if opts.stop.is_empty() {
            assert_eq!(out.tokens, whole.tokens);
        } else {
            assert_eq!(out.finish_reason, FinishReason::Stop);
            assert!(!out.text.contains(&stop) && whole.text.starts_with(&out.text));
        }
    }
    let mut first = e.start(&ids, greedy(5)).unwrap();
    e.step(&mut first).unwrap();
    let mut second = e.start(&ids, greedy(5)).unwrap();
    assert_eq!(e.step(&mut first).unwrap_err().code, "superseded");
    while !matches!(e.step(&mut second).unwrap(), Event::Done(_)) {}
}

#[test]
fn an_answer_reports_the_bytes_it_read_and_the_multiply_adds_it_did() {
    let file = tiny_gemma3().build();
    let g = ouvert::gguf::Gguf::parse(&file).unwrap();
    let mut e = engine(128);
    let prompt: Vec<u32> = (0..20).map(|i| 262 + i % 20).collect();
    let out = e.generate(&prompt, &greedy(5), &mut |_| true).unwrap();
    let cost = out.stats.cost;

    // Counted from the file: every tensor is read by each of the 5 passes (the prompt's,
    // then the 4 tokens fed back), the embedding being the tied output projection, plus
    // one embedding row per token fed.
    let (d, vocab, layers, hd, kv_width) = (
        64u64,
        g.tensor("token_embd.weight").unwrap().dims[1] as u64,
        6u64,
        32u64,
        32u64,
    );
    let all: u64 = g.tensors.iter().map(|t| t.bytes as u64).sum();
    let row = g.tensor("token_embd.weight").unwrap().bytes as u64 / vocab;
    let fed = 20 + 4;
    assert_eq!(cost.work.weight_bytes, 5 * all + fed * row);

    // Multiply-adds: each fed token through every block matrix, 5 rows of logits, and
    // attention: a token at position p scores min(p + 1, 8) keys in the 5 sliding layers
    // and p + 1 in the global one, for 2 heads of 32, q·k and then the values.
    let block: u64 = g
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.") && t.dims.len() == 2)
        .map(|t| t.elements() as u64)
        .sum();
    let attended: u64 = (0..fed).map(|p| 5 * (p + 1).min(8) + (p + 1)).sum();
    assert_eq!(
        cost.work.multiply_adds,
        fed * block + 5 * vocab * d + attended * 2 * 2 * hd
    );

    // The cache: the prompt's pass reads its 20 keys and values in every layer; a decode
    // step at p reads 8 in a sliding layer and p + 1 in the global one; every fed token
    // writes its own in each layer. f16, keys and values: 4 bytes per width.
    let read = 6 * 20 + (20..24).map(|p| 5 * 8 + (p + 1)).sum::<u64>();
    assert_eq!(cost.work.cache_bytes, (read + fed * layers) * kv_width * 4);

    assert_eq!(cost.device, ouvert::cost::Device::Cpu);
    let m = ouvert::cost::energy_model(cost.device);
    let bytes = (cost.work.weight_bytes + cost.work.cache_bytes) as f64;
    let low = (bytes * m.picojoules_per_byte[0]
        + cost.work.multiply_adds as f64 * m.picojoules_per_multiply_add[0])
        * 1e-12;
    assert!((cost.joules[0] - low).abs() <= low * 1e-12);
    assert!(cost.joules[1] > cost.joules[0]);

    // A second answer that extends the first only computes its new tokens.
    let mut longer = prompt.clone();
    longer.extend(&out.tokens[..4]);
    let again = e.generate(&longer, &greedy(1), &mut |_| true).unwrap();
    assert_eq!(again.stats.cached_prompt_tokens, 23);
    assert_eq!(again.stats.cost.work.weight_bytes, all + row);
}

#[test]
fn the_model_card_states_what_the_file_says_of_its_provenance_and_nothing_more() {
    use common::gguf::V;
    let s = |v: &str| V::Str(v.into());
    let mut b = tiny_gemma3();
    b.kv("general.author", s("Ouvert tests"))
        .kv("general.organization", s("Ouvert"))
        .kv("general.license", s("Apache-2.0"))
        .kv("general.source.url", s("https://example.org/tiny"))
        .kv("general.base_model.count", V::U32(2))
        .kv("general.base_model.0.name", s("Tiny Base"))
        .kv("general.base_model.0.organization", s("Ouvert"))
        .kv(
            "general.base_model.0.repo_url",
            s("https://example.org/tiny-base"),
        )
        .kv(
            "general.base_model.1.organization",
            s("a base model without a name is left out"),
        )
        .kv("general.dataset.count", V::U32(1))
        .kv("general.dataset.0.name", s("Texts written for the tests"))
        .kv("general.languages", V::Strs(vec!["fr".into(), "en".into()]));
    let e = Engine::load(ModelBytes::from_slice(&b.build()).unwrap(), 64).unwrap();
    let card = serde_json::to_value(&e.card).unwrap();
    assert_eq!(card["name"], "tiny test gemma");
    assert_eq!(card["author"], "Ouvert tests");
    assert_eq!(card["license"], "Apache-2.0");
    // An identifier known to have a public text links to it; the file gave no link.
    assert_eq!(
        card["licenseUrl"],
        "https://www.apache.org/licenses/LICENSE-2.0"
    );
    assert_eq!(card["sourceUrl"], "https://example.org/tiny");
    assert_eq!(
        card["baseModels"],
        serde_json::json!([{ "name": "Tiny Base", "organization": "Ouvert", "version": null, "url": "https://example.org/tiny-base" }])
    );
    assert_eq!(card["datasets"][0]["name"], "Texts written for the tests");
    assert_eq!(card["languages"], serde_json::json!(["fr", "en"]));
    assert_eq!(card["parameters"], e.card.parameters);

    // The file's own link wins; an unknown licence without one has no link; nothing is
    // made up for what the file leaves out.
    b.kv("general.license.link", s("https://example.org/licence"));
    let e = Engine::load(ModelBytes::from_slice(&b.build()).unwrap(), 64).unwrap();
    assert_eq!(
        e.card.license_url.as_deref(),
        Some("https://example.org/licence")
    );
    let plain = engine(64).card;
    let mut b = tiny_gemma3();
    b.kv("general.license", s("some-licence"));
    let other = Engine::load(ModelBytes::from_slice(&b.build()).unwrap(), 64).unwrap();
    assert_eq!(other.card.license_url, None);
    assert_eq!((plain.author, plain.source_url), (None, None));
    assert!(plain.base_models.is_empty() && plain.datasets.is_empty());
    // Older files name the Hugging Face repository only.
    let mut b = tiny_gemma3();
    b.kv(
        "general.source.huggingface.repository",
        s("google/gemma-3-270m"),
    );
    let older = Engine::load(ModelBytes::from_slice(&b.build()).unwrap(), 64).unwrap();
    assert_eq!(
        older.card.source_url.as_deref(),
        Some("https://huggingface.co/google/gemma-3-270m")
    );
}

#[test]
fn the_debug_tap_hands_over_each_intermediate_by_llama_cpps_name_and_changes_nothing() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let prompt: Vec<u32> = (0..12).map(|i| 262 + i % 20).collect();
    let plain = engine(64).logits(&prompt).unwrap();

    let mut e = engine(64);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    e.set_tap(Some(Box::new(move |name, width, values| {
        s.borrow_mut().push((name.to_owned(), width, values));
    })));
    let tapped = e.logits(&prompt).unwrap();
    assert_eq!(plain, tapped, "the tap changed the logits");

    // Six layers of width 64, 2 query heads and 1 key/value head of 32; only the last
    // position goes through the final norm.
    let mut want = Vec::new();
    for l in 0..6 {
        if l > 0 {
            want.push((format!("l_out-{}", l - 1), 64, 12));
        }
        want.push((format!("Vcur-{l}"), 32, 12));
        want.push((format!("Qcur-{l}"), 64, 12));
        want.push((format!("kqv_out-{l}"), 64, 12));
        want.push((format!("sa_out-{l}"), 64, 12));
        want.push((format!("ffn_out-{l}"), 64, 12));
    }
    want.push(("l_out-5".into(), 64, 1));
    want.push(("result_output".into(), plain.len(), 1));
    let log = seen.borrow();
    let got: Vec<(String, usize, usize)> = log
        .iter()
        .map(|(n, w, v)| (n.clone(), *w, v.len() / w))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        log.last().unwrap().2,
        plain,
        "result_output is not the logits"
    );
    let before = log.len();
    drop(log);

    // Removed, it is no longer called.
    e.set_tap(None);
    e.logits(&[2, 270, 271]).unwrap();
    assert_eq!(seen.borrow().len(), before);
}

#[test]
fn gemma_scales_queries_by_the_width_per_head_in_its_27b_only_as_llama_cpp_does() {
    // Heads of 2 in a width of 8 with 2 heads: the head size (2) and the width per head (4)
    // differ. llama.cpp tells Gemma 3 27B by its 62 layers.
    let scale = |layers| {
        let mut b = common::gguf::gemma3(layers, 8);
        b.kv("gemma3.attention.key_length", common::gguf::V::U32(2))
            .kv("gemma3.attention.value_length", common::gguf::V::U32(2));
        let file = b.build();
        let g = ouvert::gguf::Gguf::parse(&file).unwrap();
        ouvert::models::gemma3::spec(&g, 64).unwrap().q_scale
    };
    assert_eq!(scale(62), 0.5);
    assert_eq!(scale(61), 2f32.sqrt().recip());
}
