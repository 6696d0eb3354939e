//! The `threads` build natively: mat-mul rows and attention rows split over rayon's threads
//! give the one-thread result bit for bit (`./build.sh test` runs it with `--features threads`).
#![cfg(feature = "threads")]

mod common;
use common::*;
use ouvert::engine::{Engine, GenerateOptions};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;

#[test]
fn threads_change_no_bit_of_the_logits_or_tokens() {
    let bytes = std::fs::read(model_path()).unwrap();
    let reference = reference();
    // The longest reference prompt (305 tokens): big enough that attention splits too.
    let prompt = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| ids(&p["llama_cpp"]["prompt_ids"]))
        .max_by_key(Vec::len)
        .unwrap();
    assert!(prompt.len() > 200, "{} tokens", prompt.len());
    let opts = GenerateOptions {
        max_tokens: 8,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(ouvert::cpu::par::threads(), threads);
            let mut e = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap();
            let mut logits = e.logits(&prompt).unwrap();
            // One more token on the cached prompt: a decode step, on the crew of threads.
            logits.extend(e.logits(&[&prompt[..], &[818]].concat()).unwrap());
            let tokens = e.generate(&prompt, &opts, &mut |_| true).unwrap().tokens;
            (logits, tokens)
        })
    };
    let (one, one_tokens) = run(1);
    for threads in [2, 3] {
        let (many, tokens) = run(threads);
        let differ = one
            .iter()
            .zip(&many)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{threads} threads: {differ} logits differ from one thread's"
        );
        assert_eq!(tokens, one_tokens, "{threads} threads");
    }
}

/// With threads, the tokenizer is built on a pool thread as soon as the header has arrived,
/// and is the one the whole file gives; on one thread nothing is built early.
#[test]
fn the_tokenizer_is_built_early_from_the_header() {
    use ouvert::gguf::{Gguf, HeaderWatch};
    use ouvert::tokenizer::{EarlyTokenizer, Tokenizer, VOCABULARY_KEYS};
    let bytes = std::fs::read(model_path()).unwrap();
    let mut whole = Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap();
    let texts: Vec<String> = reference()["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect();
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let early = pool(2).install(|| {
        let (mut t, mut watch) = (EarlyTokenizer::if_threaded(), HeaderWatch::new(bytes.len()));
        assert!(t.wants_header());
        for end in (0..bytes.len())
            .step_by(1 << 16)
            .skip(1)
            .chain([bytes.len()])
        {
            if let Some(mut header) = watch.offer(&bytes[..end]) {
                t.start(&mut header);
                assert!(
                    VOCABULARY_KEYS.iter().all(|k| header.get(k).is_none()),
                    "the vocabulary went to the build"
                );
                assert!(
                    header.get("general.architecture").is_some() && !header.tensors.is_empty(),
                    "the rest stays for the load"
                );
                assert!(
                    end < bytes.len() / 8,
                    "the header parsed once {end} bytes were in"
                );
            }
        }
        t.take()
    });
    let mut early = early.expect("a build started").unwrap();
    for text in &texts {
        assert_eq!(
            early.encode(text, true, false).unwrap(),
            whole.encode(text, true, false).unwrap(),
            "{text}"
        );
    }
    let none = pool(1).install(|| {
        let mut t = EarlyTokenizer::if_threaded();
        assert!(!t.wants_header());
        t.start(&mut Gguf::parse(&bytes).unwrap());
        t.take()
    });
    assert!(none.is_none(), "one thread builds no tokenizer early");
}
