//! Hostile and broken model files: each gives a typed error with a stable code, never a
//! panic or an allocation the file's size does not justify.

mod common;
use common::gguf::{gemma3, tiny_gemma3, V};
use ouvert::engine::Engine;
use ouvert::gguf::Gguf;
use ouvert::weights::ModelBytes;

fn load(bytes: &[u8]) -> Result<Engine, ouvert::Error> {
    Engine::load(ModelBytes::from_slice(bytes)?, 64)
}

fn code(bytes: &[u8]) -> &'static str {
    match load(bytes) {
        Ok(_) => "ok",
        Err(e) => {
            assert!(!e.message.is_empty());
            e.code.as_str()
        }
    }
}

#[test]
fn the_tiny_model_itself_loads() {
    assert_eq!(code(&tiny_gemma3().build()), "ok");
}

#[test]
fn not_a_gguf_file() {
    assert_eq!(
        code(b"<!doctype html><title>404 Not Found</title>"),
        "bad_magic"
    );
    assert_eq!(code(b""), "bad_magic");
    assert_eq!(code(b"GGU"), "bad_magic");
}

#[test]
fn unsupported_versions() {
    for v in [0, 1, 4, 0xffff_ffff] {
        let mut b = tiny_gemma3();
        b.version = v;
        assert_eq!(code(&b.build()), "unsupported_version", "version {v}");
    }
}

#[test]
fn truncated_anywhere() {
    let full = tiny_gemma3().build();
    let header = Gguf::parse(&full).unwrap().header_len();
    // Every cut inside the header, and a spread of cuts inside the tensor data.
    let cuts = (0..header)
        .chain((header..full.len()).step_by(997))
        .chain([full.len() - 1]);
    for cut in cuts {
        let want = if cut < 4 {
            "bad_magic"
        } else {
            "truncated_file"
        };
        assert_eq!(
            code(&full[..cut]),
            want,
            "file cut at byte {cut} of {}",
            full.len()
        );
    }
}

#[test]
fn counts_and_lengths_larger_than_the_file() {
    let full = tiny_gemma3().build();
    // The tensor count (bytes 8..16) and metadata count (16..24) claim 2^60 entries.
    for at in [8, 16] {
        let mut b = full.clone();
        b[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert_eq!(code(&b), "truncated_file");
    }
    // The first key's length claims 2^62 bytes.
    let mut b = full.clone();
    b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert_eq!(code(&b), "truncated_file");
    // An array of 2^40 strings.
    let mut t = tiny_gemma3();
    let mut payload = 8u32.to_le_bytes().to_vec();
    payload.extend((1u64 << 40).to_le_bytes());
    t.kv("tokenizer.ggml.tokens", V::Raw(9, payload));
    assert_eq!(code(&t.build()), "truncated_file");
}

#[test]
fn tensor_offsets_outside_the_file_or_overlapping() {
    let mut b = tiny_gemma3();
    b.tensor_mut("blk.3.ffn_up.weight").offset = Some(1 << 40);
    assert_eq!(code(&b.build()), "truncated_file");

    let mut b = tiny_gemma3();
    b.tensor_mut("blk.0.attn_k.weight").offset = Some(0); // on top of token_embd
    assert_eq!(code(&b.build()), "invalid_tensor");

    let mut b = tiny_gemma3();
    b.tensor_mut("output_norm.weight").offset = Some(7); // not aligned
    assert_eq!(code(&b.build()), "invalid_tensor");
}

#[test]
fn impossible_tensor_shapes() {
    let mut b = tiny_gemma3();
    b.tensor_mut("output_norm.weight").dims = vec![1 << 21, 1 << 21]; // 2^42 elements
    assert_eq!(code(&b.build()), "invalid_tensor");

    let mut b = tiny_gemma3();
    b.tensor_mut("output_norm.weight").dims = vec![64, 0];
    assert_eq!(code(&b.build()), "invalid_tensor");

    let mut b = tiny_gemma3();
    b.tensor_mut("output_norm.weight").dims = vec![1; 5];
    assert_eq!(code(&b.build()), "invalid_tensor");

    let mut b = tiny_gemma3();
    b.tensor_mut("blk.2.ffn_down.weight").dims = vec![64, 128]; // transposed
    assert_eq!(code(&b.build()), "invalid_tensor");

    let mut b = tiny_gemma3();
    b.tensors.retain(|t| t.name != "blk.4.attn_v.weight");
    assert_eq!(code(&b.build()), "missing_tensor");
}

#[test]
fn unknown_and_unsupported_tensor_types() {
    for ty in [16, 23, 9, 99, 0xffff_ffff] {
        let mut b = tiny_gemma3();
        b.tensor_mut("output_norm.weight").ggml_type = ty;
        assert_eq!(code(&b.build()), "unsupported_quantization", "type {ty}");
    }
}

#[test]
fn unsupported_architecture() {
    let mut b = tiny_gemma3();
    b.kv("general.architecture", V::Str("mamba".into()));
    let err = load(&b.build()).err().unwrap();
    assert_eq!(err.code, "unsupported_architecture");
    assert!(err.message.contains("mamba"), "{}", err.message);
}

#[test]
fn broken_metadata() {
    // The vocabulary disagrees with the embedding's rows.
    let mut b = tiny_gemma3();
    let Some((_, V::Strs(tokens))) = b.kv.iter().find(|(k, _)| k == "tokenizer.ggml.tokens") else {
        panic!()
    };
    let mut fewer = tokens.clone();
    fewer.pop();
    let n = fewer.len();
    b.kv("tokenizer.ggml.tokens", V::Strs(fewer))
        .kv("tokenizer.ggml.scores", V::F32s(vec![0.0; n]))
        .kv("tokenizer.ggml.token_type", V::I32s(vec![1; n]));
    assert_eq!(code(&b.build()), "invalid_metadata");

    // Scores of the wrong length, a missing dimension, a bad boolean, bad UTF-8, bad alignment.
    let mut b = tiny_gemma3();
    b.kv("tokenizer.ggml.scores", V::F32s(vec![0.0; 3]));
    assert_eq!(code(&b.build()), "invalid_metadata");
    let mut b = tiny_gemma3();
    b.kv.retain(|(k, _)| k != "gemma3.block_count");
    assert_eq!(code(&b.build()), "invalid_metadata");
    // 2^32 - 1 layers (found by the fuzzer: it allocated per layer before checking tensors).
    for layers in [0, u32::MAX] {
        let mut b = tiny_gemma3();
        b.kv("gemma3.block_count", V::U32(layers));
        assert_eq!(code(&b.build()), "invalid_metadata", "{layers} layers");
    }
    let mut b = tiny_gemma3();
    b.kv("tokenizer.ggml.add_bos_token", V::Raw(7, vec![2]));
    assert_eq!(code(&b.build()), "invalid_metadata");
    let mut b = tiny_gemma3();
    let mut bad = 2u64.to_le_bytes().to_vec();
    bad.extend([0xff, 0xfe]);
    b.kv("general.name", V::Raw(8, bad));
    assert_eq!(code(&b.build()), "invalid_metadata");
    // An array of strings is validated as one buffer: two strings that are each half of
    // "é" make valid UTF-8 together, and are still refused.
    let mut b = tiny_gemma3();
    let mut halves = 8u32.to_le_bytes().to_vec();
    halves.extend(2u64.to_le_bytes());
    for byte in [0xc3, 0xa9] {
        halves.extend(1u64.to_le_bytes());
        halves.push(byte);
    }
    b.kv("general.tags", V::Raw(9, halves));
    assert_eq!(code(&b.build()), "invalid_metadata");
    // A boolean array holding a 2.
    let mut b = tiny_gemma3();
    let mut flags = 7u32.to_le_bytes().to_vec();
    flags.extend(3u64.to_le_bytes());
    flags.extend([1, 0, 2]);
    b.kv("general.flags", V::Raw(9, flags));
    assert_eq!(code(&b.build()), "invalid_metadata");
    let mut b = tiny_gemma3();
    b.kv("general.alignment", V::U32(3));
    assert_eq!(code(&b.build()), "invalid_metadata");
    let mut b = tiny_gemma3();
    b.kv("gemma3.attention.head_count_kv", V::U32(3));
    assert_eq!(code(&b.build()), "invalid_metadata");
    let mut b = tiny_gemma3();
    b.kv("tokenizer.ggml.model", V::Str("rwkv".into()));
    assert_eq!(code(&b.build()), "unsupported_tokenizer");
}

/// The fuzzers' seeds (fuzz/): valid tiny files, written to target/fuzz-seeds/{load,tokenizer}.
/// Each one loads here, so the fuzzers start from files that reach the model's setup.
#[test]
fn writes_the_fuzz_seed_corpus() {
    let dir = common::root().join("target/fuzz-seeds");
    let seeds = [
        ("one_layer", gemma3(1, 8)),
        ("six_layers", gemma3(6, 8)),
        ("with_template", {
            let mut b = gemma3(2, 8);
            b.kv(
                "tokenizer.chat_template",
                V::Str("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}".into()),
            );
            b
        }),
    ];
    for (name, b) in &seeds {
        let file = b.build();
        assert_eq!(code(&file), "ok", "seed {name}");
        write(&dir.join("load").join(name), &file);
        // The tokenizer target reads a 64-byte text, then a file of only tokenizer metadata.
        let mut vocab = common::gguf::Builder::new();
        vocab.kv =
            b.kv.iter()
                .filter(|(k, _)| k.starts_with("tokenizer."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        let mut input = format!("{:<64}", "Bonjour « là » 🙂 <start_of_turn>").into_bytes();
        input.truncate(64);
        input.extend(vocab.build());
        write(&dir.join("tokenizer").join(name), &input);
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}
