//! Shared by the integration tests: the default model and the llama.cpp reference.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default model, fetched by `./build.sh model` (which `./build.sh test` runs first).
pub fn model_path() -> PathBuf {
    let p = std::env::var_os("OUVERT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/gemma-3-270m-q4_k_m.gguf"));
    assert!(
        p.exists(),
        "{} is missing: run ./build.sh model",
        p.display()
    );
    p
}

/// The instruct model (Qwen2.5 Coder 0.5B Instruct), fetched by `./build.sh model`.
pub fn instruct_model_path() -> PathBuf {
    let p = root().join("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert!(
        p.exists(),
        "{} is missing: run ./build.sh model",
        p.display()
    );
    p
}

/// `../shared/reference/…` (beside the checkout), or `OUVERT_REFERENCE`.
pub fn reference() -> serde_json::Value {
    let p = std::env::var_os("OUVERT_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/reference/gemma-3-270m-q4_k_m.reference.json"));
    read_json(&p)
}

/// llama.cpp's outputs on the instruct model (`../shared/reference/`).
pub fn instruct_reference() -> serde_json::Value {
    read_json(&root().join("../shared/reference/qwen2.5-coder-0.5b-instruct-q4_k_m.reference.json"))
}

fn read_json(p: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// A reference's per-step top-2 margins (`step_margin`).
pub fn margins(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|m| m.as_f64().expect("margin"))
        .collect()
}

/// How many leading greedy tokens must equal llama.cpp's: up to the first step whose
/// reference top-2 margin is below `min_margin` (a near tie another engine may break
/// the other way).
pub fn must_match(margins: &[f64], min_margin: f64) -> usize {
    margins
        .iter()
        .position(|&m| m < min_margin)
        .unwrap_or(margins.len())
}

/// A GPU backend on the machine's adapter, or `None` (said on stderr) when there is none,
/// unless `OUVERT_REQUIRE_GPU` is set (as `./build.sh test` does): then a missing adapter fails.
pub fn gpu() -> Option<ouvert::gpu::Gpu> {
    match ouvert::engine::block_on(ouvert::gpu::Gpu::new()) {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("OUVERT_REQUIRE_GPU").is_none() => {
            eprintln!("no GPU adapter, GPU tests not run: {e}");
            None
        }
        Err(e) => panic!("OUVERT_REQUIRE_GPU is set but {e}"),
    }
}

/// Deterministic values in about [-1, 1].
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Writes GGUF files for tests: valid tiny models, and broken ones.
pub mod gguf {
    #[derive(Clone)]
    pub enum V {
        U32(u32),
        F32(f32),
        Bool(bool),
        Str(String),
        Strs(Vec<String>),
        F32s(Vec<f32>),
        I32s(Vec<i32>),
        /// Raw type id and payload, to write what no valid writer would.
        Raw(u32, Vec<u8>),
    }

    pub struct Tensor {
        pub name: String,
        pub dims: Vec<u64>,
        pub ggml_type: u32,
        pub data: Vec<u8>,
        /// Write this offset instead of the one the layout gives.
        pub offset: Option<u64>,
    }

    pub struct Builder {
        pub version: u32,
        pub kv: Vec<(String, V)>,
        pub tensors: Vec<Tensor>,
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    impl Builder {
        pub fn new() -> Self {
            Builder {
                version: 3,
                kv: Vec::new(),
                tensors: Vec::new(),
            }
        }
        pub fn kv(&mut self, key: &str, v: V) -> &mut Self {
            self.kv.retain(|(k, _)| k != key);
            self.kv.push((key.into(), v));
            self
        }
        pub fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
            assert_eq!(dims.iter().product::<u64>() as usize, values.len());
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.tensors.push(Tensor {
                name: name.into(),
                dims: dims.to_vec(),
                ggml_type: 0,
                data,
                offset: None,
            });
            self
        }
        pub fn tensor_mut(&mut self, name: &str) -> &mut Tensor {
            self.tensors.iter_mut().find(|t| t.name == name).unwrap()
        }

        pub fn build(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend(self.version.to_le_bytes());
            out.extend((self.tensors.len() as u64).to_le_bytes());
            out.extend((self.kv.len() as u64).to_le_bytes());
            for (k, v) in &self.kv {
                string(&mut out, k);
                match v {
                    V::U32(x) => {
                        out.extend(4u32.to_le_bytes());
                        out.extend(x.to_le_bytes());
                    }
                    V::F32(x) => {
                        out.extend(6u32.to_le_bytes());
                        out.extend(x.to_le_bytes());
                    }
                    V::Bool(x) => {
                        out.extend(7u32.to_le_bytes());
                        out.push(*x as u8);
                    }
                    V::Str(s) => {
                        out.extend(8u32.to_le_bytes());
                        string(&mut out, s);
                    }
                    V::Strs(a) => {
                        out.extend(9u32.to_le_bytes());
                        out.extend(8u32.to_le_bytes());
                        out.extend((a.len() as u64).to_le_bytes());
                        a.iter().for_each(|s| string(&mut out, s));
                    }
                    V::F32s(a) => {
                        out.extend(9u32.to_le_bytes());
                        out.extend(6u32.to_le_bytes());
                        out.extend((a.len() as u64).to_le_bytes());
                        a.iter().for_each(|x| out.extend(x.to_le_bytes()));
                    }
                    V::I32s(a) => {
                        out.extend(9u32.to_le_bytes());
                        out.extend(5u32.to_le_bytes());
                        out.extend((a.len() as u64).to_le_bytes());
                        a.iter().for_each(|x| out.extend(x.to_le_bytes()));
                    }
                    V::Raw(ty, bytes) => {
                        out.extend(ty.to_le_bytes());
                        out.extend(bytes);
                    }
                }
            }
            let mut offset = 0u64;
            for t in &self.tensors {
                string(&mut out, &t.name);
                out.extend((t.dims.len() as u32).to_le_bytes());
                t.dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
                out.extend(t.ggml_type.to_le_bytes());
                out.extend(t.offset.unwrap_or(offset).to_le_bytes());
                offset += (t.data.len() as u64).div_ceil(32) * 32;
            }
            out.resize(out.len().div_ceil(32) * 32, 0);
            for t in &self.tensors {
                out.extend(&t.data);
                out.resize(out.len().div_ceil(32) * 32, 0);
            }
            out
        }
    }

    /// A tiny Gemma 3 with random F32 weights: 6 layers (5 sliding, 1 global), width 64,
    /// 2 query heads sharing 1 key/value head of 32, and a byte-level vocabulary with a few
    /// merged pieces and Gemma's control tokens.
    pub fn tiny_gemma3() -> Builder {
        gemma3(6, 64)
    }

    /// `tiny_gemma3` with `layers` layers of width `d` (heads of `d / 2`, feed-forward `2d`):
    /// at `gemma3(1, 8)` a 15 KB file, small enough for a fuzzer to mutate.
    pub fn gemma3(layers: u64, d: u64) -> Builder {
        let mut tokens: Vec<String> = [
            "<pad>",
            "<eos>",
            "<bos>",
            "<unk>",
            "<start_of_turn>",
            "<end_of_turn>",
        ]
        .map(String::from)
        .to_vec();
        let mut types = vec![3, 3, 3, 2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for piece in [
            "▁",
            "a",
            "b",
            "c",
            "e",
            "l",
            "o",
            "u",
            "r",
            "▁l",
            "▁la",
            "ou",
            "our",
            "▁b",
            "▁bon",
            "on",
            "bon",
            "j",
            "jour",
            "▁bonjour",
            "\n",
        ] {
            tokens.push(piece.into());
            types.push(1);
        }
        let n = tokens.len();
        let scores: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
        let mut b = Builder::new();
        b.kv("general.architecture", V::Str("gemma3".into()))
            .kv("general.name", V::Str("tiny test gemma".into()))
            .kv("general.license", V::Str("apache-2.0".into()))
            .kv("gemma3.context_length", V::U32(4096))
            .kv("gemma3.embedding_length", V::U32(d as u32))
            .kv("gemma3.block_count", V::U32(layers as u32))
            .kv("gemma3.feed_forward_length", V::U32(2 * d as u32))
            .kv("gemma3.attention.head_count", V::U32(2))
            .kv("gemma3.attention.head_count_kv", V::U32(1))
            .kv("gemma3.attention.key_length", V::U32(d as u32 / 2))
            .kv("gemma3.attention.value_length", V::U32(d as u32 / 2))
            .kv("gemma3.attention.sliding_window", V::U32(8))
            .kv("gemma3.attention.layer_norm_rms_epsilon", V::F32(1e-6))
            .kv("gemma3.rope.freq_base", V::F32(1e6))
            .kv("tokenizer.ggml.model", V::Str("llama".into()))
            .kv("tokenizer.ggml.tokens", V::Strs(tokens))
            .kv("tokenizer.ggml.scores", V::F32s(scores))
            .kv("tokenizer.ggml.token_type", V::I32s(types))
            .kv("tokenizer.ggml.bos_token_id", V::U32(2))
            .kv("tokenizer.ggml.eos_token_id", V::U32(1))
            .kv("tokenizer.ggml.unknown_token_id", V::U32(3))
            .kv("tokenizer.ggml.add_space_prefix", V::Bool(false))
            .kv("tokenizer.ggml.add_bos_token", V::Bool(true));
        let mut seed = 42u64;
        let mut rand = |len: usize, scale: f32| -> Vec<f32> {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * scale
                })
                .collect()
        };
        let (f, hd, n) = (2 * d, d / 2, n as u64);
        b.f32_tensor("token_embd.weight", &[d, n], &rand((d * n) as usize, 0.5));
        b.f32_tensor("output_norm.weight", &[d], &vec![1.0; d as usize]);
        for l in 0..layers {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            b.f32_tensor(&p("attn_norm"), &[d], &vec![1.0; d as usize]);
            b.f32_tensor(
                &p("attn_q"),
                &[d, 2 * hd],
                &rand((d * 2 * hd) as usize, 0.2),
            );
            b.f32_tensor(&p("attn_k"), &[d, hd], &rand((d * hd) as usize, 0.2));
            b.f32_tensor(&p("attn_v"), &[d, hd], &rand((d * hd) as usize, 0.2));
            b.f32_tensor(&p("attn_q_norm"), &[hd], &vec![1.0; hd as usize]);
            b.f32_tensor(&p("attn_k_norm"), &[hd], &vec![1.0; hd as usize]);
            b.f32_tensor(
                &p("attn_output"),
                &[2 * hd, d],
                &rand((2 * hd * d) as usize, 0.2),
            );
            b.f32_tensor(&p("post_attention_norm"), &[d], &vec![1.0; d as usize]);
            b.f32_tensor(&p("ffn_norm"), &[d], &vec![1.0; d as usize]);
            b.f32_tensor(&p("ffn_gate"), &[d, f], &rand((d * f) as usize, 0.2));
            b.f32_tensor(&p("ffn_up"), &[d, f], &rand((d * f) as usize, 0.2));
            b.f32_tensor(&p("ffn_down"), &[f, d], &rand((f * d) as usize, 0.2));
            b.f32_tensor(&p("post_ffw_norm"), &[d], &vec![1.0; d as usize]);
        }
        b
    }
}
