//! One list of error codes: `error::Code` (the engine's) and the codes only the JavaScript
//! runtime gives (`PAGE_CODES` in www/errors.js) make up `ErrorCode` in
//! pkg-config/ouvert.d.ts, and every code the runtime's modules throw is one of them.

use ouvert::error::Code;
use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Every `"snake_case"` string in `text`.
fn quoted(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// The text of `source` between `start` and the next `end`.
fn between<'a>(source: &'a str, start: &str, end: &str) -> &'a str {
    let from = source
        .find(start)
        .unwrap_or_else(|| panic!("{start} not found"))
        + start.len();
    &source[from..from + source[from..].find(end).unwrap()]
}

#[test]
fn the_typings_list_the_engine_codes_and_the_page_codes_and_nothing_else() {
    let engine: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let errors = read("www/errors.js");
    let page = quoted(between(&errors, "export const PAGE_CODES = [", "]"));
    let typed = quoted(between(
        &read("pkg-config/ouvert.d.ts"),
        "export type ErrorCode =",
        ";",
    ));
    assert!(
        engine.is_disjoint(&page),
        "a page code is also the engine's: {:?}",
        engine.intersection(&page)
    );
    let all: BTreeSet<String> = engine.union(&page).cloned().collect();
    assert_eq!(
        typed, all,
        "pkg-config/ouvert.d.ts ErrorCode against Code::ALL + PAGE_CODES"
    );

    // What the runtime throws: fail("code", …) and new OuvertError("code", …), a line break
    // allowed after the parenthesis; and the damaged-file list.
    for file in [
        "www/ouvert.js",
        "www/worker-core.js",
        "www/errors.js",
        "www/store.js",
        "www/ouvert-chat.js",
        "www/tool-calls.js",
        "www/prompt-api.js",
    ] {
        let source = read(file);
        for call in ["fail(", "OuvertError("] {
            for rest in source.split(call).skip(1) {
                let Some(code) = rest
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|r| r.split('"').next())
                else {
                    continue;
                };
                assert!(
                    all.contains(code),
                    "{file} throws {code:?}, which ErrorCode lacks"
                );
            }
        }
    }
    let damaged = quoted(between(
        &errors,
        "export const FILE_ERRORS = new Set([",
        "]",
    ));
    assert!(damaged.len() >= 8 && damaged.is_subset(&all), "{damaged:?}");
}
