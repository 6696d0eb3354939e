//! Reading typed values out of GGUF metadata, with errors that name the key.

use crate::bail;
use crate::error::{Code, Result};
use crate::gguf::Gguf;

pub struct Meta<'a> {
    pub gguf: &'a Gguf,
    /// `general.architecture`, the prefix of the model's own keys.
    pub arch: &'a str,
}

impl<'a> Meta<'a> {
    pub fn new(gguf: &'a Gguf) -> Result<Self> {
        match gguf.get("general.architecture").and_then(|v| v.as_str()) {
            Some(arch) => Ok(Meta { gguf, arch }),
            None => bail!(
                Code::InvalidMetadata,
                "the model file does not say its architecture (general.architecture)"
            ),
        }
    }

    /// `{arch}.{key}` as an unsigned integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.map_or_else(|| self.missing(key), Ok)
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        let full = format!("{}.{key}", self.arch);
        match self.gguf.get(&full) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= 1 << 32 => Ok(Some(n as usize)),
                _ => bail!(
                    Code::InvalidMetadata,
                    "metadata {full} should be a small unsigned integer, found {v:?}"
                ),
            },
        }
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        self.opt_f32(key)?.map_or_else(|| self.missing(key), Ok)
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        let full = format!("{}.{key}", self.arch);
        match self.gguf.get(&full) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x as f32)),
                _ => bail!(
                    Code::InvalidMetadata,
                    "metadata {full} should be a number, found {v:?}"
                ),
            },
        }
    }

    fn missing<T>(&self, key: &str) -> Result<T> {
        bail!(
            Code::InvalidMetadata,
            "the model file lacks {}.{key}, which the {} architecture needs",
            self.arch,
            self.arch
        )
    }
}

/// What a page shows about a model: its card, read from `general.*` metadata.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCard {
    pub name: String,
    pub architecture: String,
    pub license: Option<String>,
    pub size_label: Option<String>,
    pub quantization: String,
    pub parameters: u64,
    /// Where its chat template comes from: `"file"` (trained to converse: an instruct
    /// model), `"builtin"` (the architecture's turns, which a base model was not trained
    /// on), or none (plain completion only).
    pub chat_template: Option<&'static str>,
}

impl ModelCard {
    pub fn read(g: &Gguf) -> Self {
        let s = |k: &str| g.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let arch = s("general.architecture").unwrap_or_default();
        let mut by_type: std::collections::HashMap<&str, u64> = Default::default();
        for t in &g.tensors {
            *by_type.entry(t.dtype.name()).or_default() += t.bytes as u64;
        }
        let quantization = match g.get("general.file_type").and_then(|v| v.as_u64()) {
            Some(15) => "Q4_K_M".to_string(),
            Some(17) => "Q5_K_M".to_string(),
            Some(7) => "Q8_0".to_string(),
            Some(2) => "Q4_0".to_string(),
            Some(1) => "F16".to_string(),
            Some(0) => "F32".to_string(),
            _ => by_type
                .iter()
                .max_by_key(|e| e.1)
                .map(|e| e.0.to_string())
                .unwrap_or_default(),
        };
        ModelCard {
            chat_template: crate::chat::template_origin(g),
            name: s("general.name").unwrap_or_else(|| arch.clone()),
            architecture: arch,
            license: s("general.license"),
            size_label: s("general.size_label"),
            quantization,
            parameters: g.tensors.iter().map(|t| t.elements() as u64).sum(),
        }
    }
}
