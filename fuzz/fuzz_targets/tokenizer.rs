//! The tokenizer builder on any vocabulary: the input is a text (its first 64 bytes, read as
//! UTF-8 with replacements) and a GGUF file holding only `tokenizer.ggml.*` metadata (the rest).
//! Building may fail with an `Error`; encoding, decoding and streaming must not panic, and
//! streamed pieces must add up to the decoded text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ouvert::gguf::Gguf;
use ouvert::tokenizer::{StreamDecoder, Tokenizer};

fuzz_target!(|data: &[u8]| {
    let (text, file) = data.split_at(data.len().min(64));
    let text = String::from_utf8_lossy(text);
    let Ok(gguf) = Gguf::parse(file) else { return };
    let Ok(mut tok) = Tokenizer::from_gguf(&gguf) else {
        return;
    };
    for parse_special in [false, true] {
        let Ok(ids) = tok.encode(&text, true, parse_special) else {
            continue;
        };
        let whole = tok.decode(&ids);
        let mut stream = StreamDecoder::default();
        let mut streamed: String = ids.iter().map(|&id| stream.push(&tok, id)).collect();
        streamed += &stream.finish();
        assert_eq!(
            streamed, whole,
            "streamed pieces differ from the decoded text"
        );
    }
});
