//! The BPE model inside the `tokenizers` pipeline (whose normalizers, pre-tokenizers and
//! added tokens stay the crate's). The crate's own `BPE` holds the vocabulary twice, in
//! hash maps of `String`s, and its merges in a third map: 56 MB for Gemma 3's 262,144
//! tokens and 513,511 merges, a sixth of the file, where this model indexes the
//! vocabulary's packed bytes and keeps the merges as ids (12 MB). It merges exactly as
//! the crate's `Word::merge_all` does, so the ids are the same (`tests/tokenizer.rs`).

use crate::error::{Code, Error};
use crate::gguf::Strings;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::{Model, Token};

/// Many short byte strings in one buffer (the tokens' pieces): 262,144 separate
/// allocations took three times their bytes.
#[derive(Default)]
pub struct Packed {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Packed {
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }
}

impl Packed {
    /// Appends the string `write` writes into the buffer (no allocation of its own).
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.ends.push(self.bytes.len() as u32);
    }
}

/// An open-addressing hash set of `u32`s whose keys live elsewhere (the caller hashes and
/// compares them): 4 bytes a slot, at most half full.
struct Table {
    slots: Vec<u32>,
}

impl Table {
    fn with_capacity(n: usize) -> Self {
        Table {
            slots: vec![0; (2 * n).next_power_of_two().max(2)],
        }
    }

    /// The stored value `is` accepts, probing from `hash`.
    fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => return None,
                s if is(s - 1) => return Some(s - 1),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Stores `value`, or replaces the stored value `is` accepts when `replace`; returns
    /// the one already there.
    fn insert(
        &mut self,
        hash: u64,
        value: u32,
        replace: bool,
        mut is: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = value + 1;
                    return None;
                }
                s if is(s - 1) => {
                    if replace {
                        self.slots[i] = value + 1;
                    }
                    return Some(s - 1);
                }
                _ => i = (i + 1) & mask,
            }
        }
    }
}

fn hash_bytes(b: &[u8]) -> u64 {
    ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(b)
}

fn hash_pair(a: u32, b: u32) -> u64 {
    // Fibonacci hashing; the table takes the low bits, so fold the high ones down.
    let h = (u64::from(a) << 32 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ h >> 29
}

/// The vocabulary: token strings by id, and ids by string (a string's first id, as a
/// `tokenizers` vocabulary map built in id order keeps it).
pub struct Vocab {
    tokens: Strings,
    index: Table,
    /// Whether each id repeats the spelling of an earlier one.
    repeat: Vec<bool>,
    distinct: usize,
}

impl Vocab {
    pub fn new(tokens: Strings) -> Self {
        let mut index = Table::with_capacity(tokens.len());
        let repeat: Vec<bool> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                index
                    .insert(hash_bytes(t.as_bytes()), i as u32, false, |j| {
                        tokens.bytes(j as usize) == Some(t.as_bytes())
                    })
                    .is_some()
            })
            .collect();
        let distinct = repeat.iter().filter(|&&r| !r).count();
        Vocab {
            tokens,
            index,
            repeat,
            distinct,
        }
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.id_of(token.as_bytes())
    }

    /// The first id spelled `t`.
    pub fn id_of(&self, t: &[u8]) -> Option<u32> {
        self.index
            .find(hash_bytes(t), |j| self.tokens.bytes(j as usize) == Some(t))
    }

    /// Token `id`'s bytes.
    pub fn bytes(&self, id: usize) -> Option<&[u8]> {
        self.tokens.bytes(id)
    }

    /// Whether `id` is the first id spelled as it is (what a lookup of its spelling gives).
    pub fn is_first(&self, id: u32) -> bool {
        self.repeat.get(id as usize) == Some(&false)
    }

    /// Token `id` as text (every token came from a string).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// One merge: the pair of token ids it joins and the id it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    pub left: u32,
    pub right: u32,
    pub joined: u32,
}

/// What a character outside the vocabulary becomes.
pub struct Fallback {
    /// Its bytes' tokens (`<0x00>`…`<0xFF>`), when the vocabulary has all of them.
    pub bytes: bool,
    /// The unknown token, runs of unknown characters fused into one.
    pub unk: Option<u32>,
}

/// Merges by rank (first merged first), and ranks by pair.
pub struct Merges {
    list: Vec<Merge>,
    /// A pair listed twice keeps its last rank, as in the crate.
    ranks: Table,
}

impl Merges {
    pub fn new(list: Vec<Merge>) -> Self {
        let mut ranks = Table::with_capacity(list.len());
        for (r, m) in list.iter().enumerate() {
            ranks.insert(hash_pair(m.left, m.right), r as u32, true, |s| {
                let o = list[s as usize];
                (o.left, o.right) == (m.left, m.right)
            });
        }
        Merges { list, ranks }
    }

    /// The rank and result of merging `left` with `right`, when they merge.
    fn of(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let r = self.ranks.find(hash_pair(left, right), |s| {
            let m = self.list[s as usize];
            (m.left, m.right) == (left, right)
        })?;
        Some((r, self.list[r as usize].joined))
    }
}

pub struct Bpe {
    vocab: Vocab,
    merges: Merges,
    byte_ids: [Option<u32>; 256],
    unk: Option<u32>,
    /// A piece that is a token is taken whole (Llama 3's pre-tokenizer).
    ignore_merges: bool,
}

impl Bpe {
    pub fn new(vocab: Vocab, merges: Merges, fallback: Fallback, ignore_merges: bool) -> Self {
        let mut byte_ids = [None; 256];
        if fallback.bytes {
            for (b, id) in byte_ids.iter_mut().enumerate() {
                *id = vocab.id(&format!("<0x{b:02X}>"));
            }
        }
        Bpe {
            vocab,
            merges,
            byte_ids,
            unk: fallback.unk,
            ignore_merges,
        }
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// One symbol per character (its bytes' tokens when it is not a token; unknown runs as
    /// one unknown token), as the crate's `BPE::merge_word` starts.
    fn symbols(&self, text: &str) -> Vec<Symbol> {
        let mut word = Vec::with_capacity(text.len());
        let mut unk: Option<(u32, usize)> = None;
        for (i, c) in text.char_indices() {
            let s = &text[i..i + c.len_utf8()];
            if let Some(id) = self.vocab.id(s) {
                if let Some((u, len)) = unk.take() {
                    push(&mut word, u, len);
                }
                push(&mut word, id, s.len());
            } else if let Some(ids) = s
                .bytes()
                .map(|b| self.byte_ids[b as usize])
                .collect::<Option<Vec<u32>>>()
            {
                // (Byte tokens go before a pending unknown run, as in the crate.)
                ids.into_iter().for_each(|id| push(&mut word, id, 1));
            } else if let Some(u) = self.unk {
                unk = Some((u, unk.map_or(0, |(_, len)| len) + s.len()));
            }
        }
        if let Some((u, len)) = unk {
            push(&mut word, u, len);
        }
        word
    }

    /// The crate's `Word::merge_all`: the lowest-ranked pair first, leftmost among equals;
    /// a queued pair that changed since is skipped.
    fn merge_all(&self, w: &mut Vec<Symbol>) {
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = w
            .windows(2)
            .enumerate()
            .filter_map(|(pos, p)| {
                self.merges
                    .of(p[0].id, p[1].id)
                    .map(|(rank, joined)| Reverse((rank, pos, joined)))
            })
            .collect();
        while let Some(Reverse((_, pos, joined))) = queue.pop() {
            let here = w[pos];
            if here.len == 0 || here.next < 0 {
                continue;
            }
            let next = here.next as usize;
            let right = w[next];
            if self
                .merges
                .of(here.id, right.id)
                .is_none_or(|(_, j)| j != joined)
            {
                continue;
            }
            w[pos] = Symbol {
                id: joined,
                prev: here.prev,
                next: right.next,
                len: here.len + right.len,
            };
            w[next].len = 0;
            if right.next >= 0 {
                w[right.next as usize].prev = pos as isize;
            }
            let cur = w[pos];
            if cur.prev >= 0 {
                let prev = cur.prev as usize;
                if let Some((rank, joined)) = self.merges.of(w[prev].id, cur.id) {
                    queue.push(Reverse((rank, prev, joined)));
                }
            }
            if cur.next >= 0 {
                if let Some((rank, joined)) = self.merges.of(cur.id, w[cur.next as usize].id) {
                    queue.push(Reverse((rank, pos, joined)));
                }
            }
        }
        w.retain(|s| s.len != 0);
    }

    fn token(&self, id: u32, offsets: (usize, usize)) -> Token {
        Token::new(
            id,
            self.vocab.token(id).unwrap_or_default().to_owned(),
            offsets,
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    prev: isize,
    next: isize,
    /// Bytes of text; 0 once merged into the symbol on its left.
    len: usize,
}

fn push(word: &mut Vec<Symbol>, id: u32, len: usize) {
    let n = word.len() as isize;
    if let Some(last) = word.last_mut() {
        last.next = n;
    }
    word.push(Symbol {
        id,
        prev: n - 1,
        next: -1,
        len,
    });
}

impl Model for Bpe {
    /// Never used (nothing trains this model); the trait asks for one.
    type Trainer = BpeTrainer;

    fn tokenize(&self, text: &str) -> tokenizers::Result<Vec<Token>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if self.ignore_merges {
            if let Some(id) = self.vocab.id(text) {
                return Ok(vec![self.token(id, (0, text.len()))]);
            }
        }
        let mut word = self.symbols(text);
        self.merge_all(&mut word);
        let mut at = 0;
        Ok(word
            .iter()
            .map(|s| {
                at += s.len;
                self.token(s.id, (at - s.len, at))
            })
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.id(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        self.vocab.token(id).map(str::to_owned)
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.vocab.len() as u32)
            .rev()
            .filter_map(|i| Some((self.vocab.token(i)?.to_owned(), i)))
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.vocab.distinct
    }

    fn save(&self, _: &Path, _: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err(Error::new(
            Code::Internal,
            "an Ouvert tokenizer is built from its model file, not saved",
        )
        .into())
    }

    fn get_trainer(&self) -> BpeTrainer {
        BpeTrainer::default()
    }
}
