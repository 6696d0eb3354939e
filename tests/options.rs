//! One list of generation options across three languages: the Rust structs (what the engine
//! reads), `GENERATE_KEYS` in www/ouvert.js (what the page sends; any other key is an
//! `invalid_argument` there) and `GenerateOptions` in pkg-config/ouvert.d.ts (what a
//! developer's editor offers). An option added to one and not the others fails here.

use ouvert::engine::GenerateOptions;
use ouvert::score::ScoreOptions;
use std::collections::BTreeSet;

/// Options the page keeps to itself (the engine never sees them).
const PAGE_ONLY: [&str; 2] = ["signal", "onPrefill"];

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The names in the block of `source` that starts at `start` and ends at `end`, each found
/// by `name` (a key at the start of a line).
fn names(source: &str, start: &str, end: &str, key: fn(&str) -> Option<&str>) -> BTreeSet<String> {
    let from = source
        .find(start)
        .unwrap_or_else(|| panic!("{start} not found"));
    let block = &source[from + start.len()..];
    let block = &block[..block.find(end).unwrap()];
    block
        .lines()
        .filter_map(|l| key(l.trim()))
        .map(str::to_owned)
        .collect()
}

/// The keys a Rust options struct serializes.
fn rust_keys(options: impl serde::Serialize) -> BTreeSet<String> {
    serde_json::to_value(options)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The members of a TypeScript interface in pkg-config/ouvert.d.ts (all optional there).
fn typed_keys(interface: &str) -> BTreeSet<String> {
    names(
        &read("pkg-config/ouvert.d.ts"),
        &format!("export interface {interface} {{"),
        "\n}",
        |l| {
            l.split_once("?:")
                .map(|(k, _)| k)
                .filter(|k| k.chars().all(char::is_alphanumeric))
        },
    )
}

#[test]
fn rust_the_javascript_list_and_the_typings_name_the_same_options() {
    let rust = rust_keys(GenerateOptions::default());
    let js = names(
        &read("www/ouvert.js"),
        "const GENERATE_KEYS = [",
        "];",
        |l| {
            l.strip_suffix(',')
                .unwrap_or(l)
                .strip_prefix('"')?
                .strip_suffix('"')
        },
    );
    let mut typed = typed_keys("GenerateOptions");
    for k in PAGE_ONLY {
        assert!(
            typed.remove(k),
            "the typings lost the page's own option {k}"
        );
    }
    assert!(rust.len() >= 10, "{rust:?}");
    assert_eq!(
        js, rust,
        "www/ouvert.js GENERATE_KEYS against the Rust options"
    );
    assert_eq!(
        typed, rust,
        "pkg-config/ouvert.d.ts GenerateOptions against the Rust options"
    );
}

#[test]
fn the_scoring_options_too() {
    let rust = rust_keys(ScoreOptions::default());
    let source = read("www/ouvert.js");
    let from = source.find("const SCORE_KEYS = [").expect("SCORE_KEYS") + 20;
    let js: BTreeSet<String> = source[from..from + source[from..].find(']').unwrap()]
        .split(',')
        .map(|k| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    let mut typed = typed_keys("ScoreOptions");
    for k in ["signal", "onProgress"] {
        assert!(
            typed.remove(k),
            "the typings lost the page's own option {k}"
        );
    }
    assert!(rust.len() >= 2, "{rust:?}");
    assert_eq!(js, rust, "www/ouvert.js SCORE_KEYS against ScoreOptions");
    assert_eq!(
        typed, rust,
        "pkg-config/ouvert.d.ts ScoreOptions against ScoreOptions"
    );
}

/// Tool calls' JSON (www/tool-calls.js) is laid out as the engine's JSON formats are.
#[test]
fn tool_calls_lay_json_out_as_the_json_formats_do() {
    let source = read("www/tool-calls.js");
    let at = source
        .find("schema[\"x-guidance\"] = ")
        .expect("tool-calls.js sets x-guidance");
    let object = &source[at + "schema[\"x-guidance\"] = ".len()..];
    let object = &object[..object.find('}').unwrap() + 1];
    // A JS object literal of plain keys and JSON values: quote the keys to read it as JSON.
    let (mut json, mut in_string, mut chars) = (String::new(), false, object.chars().peekable());
    while let Some(c) = chars.next() {
        if c == '"' {
            in_string = !in_string;
        }
        if in_string || !(c.is_alphabetic() || c == '_') {
            json.push(c);
            continue;
        }
        let mut word = c.to_string();
        while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
            word.push(n);
            chars.next();
        }
        let is_key = chars.clone().find(|n| !n.is_whitespace()) == Some(':');
        json += &if is_key { format!("\"{word}\"") } else { word };
    }
    let js: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(js, ouvert::constraint::json_layout());
}
