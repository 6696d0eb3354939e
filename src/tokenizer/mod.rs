//! The tokenizer, built from the GGUF's `tokenizer.ggml.*` metadata alone.
//!
//! A `tokenizers` pipeline (normalizer, pre-tokenizers, added tokens) around a BPE model
//! over the vocabulary's packed bytes (`bpe.rs`, which merges as the crate's BPE does).
//!
//! SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`, as in Gemma) use
//! byte fallback and " "→"▁". Gemma's file carries no merges, so they
//! are derived from the scores: every normal token that splits into two vocabulary pieces
//! yields a merge ranked by the whole token's score, which is what SentencePiece's BPE does.
//! Control and user-defined tokens are added tokens, matched in text as Hugging Face does.
//! Like llama.cpp, a space is put before the text (and after each control token) unless
//! the file says `tokenizer.ggml.add_space_prefix = false`, as Gemma's do.
//!
//! Byte-level BPE vocabularies (`"gpt2"`: Llama 3, Qwen, SmolLM) have their merges in the
//! file; the text is split by the regular expressions llama.cpp uses for the file's
//! `tokenizer.ggml.pre`, each piece's bytes mapped to GPT-2's printable characters.

mod bpe;

use crate::bail;
use crate::cpu::par;
use crate::error::{Code, Error, Result};
use crate::gguf::{Gguf, Strings, Value};
use bpe::{Bpe, Fallback, Merge, Merges, Packed, Vocab};
use std::collections::HashMap;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as Normalizers};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizers;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// `tokenizer.ggml.token_type` values (SentencePiece's piece types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i64) -> Self {
        match v {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
}

/// The `tokenizers` pipeline around our `Bpe` model.
type Pipeline = tokenizers::TokenizerImpl<
    Bpe,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

pub struct Tokenizer {
    inner: Pipeline,
    /// The bytes each token stands for in output text (empty for control tokens).
    pieces: Packed,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// Tokens that end a generation: EOS and the chat turn end, when the vocabulary has them.
    pub stop_ids: Vec<u32>,
    /// The merge order derived while building, when asked to keep it (`take_merge_order`).
    merge_order: Option<MergeOrder>,
}

/// A token as a page shows it (`Tokenizer::token_piece`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenPiece {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    pub special: bool,
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        Self::from_gguf_with(g, None, false)
    }

    /// `from_gguf`, with the merge order kept from an earlier build of the same vocabulary
    /// (used when it fits the vocabulary, else derived again), and keeping a derived order
    /// for `take_merge_order` when `keep`.
    pub fn from_gguf_with(g: &Gguf, known: Option<MergeOrder>, keep: bool) -> Result<Self> {
        Self::build(Vocabulary::read(g)?, g, known, keep)
    }

    /// `from_gguf_with`, taking the vocabulary out of the header's metadata first: its
    /// 262,144 tokens, scores and types (5.3 MB for Gemma 3) are gone before the build's
    /// own peak.
    pub fn from_gguf_taking(g: &mut Gguf, known: Option<MergeOrder>, keep: bool) -> Result<Self> {
        let vocabulary = Vocabulary::read(g);
        for key in VOCABULARY_KEYS {
            g.metadata.remove(key);
        }
        Self::build(vocabulary?, g, known, keep)
    }

    fn build(
        vocabulary: Vocabulary,
        g: &Gguf,
        known: Option<MergeOrder>,
        keep: bool,
    ) -> Result<Self> {
        let model = g
            .get("tokenizer.ggml.model")
            .and_then(Value::as_str)
            .unwrap_or("");
        if model != "llama" && model != "gpt2" {
            bail!(Code::UnsupportedTokenizer, "tokenizer type {model:?} is not supported (SentencePiece-style \"llama\" and byte-level BPE \"gpt2\" are)");
        }
        let Vocabulary {
            tokens,
            scores,
            kinds,
        } = vocabulary;
        let vocab = Vocab::new(tokens);
        let tokens: Vec<&str> = (0..vocab.len() as u32)
            .map(|i| vocab.token(i).unwrap_or_default())
            .collect();
        let n = tokens.len();
        let id = |key: &str| -> Result<Option<u32>> {
            match g.get(key).map(|v| v.as_u64()) {
                None => Ok(None),
                Some(Some(i)) if (i as usize) < n => Ok(Some(i as u32)),
                Some(_) => Err(bad_meta(key)),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unk = id("tokenizer.ggml.unknown_token_id")?;
        let add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(bos.is_some());

        let byte_level = model == "gpt2";
        let (merges, derived) = if byte_level {
            (file_merges(g, &vocab)?, None)
        } else {
            match known.and_then(|o| o.fits(&vocab, &kinds)) {
                Some(merges) => (merges, None),
                None => {
                    let order = derive_merges(&tokens, &scores, &kinds, &vocab);
                    let merges = resolve(&order, &vocab, &kinds).ok_or_else(|| {
                        Error::new(
                            Code::InvalidMetadata,
                            "the vocabulary's merges could not be derived",
                        )
                    })?;
                    let kept = keep.then(|| MergeOrder(merges.clone()));
                    (merges, kept)
                }
            }
        };
        let pre = g
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let splits = if byte_level {
            pre_tokenizer_regexes(pre)?
        } else {
            &[][..]
        };
        // llama.cpp takes a whole piece that is in the vocabulary as is for Llama 3's files.
        let ignore_merges = byte_level && matches!(pre, "llama3" | "llama-v3" | "llama-bpe");
        let fallback = if byte_level {
            Fallback {
                bytes: false,
                unk: None,
            }
        } else {
            Fallback {
                bytes: true,
                unk: unk.and_then(|u| vocab.id(tokens[u as usize])),
            }
        };
        // The merge table and the pieces at once, with threads.
        let (merges, (pieces, added)) = par::join(
            || Merges::new(merges),
            || {
                (
                    pieces(&tokens, &kinds, byte_level),
                    added_tokens(&tokens, &kinds),
                )
            },
        );
        // EOS and the turn ends of the common chat formats, when the vocabulary has them as
        // control tokens.
        let mut stop_ids: Vec<u32> = eos.into_iter().collect();
        for (i, (t, k)) in tokens.iter().zip(&kinds).enumerate() {
            if *k == TokenKind::Control && TURN_ENDS.contains(t) && !stop_ids.contains(&(i as u32))
            {
                stop_ids.push(i as u32);
            }
        }
        drop(tokens);

        let mut inner = Pipeline::new(Bpe::new(vocab, merges, fallback, ignore_merges));
        if byte_level {
            let mut steps = Vec::new();
            for re in splits {
                let split = Split::new(
                    SplitPattern::Regex((*re).to_owned()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| {
                    Error::new(
                        Code::UnsupportedTokenizer,
                        format!("pre-tokenizer {pre:?}: {e}"),
                    )
                })?;
                steps.push(split.into());
            }
            steps.push(ByteLevel::new(false, false, false).into());
            inner.with_pre_tokenizer(Some(PreTokenizers::new(steps)));
        } else {
            let space_prefix = g
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let replace = Replace::new(" ", "▁").expect("a literal pattern");
            if space_prefix {
                inner
                    .with_normalizer(Some(Normalizers::new(vec![
                        Prepend::new("▁".into()).into(),
                        replace.into(),
                    ])))
                    .expect("normalizer");
            } else {
                inner.with_normalizer(Some(replace)).expect("normalizer");
            }
        }
        inner.add_special_tokens(added).map_err(|e| {
            Error::new(
                Code::InvalidMetadata,
                format!("could not add special tokens: {e}"),
            )
        })?;
        Ok(Tokenizer {
            inner,
            pieces,
            bos,
            eos,
            add_bos,
            stop_ids,
            merge_order: derived,
        })
    }

    /// Token ids of `text`, with BOS first when the model asks for it. `parse_special`
    /// matches control tokens written in the text (`<start_of_turn>`) as Hugging Face
    /// does; without it they are plain text, as llama.cpp's default.
    pub fn encode(&mut self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if add_bos && self.add_bos {
            ids.extend(self.bos);
        }
        if text.is_empty() {
            return Ok(ids);
        }
        self.inner.set_encode_special_tokens(!parse_special);
        let enc = self.inner.encode_fast(text, false).map_err(|e| {
            Error::new(
                Code::InvalidArgument,
                format!("could not tokenize the text: {e}"),
            )
        })?;
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The text of `ids`; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.piece_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn piece_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).unwrap_or(&[])
    }

    /// Each of the model's `vocab` output tokens as the constraint engine reads it: its
    /// bytes, or for a control token 0xFF then its name (llguidance's convention), so a
    /// grammar can name `<|im_end|>` but text never matches it.
    pub fn grammar_words(&self, vocab: usize) -> Vec<Vec<u8>> {
        (0..vocab as u32)
            .map(|id| match (self.piece_bytes(id), self.token(id)) {
                ([], Some(name)) => [&[0xff], name.as_bytes()].concat(),
                (piece, _) => piece.to_vec(),
            })
            .collect()
    }

    /// How token `id` reads on screen: its text; the name of a control token; or, when its
    /// bytes are not whole UTF-8 characters (byte-level vocabularies split `é` in two), the
    /// bytes themselves.
    pub fn token_piece(&self, id: u32) -> TokenPiece {
        match (self.piece_bytes(id), self.token(id)) {
            ([], Some(name)) => TokenPiece {
                text: Some(name.to_owned()),
                bytes: None,
                special: true,
            },
            (bytes, _) => match std::str::from_utf8(bytes) {
                Ok(text) => TokenPiece {
                    text: Some(text.to_owned()),
                    bytes: None,
                    special: false,
                },
                Err(_) => TokenPiece {
                    text: None,
                    bytes: Some(bytes.to_vec()),
                    special: false,
                },
            },
        }
    }

    /// The vocabulary entry itself, as the model sees it (`▁the`, `<0x0A>`, `<bos>`).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.inner.get_model().vocab().token(id)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_model().vocab().len()
    }

    /// The merge order this build derived, once, when it was asked to keep it.
    pub fn take_merge_order(&mut self) -> Option<MergeOrder> {
        self.merge_order.take()
    }
}

/// The bytes each token stands for in text (none for control tokens).
fn pieces(tokens: &[&str], kinds: &[TokenKind], byte_level: bool) -> Packed {
    let unicode_bytes = byte_level.then(unicode_to_bytes);
    let mut pieces = Packed::default();
    for (t, k) in tokens.iter().zip(kinds) {
        pieces.push_with(|out| match (k, &unicode_bytes) {
            (TokenKind::Control | TokenKind::Unknown | TokenKind::Unused, _) => {}
            (TokenKind::Byte, _) => match byte_token(t) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(t.as_bytes()),
            },
            (TokenKind::UserDefined, Some(_)) => out.extend_from_slice(t.as_bytes()),
            (_, Some(map)) => {
                let start = out.len();
                for c in t.chars() {
                    let Some(&b) = map.get(&c) else {
                        // Not byte-level text after all: the token as written.
                        out.truncate(start);
                        out.extend_from_slice(t.as_bytes());
                        break;
                    };
                    out.push(b);
                }
            }
            (_, None) => {
                for (i, part) in t.split('▁').enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(part.as_bytes());
                }
            }
        });
    }
    pieces
}

/// Control and user-defined tokens, matched whole in text (control ones only when asked).
fn added_tokens(tokens: &[&str], kinds: &[TokenKind]) -> Vec<AddedToken> {
    tokens
        .iter()
        .zip(kinds)
        .filter(|(_, k)| {
            matches!(
                k,
                TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
            )
        })
        .map(|(t, k)| AddedToken::from(t.to_string(), *k != TokenKind::UserDefined))
        .collect()
}

/// The metadata keys of the vocabulary's three arrays.
pub const VOCABULARY_KEYS: [&str; 3] = [
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
];
/// A byte-level BPE's merge list (its other large value).
pub const MERGES_KEY: &str = "tokenizer.ggml.merges";

/// A vocabulary's tokens, scores and kinds, read from the metadata into compact arrays.
struct Vocabulary {
    tokens: Strings,
    scores: Vec<f32>,
    kinds: Vec<TokenKind>,
}

impl Vocabulary {
    fn read(g: &Gguf) -> Result<Self> {
        let tokens = match g.get("tokenizer.ggml.tokens") {
            Some(Value::Strings(a)) => a.clone(),
            Some(_) => return Err(bad_meta("tokenizer.ggml.tokens")),
            None => bail!(
                Code::InvalidMetadata,
                "the model file has no vocabulary (tokenizer.ggml.tokens)"
            ),
        };
        let n = tokens.len();
        if n == 0 || n > 1 << 24 {
            bail!(Code::InvalidMetadata, "the vocabulary has {n} tokens");
        }
        let scores: Vec<f32> = match g.get("tokenizer.ggml.scores").and_then(Value::as_array) {
            Some(a) if a.len() == n => a
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_meta("tokenizer.ggml.scores"))?,
            Some(_) => return Err(bad_meta("tokenizer.ggml.scores")),
            None => vec![0.0; n],
        };
        let kinds: Vec<TokenKind> =
            match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
                Some(a) if a.len() == n => a
                    .iter()
                    .map(|v| int(&v).map(TokenKind::from_gguf))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad_meta("tokenizer.ggml.token_type"))?,
                Some(_) => return Err(bad_meta("tokenizer.ggml.token_type")),
                None => vec![TokenKind::Normal; n],
            };
        Ok(Vocabulary {
            tokens,
            scores,
            kinds,
        })
    }
}

/// Turns a token stream into text without ever cutting a UTF-8 character: bytes of an
/// incomplete character wait for the next token.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending.extend_from_slice(tok.piece_bytes(id));
        // Everything up to a character still unfinished at the end goes out; an invalid
        // sequence before it as U+FFFD, cut where a whole decode's replacement cuts it.
        let mut start = 0;
        let valid = loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(_) => break self.pending.len(),
                Err(e) => match e.error_len() {
                    Some(len) => start += e.valid_up_to() + len,
                    None => break start + e.valid_up_to(),
                },
            }
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    /// Whatever is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Merges for a SentencePiece-style vocabulary, as Hugging Face's converter derives them:
/// every split of a token into two tokens, higher scores first, equal scores in vocabulary
/// order; as (token id, byte index of the split) pairs, first merged first.
fn derive_merges(
    tokens: &[&str],
    scores: &[f32],
    kinds: &[TokenKind],
    vocab: &Vocab,
) -> Vec<[u32; 2]> {
    let mut order: Vec<[u32; 2]> = par::flat_map(tokens.len(), |i| {
        let t = tokens[i];
        let normal = kinds[i] == TokenKind::Normal;
        t.char_indices()
            .skip(1)
            .filter(move |&(cut, _)| {
                normal && vocab.id(&t[..cut]).is_some() && vocab.id(&t[cut..]).is_some()
            })
            .map(move |(cut, _)| [i as u32, cut as u32])
    });
    // A stable sort keeps each token's splits in order.
    order.sort_by_key(|&[i, _]| (!ordered_bits(scores[i as usize]), i));
    order
}

/// The derived splits as ids of `vocab`, when every one splits a normal token between two
/// characters into two tokens.
fn resolve(order: &[[u32; 2]], vocab: &Vocab, kinds: &[TokenKind]) -> Option<Vec<Merge>> {
    let merges = par::map(order.len(), |j| {
        let [i, cut] = order[j];
        let (t, cut) = (vocab.token(i)?, cut as usize);
        if kinds[i as usize] != TokenKind::Normal
            || cut == 0
            || cut >= t.len()
            || !t.is_char_boundary(cut)
        {
            return None;
        }
        Some(Merge {
            left: vocab.id(&t[..cut])?,
            right: vocab.id(&t[cut..])?,
            joined: vocab.id(t)?,
        })
    });
    merges.into_iter().collect()
}

/// A SentencePiece-style vocabulary's merges in order, derived from its scores. Deriving
/// them takes longer than the rest of the tokenizer's build in a page, so a page keeps them
/// next to a cached model.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeOrder(Vec<Merge>);

impl MergeOrder {
    const MAGIC: &'static [u8; 8] = b"OUVMRG02";

    /// The merges, when each joins two tokens of `vocab` into a normal token spelled as the
    /// two together, naming each string by its first id as a lookup would: else the order
    /// is not this vocabulary's. Comparing spellings, not looking each one up, keeps this a
    /// fraction of a cached load.
    fn fits(self, vocab: &Vocab, kinds: &[TokenKind]) -> Option<Vec<Merge>> {
        let fits = |m: &Merge| {
            let token = |id: u32| vocab.bytes(id as usize).filter(|t| !t.is_empty());
            let (Some(l), Some(r), Some(j)) = (token(m.left), token(m.right), token(m.joined))
            else {
                return false;
            };
            kinds[m.joined as usize] == TokenKind::Normal
                && j.len() == l.len() + r.len()
                && j.starts_with(l)
                && j.ends_with(r)
                && [m.left, m.right, m.joined]
                    .iter()
                    .all(|&id| vocab.is_first(id))
        };
        let all = par::map(self.0.len().div_ceil(FITS_PART), |p| {
            self.0[p * FITS_PART..].iter().take(FITS_PART).all(&fits)
        });
        all.into_iter().all(|ok| ok).then_some(self.0)
    }

    /// A file for the cache: a magic, the number of merges, a checksum, the merges.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24 + self.0.len() * 12);
        b.extend_from_slice(Self::MAGIC);
        b.extend_from_slice(&(self.0.len() as u64).to_le_bytes());
        b.extend_from_slice(&checksum(&self.0).to_le_bytes());
        for m in &self.0 {
            for id in [m.left, m.right, m.joined] {
                b.extend_from_slice(&id.to_le_bytes());
            }
        }
        b
    }

    /// The order in a cache file; `None` for anything else (another format, cut short,
    /// damaged).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (head, body) = b.split_at_checked(24)?;
        let n = u64::from_le_bytes(head[8..16].try_into().ok()?);
        if &head[..8] != Self::MAGIC || body.len() as u64 != n.checked_mul(12)? {
            return None;
        }
        let u32_at = |c: &[u8]| u32::from_le_bytes(c.try_into().expect("four bytes"));
        let merges: Vec<Merge> = body
            .chunks_exact(12)
            .map(|c| Merge {
                left: u32_at(&c[..4]),
                right: u32_at(&c[4..8]),
                joined: u32_at(&c[8..]),
            })
            .collect();
        (checksum(&merges).to_le_bytes() == head[16..24]).then_some(MergeOrder(merges))
    }
}

/// Merges checked per task (`MergeOrder::fits`).
const FITS_PART: usize = 1 << 16;

/// A 64-bit hash of the merges, to tell a damaged cache file.
fn checksum(merges: &[Merge]) -> u64 {
    merges.iter().fold(0xcbf2_9ce4_8422_2325, |h, m| {
        [m.left, m.right, m.joined].iter().fold(h, |h, &id| {
            (h ^ u64::from(id))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(29)
        })
    })
}

/// An f32's bits, as an integer in the order of `f32::total_cmp`.
fn ordered_bits(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 1 << 31
    }
}

/// Control tokens that end a chat turn: Gemma, ChatML (Qwen, SmolLM), Llama 3, Phi-3.
const TURN_ENDS: &[&str] = &[
    "<end_of_turn>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<|endoftext|>",
];

/// `tokenizer.ggml.merges`: "left right" pairs, highest priority first, as ids of `vocab`.
fn file_merges(g: &Gguf, vocab: &Vocab) -> Result<Vec<Merge>> {
    let Some(list) = g.get(MERGES_KEY).and_then(Value::as_strings) else {
        bail!(
            Code::InvalidMetadata,
            "the byte-level BPE vocabulary has no merges (tokenizer.ggml.merges)"
        );
    };
    let mut joined = String::new();
    list.iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').ok_or_else(|| bad_meta(MERGES_KEY))?;
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            match (vocab.id(a), vocab.id(b), vocab.id(&joined)) {
                (Some(left), Some(right), Some(joined)) => Ok(Merge {
                    left,
                    right,
                    joined,
                }),
                _ => bail!(
                    Code::InvalidMetadata,
                    "the merge {a:?} + {b:?} joins tokens that are not in the vocabulary"
                ),
            }
        })
        .collect()
}

/// llama.cpp's splitting expressions for a `tokenizer.ggml.pre` name, applied in order.
fn pre_tokenizer_regexes(pre: &str) -> Result<&'static [&'static str]> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    Ok(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => {
            &[r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" => {
            &[r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]
        }
        "gpt-2" | "gpt2" | "phi-2" | "olmo" | "mpt" => &[GPT2],
        "smollm" | "exaone" | "codeshell" => &[r"\p{N}", GPT2],
        other => bail!(Code::UnsupportedTokenizer, "the byte-level BPE pre-tokenizer {other:?} is not supported (llama-bpe, qwen2, gpt-2 and smollm are)"),
    })
}

/// GPT-2's map from the printable characters of byte-level vocabularies back to bytes.
fn unicode_to_bytes() -> HashMap<char, u8> {
    let printable = |b: u8| {
        (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (char::from(b), b)
            } else {
                next += 1;
                (char::from_u32(next - 1).expect("below the surrogates"), b)
            }
        })
        .collect()
}

fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

fn int(v: &Value) -> Option<i64> {
    match *v {
        Value::I32(x) => Some(x as i64),
        Value::I64(x) => Some(x),
        _ => v.as_u64().map(|x| x as i64),
    }
}

fn bad_meta(key: &str) -> Error {
    Error::new(
        Code::InvalidMetadata,
        format!("tokenizer metadata {key} is malformed"),
    )
}

/// The tokenizer, built on a pool thread from a model file's header while the rest of the
/// file is still arriving. Building it (deriving half a million merges, unless a cached order
/// fits) is a large part of a load; with threads it overlaps the read. Without threads it
/// does nothing, and the engine builds the tokenizer itself.
pub struct EarlyTokenizer {
    on: bool,
    built: Option<std::sync::Arc<Built>>,
    /// A merge order from an earlier build of this model, and whether to keep a derived one
    /// (`Tokenizer::from_gguf_with`).
    known: Option<MergeOrder>,
    keep: bool,
}

type Built = (
    std::sync::Mutex<Option<Result<Tokenizer>>>,
    std::sync::Condvar,
);

impl EarlyTokenizer {
    /// One that builds early when this build has threads and more than one runs.
    pub fn if_threaded() -> Self {
        let on = cfg!(feature = "threads") && crate::cpu::par::threads() > 1;
        EarlyTokenizer {
            on,
            built: None,
            known: None,
            keep: false,
        }
    }

    /// One that never starts: the engine builds the tokenizer itself.
    pub fn off() -> Self {
        EarlyTokenizer {
            on: false,
            built: None,
            known: None,
            keep: false,
        }
    }

    /// Builds with this merge order (from a cache), if it fits the vocabulary. To be given
    /// before the file arrives.
    pub fn use_merge_order(&mut self, order: MergeOrder) {
        self.known = Some(order);
    }

    /// Keeps the merge order the build derives, for `Tokenizer::take_merge_order`.
    pub fn keep_merge_order(&mut self) {
        self.keep = true;
    }

    /// The tokenizer, built now from the whole file's header, unless a build started early
    /// (then `None`: `take` waits for it).
    pub fn build_unless_started(&mut self, g: &mut Gguf) -> Option<Result<Tokenizer>> {
        (!self.started()).then(|| Tokenizer::from_gguf_taking(g, self.known.take(), self.keep))
    }

    /// Whether a build started (and `take` will give its result).
    pub fn started(&self) -> bool {
        self.built.is_some()
    }

    /// Whether it would start a build from a header now.
    pub fn wants_header(&self) -> bool {
        self.on && !self.started()
    }

    /// Starts building from a streaming file's header (`HeaderWatch`), taking the
    /// vocabulary out of it; a no-op unless `wants_header`.
    pub fn start(&mut self, header: &mut Gguf) {
        if self.wants_header() {
            self.built = Some(spawn_build(
                take_vocabulary(header),
                self.known.take(),
                self.keep,
            ));
        }
    }

    /// The tokenizer (or why it could not be built), waiting for the build to finish;
    /// `None` when no build started.
    pub fn take(self) -> Option<Result<Tokenizer>> {
        let built = self.built?;
        let (slot, done) = &*built;
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(t) = slot.take() {
                return Some(t);
            }
            slot = done.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A header holding what the tokenizer reads: the vocabulary and merges moved out of
/// `header`, the other (small) metadata copied.
fn take_vocabulary(header: &mut Gguf) -> Gguf {
    let big: Vec<(String, Value)> = VOCABULARY_KEYS
        .into_iter()
        .chain([MERGES_KEY])
        .filter_map(|k| header.metadata.remove_entry(k))
        .collect();
    let mut metadata = header.metadata.clone();
    metadata.extend(big);
    Gguf {
        version: header.version,
        metadata,
        tensors: Vec::new(),
        data_offset: header.data_offset,
    }
}

/// Builds the tokenizer on a pool thread (without threads, where `offer` never gets
/// here, in place).
fn spawn_build(mut gguf: Gguf, known: Option<MergeOrder>, keep: bool) -> std::sync::Arc<Built> {
    let built = std::sync::Arc::new(Built::default());
    let shared = built.clone();
    let build = move || {
        let t = Tokenizer::from_gguf_taking(&mut gguf, known, keep);
        *shared.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        shared.1.notify_all();
    };
    #[cfg(feature = "threads")]
    rayon::spawn(build);
    #[cfg(not(feature = "threads"))]
    build();
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(left: u32, right: u32, joined: u32) -> Merge {
        Merge {
            left,
            right,
            joined,
        }
    }

    /// A cached order is checked by spelling; where a string has two ids, it must name the
    /// first, as the lookups that derive an order do.
    #[test]
    fn a_cached_order_fits_only_as_spelled_and_by_first_ids() {
        let vocab = Vocab::new(["a", "b", "ab", "ab", "ba"].into_iter().collect());
        let mut kinds = vec![TokenKind::Normal; 5];
        let fits = |merges: Vec<Merge>, kinds: &[TokenKind]| {
            MergeOrder(merges.clone()).fits(&vocab, kinds) == Some(merges)
        };
        assert!(fits(vec![merge(0, 1, 2), merge(1, 0, 4)], &kinds));
        assert!(!fits(vec![merge(0, 1, 3)], &kinds), "the second \"ab\"");
        assert!(!fits(vec![merge(1, 0, 2)], &kinds), "\"ba\" is not \"ab\"");
        assert!(!fits(vec![merge(0, 1, 9)], &kinds), "no such token");
        kinds[2] = TokenKind::Control;
        assert!(
            !fits(vec![merge(0, 1, 2)], &kinds),
            "a control token is not merged"
        );
    }
}
