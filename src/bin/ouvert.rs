//! Native command line for tests and tools; prints one JSON object.
//!
//!   ouvert tokenize --model PATH --text TEXT [--parse-special]
//!   ouvert generate --model PATH --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]
//!                   [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--stop S]...
//!                   [--top-logprobs N] [--context N] [--chat] [--ignore-eos]
//!                   [--response-format JSON]   e.g. '{"type":"regex","pattern":"[0-9]+"}'
//!   ouvert score --model PATH (--text TEXT | --file PATH) [--top-logprobs N] [--stride S]
//!                [--context N] [--backend cpu|gpu]
//!   ouvert serve --model PATH [--context N]
//!                one engine, warm: reads a request per line ({"prompt": TEXT, "max_tokens": N},
//!                greedy, the KV cache forgotten first) and answers each with generate's JSON
//!                on a line (benches/native_llama.py, beside llama.cpp's warm process)
//!   ouvert tensors --model PATH (--ids 2,651,… | --text TEXT) --out DIR [--backend cpu|gpu]
//!                  one forward pass over the prompt; writes each intermediate, by llama.cpp's
//!                  name, to DIR/NAME.npy (rows × width, f32) for tests/tools/llama_tensors.py

use ouvert::engine::{Engine, GenerateOptions, DEFAULT_CONTEXT};
use ouvert::error::Code;
use ouvert::weights::ModelBytes;
use ouvert::{Error, Result};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!(
                "{}",
                json!({ "error": { "code": e.code, "message": e.message } })
            );
            std::process::exit(1);
        }
    }
}

struct Args<'a>(&'a [String]);

impl Args<'_> {
    fn all(&self, flag: &str) -> Vec<&str> {
        self.0
            .windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }
    fn get(&self, flag: &str) -> Option<&str> {
        self.all(flag).pop()
    }
    fn need(&self, flag: &str) -> Result<&str> {
        self.get(flag)
            .ok_or_else(|| Error::new(Code::InvalidArgument, format!("missing {flag}")))
    }
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
    fn num<T: std::str::FromStr>(&self, flag: &str, default: T) -> Result<T> {
        Ok(self.opt_num(flag)?.unwrap_or(default))
    }
    fn opt_num<T: std::str::FromStr>(&self, flag: &str) -> Result<Option<T>> {
        self.get(flag)
            .map(|s| {
                s.parse().map_err(|_| {
                    Error::new(
                        Code::InvalidArgument,
                        format!("{flag} needs a number, got {s:?}"),
                    )
                })
            })
            .transpose()
    }
}

fn load(a: &Args) -> Result<Engine> {
    let path = a.need("--model")?;
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(Code::Network, format!("cannot read {path}: {e}")))?;
    let (file, context) = (
        ModelBytes::from_slice(&bytes)?,
        a.num("--context", DEFAULT_CONTEXT)?,
    );
    match a.get("--backend").unwrap_or("cpu") {
        "cpu" => Engine::load(file, context),
        "gpu" => Engine::load_on(
            ouvert::engine::block_on(ouvert::gpu::Gpu::new())?,
            file,
            context,
        ),
        other => Err(Error::new(
            Code::InvalidArgument,
            format!("--backend is cpu or gpu, not {other:?}"),
        )),
    }
}

/// One `serve` request: a greedy generation from an empty cache.
fn serve_one(engine: &mut Engine, line: &str) -> Result<serde_json::Value> {
    #[derive(serde::Deserialize)]
    struct Request {
        prompt: String,
        max_tokens: usize,
    }
    let r: Request = serde_json::from_str(line).map_err(|e| {
        Error::new(
            Code::InvalidArgument,
            format!("a request is {{\"prompt\": TEXT, \"max_tokens\": N}}: {e}"),
        )
    })?;
    let mut opts = GenerateOptions {
        max_tokens: r.max_tokens,
        ..GenerateOptions::default()
    };
    opts.sampler.temperature = 0.0;
    engine.forget();
    let ids = engine.encode(&r.prompt)?;
    let out = engine.generate(&ids, &opts, &mut |_| true)?;
    Ok(generation_json(&out))
}

/// A generation as `generate` and `serve` print it.
fn generation_json(out: &ouvert::engine::Output) -> serde_json::Value {
    let mut v = serde_json::to_value(out).expect("plain data");
    v["prompt_tokens"] = json!(out.prompt_tokens);
    v
}

fn run(args: &[String]) -> Result<serde_json::Value> {
    let a = Args(args.get(1..).unwrap_or_default());
    match args.first().map(String::as_str) {
        Some("tokenize") => {
            let bytes = std::fs::read(a.need("--model")?)
                .map_err(|e| Error::new(Code::Network, e.to_string()))?;
            let g = ouvert::gguf::Gguf::parse(&bytes)?;
            let mut tok = ouvert::tokenizer::Tokenizer::from_gguf(&g)?;
            let ids = tok.encode(a.need("--text")?, true, a.has("--parse-special"))?;
            Ok(json!({ "ids": ids }))
        }
        Some("generate") => {
            let mut engine = load(&a)?;
            let d = GenerateOptions::default();
            let mut opts = GenerateOptions {
                max_tokens: a.num("--max-tokens", d.max_tokens)?,
                stop: a.all("--stop").into_iter().map(str::to_owned).collect(),
                stop_at_eos: !a.has("--ignore-eos"),
                truncate: a.has("--truncate"),
                response_format: match a.get("--response-format") {
                    Some(f) => Some(serde_json::from_str(f).map_err(|e| {
                        Error::new(Code::InvalidArgument, format!("--response-format: {e}"))
                    })?),
                    None => None,
                },
                ..d
            };
            let s = &mut opts.sampler;
            s.temperature = a.num("--temperature", s.temperature)?;
            s.top_k = a.num("--top-k", s.top_k)?;
            s.top_p = a.num("--top-p", s.top_p)?;
            s.min_p = a.num("--min-p", s.min_p)?;
            s.repeat_penalty = a.num("--repeat-penalty", s.repeat_penalty)?;
            s.seed = a.num("--seed", s.seed)?;
            s.top_logprobs = a.num("--top-logprobs", 0)?;
            let prompt = a.need("--prompt")?;
            let ids = if a.has("--chat") {
                engine.encode_chat(&[ouvert::chat::Message::new("user", prompt)])?
            } else {
                engine.encode(prompt)?
            };
            let mut steps = Vec::new();
            let out = engine.generate(&ids, &opts, &mut |p| {
                if !p.top.is_empty() {
                    steps.push(p.top.clone());
                }
                true
            })?;
            let mut v = generation_json(&out);
            if !steps.is_empty() {
                v["top_logprobs"] = json!(steps);
            }
            Ok(v)
        }
        Some("score") => {
            let mut engine = load(&a)?;
            let text = match (a.get("--text"), a.get("--file")) {
                (Some(t), None) => t.to_owned(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| Error::new(Code::Network, format!("cannot read {f}: {e}")))?,
                _ => {
                    return Err(Error::new(
                        Code::InvalidArgument,
                        "score needs --text or --file",
                    ))
                }
            };
            let ids = engine.encode(&text)?;
            let opts = ouvert::score::ScoreOptions {
                top_logprobs: a.num("--top-logprobs", 0)?,
                stride: a.opt_num("--stride")?,
            };
            Ok(serde_json::to_value(engine.score(&ids, &opts)?).expect("plain data"))
        }
        Some("serve") => {
            let mut engine = load(&a)?;
            for line in std::io::stdin().lines() {
                let line = line.map_err(|e| Error::new(Code::Network, e.to_string()))?;
                let answer = serve_one(&mut engine, &line).unwrap_or_else(
                    |e| json!({ "error": { "code": e.code, "message": e.message } }),
                );
                println!("{answer}");
            }
            Ok(json!({ "served": true }))
        }
        Some("tensors") => {
            let mut engine = load(&a)?;
            let ids = match a.get("--ids") {
                Some(list) => list
                    .split(',')
                    .map(|id| id.trim().parse())
                    .collect::<std::result::Result<Vec<u32>, _>>()
                    .map_err(|_| {
                        Error::new(
                            Code::InvalidArgument,
                            "--ids is a comma-separated list of token ids",
                        )
                    })?,
                None => engine.encode(a.need("--text")?)?,
            };
            let dir = std::path::PathBuf::from(a.need("--out")?);
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::new(Code::InvalidArgument, format!("cannot create {dir:?}: {e}"))
            })?;
            let written = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let (w, out) = (written.clone(), dir.clone());
            engine.set_tap(Some(Box::new(move |name, width, values| {
                let path = out.join(format!("{name}.npy"));
                match std::fs::write(&path, npy(&values, width)) {
                    Ok(()) => w.borrow_mut().push(name.to_owned()),
                    Err(e) => eprintln!("cannot write {path:?}: {e}"),
                }
            })));
            engine.logits(&ids)?;
            Ok(json!({ "ids": ids, "tensors": *written.borrow() }))
        }
        _ => Err(Error::new(
            Code::InvalidArgument,
            "usage: ouvert tokenize|generate|score|tensors --model PATH …",
        )),
    }
}

/// `values` as a NumPy `.npy` file of rows of `width` f32s.
fn npy(values: &[f32], width: usize) -> Vec<u8> {
    let shape = format!("({}, {})", values.len() / width.max(1), width);
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic, version and length take 10 bytes; the whole header ends in a newline at a
    // multiple of 64.
    header += &" ".repeat(63 - (10 + header.len()) % 64);
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}
