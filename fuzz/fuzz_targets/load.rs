//! Any bytes as a model file: parsing, validation, the tokenizer, the chat template, the
//! model's setup, and (when all that accepts the file) one forward pass. An input may fail
//! with an `Error`; it may not panic, hang or allocate what its size does not justify.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ouvert::chat::Message;
use ouvert::engine::Engine;
use ouvert::weights::ModelBytes;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ModelBytes::from_slice(data) else {
        return;
    };
    let Ok(mut engine) = Engine::load(file, 16) else {
        return;
    };
    let _ = engine.encode_chat(&[Message::new("user", "bonjour")]);
    if let Ok(ids) = engine.encode("bonjour la <start_of_turn>") {
        let _ = engine.logits(&ids);
    }
});
