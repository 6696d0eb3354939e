//! Reading typed values out of GGUF metadata, with errors that name the key.

use crate::bail;
use crate::error::{Code, Result};
use crate::gguf::{Gguf, Value};

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

/// What a page shows about a model: its card, read from the file's `general.*` metadata
/// (GGUF's naming: `general.license.link`, `general.base_model.{i}.name`, …). Only what
/// the file states: a field it leaves out is `None`, never guessed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCard {
    pub name: String,
    pub architecture: String,
    pub author: Option<String>,
    pub organization: Option<String>,
    pub version: Option<String>,
    pub finetune: Option<String>,
    pub description: Option<String>,
    /// The licence's identifier (`apache-2.0`, `gemma`), its name when the file gives one,
    /// and its text's address: the file's own, else the public page of a licence known by
    /// its identifier.
    pub license: Option<String>,
    pub license_name: Option<String>,
    pub license_url: Option<String>,
    /// The model's page, and the repository or page it was converted from.
    pub url: Option<String>,
    pub source_url: Option<String>,
    pub base_models: Vec<Provenance>,
    pub datasets: Vec<Provenance>,
    pub languages: Vec<String>,
    pub tags: Vec<String>,
    pub size_label: Option<String>,
    pub quantization: String,
    pub parameters: u64,
    /// Where its chat template comes from: `"file"` (trained to converse: an instruct
    /// model), `"builtin"` (the architecture's turns, which a base model was not trained
    /// on), or none (plain completion only).
    pub chat_template: Option<&'static str>,
}

/// A base model or a dataset the file names (`general.base_model.{i}.*`,
/// `general.dataset.{i}.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub name: String,
    pub organization: Option<String>,
    pub version: Option<String>,
    pub url: Option<String>,
}

/// Public pages of licences that model files name by identifier only.
const KNOWN_LICENSES: &[(&str, &str)] = &[
    ("apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0"),
    ("mit", "https://opensource.org/license/mit"),
    ("gemma", "https://ai.google.dev/gemma/terms"),
    ("llama2", "https://ai.meta.com/llama/license/"),
    ("llama3", "https://www.llama.com/llama3/license/"),
    ("llama3.1", "https://www.llama.com/llama3_1/license/"),
    ("llama3.2", "https://www.llama.com/llama3_2/license/"),
    ("cc-by-4.0", "https://creativecommons.org/licenses/by/4.0/"),
    (
        "cc-by-sa-4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    (
        "cc-by-nc-4.0",
        "https://creativecommons.org/licenses/by-nc/4.0/",
    ),
];

impl ModelCard {
    pub fn read(g: &Gguf) -> Self {
        let s = |k: &str| {
            g.get(k)
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let strings = |k: &str| -> Vec<String> {
            match g.get(k) {
                Some(Value::Strings(items)) => items.iter().map(str::to_owned).collect(),
                _ => Vec::new(),
            }
        };
        let listed = |prefix: &str| -> Vec<Provenance> {
            let count = g
                .get(&format!("general.{prefix}.count"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
                .min(64);
            (0..count)
                .filter_map(|i| {
                    let f = |k: &str| s(&format!("general.{prefix}.{i}.{k}"));
                    Some(Provenance {
                        name: f("name")?,
                        organization: f("organization").or_else(|| f("author")),
                        version: f("version"),
                        url: f("repo_url").or_else(|| f("url")),
                    })
                })
                .collect()
        };
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
        let license = s("general.license");
        let license_url = s("general.license.link").or_else(|| {
            let id = license.as_deref()?.to_ascii_lowercase();
            KNOWN_LICENSES
                .iter()
                .find(|(known, _)| *known == id)
                .map(|(_, url)| url.to_string())
        });
        // Older converters wrote datasets as one list of names.
        let mut datasets = listed("dataset");
        if datasets.is_empty() {
            datasets = strings("general.datasets")
                .into_iter()
                .map(|name| Provenance {
                    name,
                    organization: None,
                    version: None,
                    url: None,
                })
                .collect();
        }
        ModelCard {
            chat_template: crate::chat::template_origin(g),
            name: s("general.name").unwrap_or_else(|| arch.clone()),
            architecture: arch,
            author: s("general.author"),
            organization: s("general.organization"),
            version: s("general.version"),
            finetune: s("general.finetune"),
            description: s("general.description"),
            license,
            license_name: s("general.license.name"),
            license_url,
            url: s("general.url").or_else(|| s("general.repo_url")),
            // Older converters name the Hugging Face repository only (`org/model`).
            source_url: s("general.source.url")
                .or_else(|| s("general.source.repo_url"))
                .or_else(|| {
                    s("general.source.huggingface.repository")
                        .map(|repo| format!("https://huggingface.co/{repo}"))
                }),
            base_models: listed("base_model"),
            datasets,
            languages: strings("general.languages"),
            tags: strings("general.tags"),
            size_label: s("general.size_label"),
            quantization,
            parameters: g.tensors.iter().map(|t| t.elements() as u64).sum(),
        }
    }
}
