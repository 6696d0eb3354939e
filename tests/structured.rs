//! Constrained decoding with the instruct model (Qwen2.5 Coder 0.5B Instruct), greedy,
//! natively: a JSON Schema extraction from French prose, a regex, Lark and GBNF grammars,
//! on the CPU and on the GPU (lavapipe); a cut output reported as cut; bad formats named
//! before any token, the engine serving the next request the same.

mod common;
use common::*;
use ouvert::chat::Message;
use ouvert::constraint::ResponseFormat;
use ouvert::engine::{Engine, FinishReason, GenerateOptions, Output};
use ouvert::sampler::SamplerConfig;
use ouvert::weights::ModelBytes;
use serde_json::{json, Value};

fn engine() -> Engine {
    let bytes = std::fs::read(instruct_model_path()).unwrap();
    Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap()
}

fn ask(
    e: &mut Engine,
    question: &str,
    format: ResponseFormat,
    max_tokens: usize,
) -> ouvert::Result<Output> {
    let prompt = e.encode_chat(&[Message::new("user", question)])?;
    let opts = GenerateOptions {
        max_tokens,
        sampler: SamplerConfig::greedy(),
        response_format: Some(format),
        ..Default::default()
    };
    e.generate(&prompt, &opts, &mut |_| true)
}

fn format(v: Value) -> ResponseFormat {
    serde_json::from_value(v).unwrap()
}

const QUESTION: &str = "Extrais la fiche de cette personne en JSON : Marie Curie, née à Varsovie en 1867, était physicienne et chimiste.";

fn person() -> ResponseFormat {
    format(json!({ "type": "json_schema", "schema": {
        "type": "object",
        "properties": {
            "nom": { "type": "string" },
            "naissance": { "$ref": "#/$defs/annee" },
            "metiers": { "type": "array", "items": { "enum": ["physicienne", "chimiste"] } }
        },
        "required": ["nom", "naissance", "metiers"],
        "additionalProperties": false,
        "$defs": { "annee": { "type": "integer", "minimum": 1000, "maximum": 2100 } }
    }}))
}

/// The object has exactly the schema's keys, with their types and bounds.
fn check_person(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["nom", "naissance", "metiers"], "{text}");
    assert!(v["nom"].as_str().unwrap().contains("Curie"), "{text}");
    assert_eq!(v["naissance"], 1867, "{text}");
    for m in v["metiers"].as_array().unwrap() {
        assert!(
            ["physicienne", "chimiste"].contains(&m.as_str().unwrap()),
            "{text}"
        );
    }
}

#[test]
fn json_schema_regex_and_grammars_hold_on_the_cpu() {
    let mut e = engine();
    let out = ask(&mut e, QUESTION, person(), 96).unwrap();
    eprintln!("JSON: {}", out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop);
    check_person(&out.text);

    let date = format(
        json!({ "type": "regex", "pattern": "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" }),
    );
    let out = ask(
        &mut e,
        "Quelle est la date de la prise de la Bastille ? Une date ISO.",
        date,
        32,
    )
    .unwrap();
    eprintln!("date: {}", out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop);
    let b = out.text.as_bytes();
    assert!(
        b.len() == 10 && b[4] == b'-' && b[7] == b'-',
        "{}",
        out.text
    );

    let lark = format(
        json!({ "type": "grammar", "lark": "start: (\"oui\" | \"non\") \", \" /[a-z ]{3,30}/ \".\"" }),
    );
    let out = ask(
        &mut e,
        "Le ciel est-il bleu ? Oui ou non, et pourquoi.",
        lark,
        32,
    )
    .unwrap();
    eprintln!("lark: {}", out.text);
    assert!(
        out.text.starts_with("oui, ") || out.text.starts_with("non, "),
        "{}",
        out.text
    );
    assert!(out.text.ends_with('.'), "{}", out.text);

    let gbnf = format(
        json!({ "type": "grammar", "gbnf": "root ::= word (\", \" word){2}\nword ::= [a-z]{3,10}" }),
    );
    let out = ask(
        &mut e,
        "Liste trois couleurs, en minuscules, séparées par des virgules.",
        gbnf,
        32,
    )
    .unwrap();
    eprintln!("gbnf: {}", out.text);
    let words: Vec<&str> = out.text.split(", ").collect();
    assert_eq!(words.len(), 3, "{}", out.text);
    assert!(words
        .iter()
        .all(|w| (3..=10).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase())));
    assert_eq!(out.finish_reason, FinishReason::Stop);
}

#[test]
fn a_cut_output_says_so_and_bad_formats_fail_before_any_token() {
    let mut e = engine();
    let out = ask(
        &mut e,
        "Décris Paris en JSON.",
        format(json!({ "type": "json_object" })),
        6,
    )
    .unwrap();
    assert_eq!(out.finish_reason, FinishReason::Length);
    assert!(
        serde_json::from_str::<Value>(&out.text).is_err(),
        "{}",
        out.text
    );

    let capital = format(json!({ "type": "regex", "pattern": "[A-Z][a-z]+( [a-z]+)*" }));
    let first = ask(
        &mut e,
        "Quelle est la capitale de la France ?",
        capital.clone(),
        12,
    )
    .unwrap();
    let bad = [
        (
            json!({ "type": "json_schema", "schema": { "type": "strin" } }),
            "strin",
        ),
        (
            json!({ "type": "json_schema", "schema": { "type": "object", "unevaluatedProperties": false } }),
            "unevaluatedProperties",
        ),
        (
            json!({ "type": "json_schema", "schema": 3 }),
            "JSON Schema object",
        ),
        (
            json!({ "type": "regex", "pattern": "(a" }),
            "unclosed group",
        ),
        (
            json!({ "type": "grammar", "lark": "start: missing_rule" }),
            "missing_rule",
        ),
        (json!({ "type": "grammar", "gbnf": "root ::= \"a" }), "GBNF"),
        (json!({ "type": "grammar" }), "exactly one"),
    ];
    for (f, says) in bad {
        let err = ask(&mut e, "Bonjour", format(f.clone()), 8).unwrap_err();
        assert_eq!(err.code, "invalid_argument", "{f}");
        assert!(err.message.contains(says), "{f}: {}", err.message);
    }
    let again = ask(&mut e, "Quelle est la capitale de la France ?", capital, 12).unwrap();
    assert_eq!(
        again.tokens, first.tokens,
        "the engine answers the same after the errors"
    );
}

/// On the GPU a constrained step reads the whole row of logits back (a top-k the mask could
/// empty would not do): the same tokens as on the CPU. The base model and a short prompt:
/// lavapipe takes seconds a step.
#[test]
fn a_constraint_holds_on_the_gpu() {
    let Some(g) = gpu() else { return };
    let bytes = std::fs::read(model_path()).unwrap();
    let mut on_gpu = Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 256).unwrap();
    let mut on_cpu = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 256).unwrap();
    let opts = GenerateOptions {
        max_tokens: 12,
        sampler: SamplerConfig::greedy(),
        response_format: Some(format(json!({
            "type": "regex",
            "pattern": " (le )?[0-9]{1,2} [a-zéû]+ [0-9]{4}\\."
        }))),
        ..Default::default()
    };
    let run = |e: &mut Engine| {
        let prompt = e.encode("La prise de la Bastille a eu lieu").unwrap();
        e.generate(&prompt, &opts, &mut |_| true).unwrap()
    };
    let out = run(&mut on_gpu);
    eprintln!("on the GPU: {:?}", out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert!(
        out.text.ends_with('.') && out.text.starts_with(' '),
        "{:?}",
        out.text
    );
    assert_eq!(out.tokens, run(&mut on_cpu).tokens, "as on the CPU");
}

/// Tools through the file's own template (Qwen's tools section), the call required as the
/// page's `tool_choice: "required"` asks: a `<tool_call>` whose JSON names the function with
/// arguments valid under its parameters; the result sent back as a `tool` message gives an
/// answer that uses it.
#[test]
fn a_tool_call_and_its_result_through_the_template() {
    use ouvert::chat::{FunctionCall, ToolCall};
    let mut e = engine();
    let parameters = json!({
        "type": "object",
        "properties": { "ville": { "type": "string" }, "unite": { "enum": ["celsius", "fahrenheit"] } },
        "required": ["ville", "unite"]
    });
    let tools = [json!({ "type": "function", "function": {
        "name": "meteo",
        "description": "La météo actuelle d'une ville",
        "parameters": parameters
    }})];
    let mut chat = vec![
        Message::new("system", "Tu es un assistant météo. Quand un outil te donne son résultat, réponds à l'utilisateur en une phrase."),
        Message::new("user", "Quel temps fait-il à Lyon ?"),
    ];
    let prompt = e.encode_chat_with_tools(&chat, &tools).unwrap();
    let text = e.tokenizer.decode(&prompt);
    assert!(
        text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"meteo\""),
        "{text}"
    );
    let call_schema = json!({
        "type": "object",
        "properties": { "name": { "const": "meteo" }, "arguments": parameters },
        "required": ["name", "arguments"],
        "additionalProperties": false,
        "x-guidance": { "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": " }
    });
    let required = format(json!({ "type": "grammar", "lark": format!(
        "start: \"<tool_call>\\n\" call \"\\n</tool_call>\"\ncall: %json {call_schema}"
    ) }));
    let greedy = |format| GenerateOptions {
        max_tokens: 48,
        sampler: SamplerConfig::greedy(),
        response_format: format,
        ..Default::default()
    };
    let out = e
        .generate(&prompt, &greedy(Some(required)), &mut |_| true)
        .unwrap();
    eprintln!("call: {}", out.text);
    assert_eq!(out.finish_reason, FinishReason::Stop);
    let json = out
        .text
        .strip_prefix("<tool_call>\n")
        .and_then(|t| t.strip_suffix("\n</tool_call>"))
        .unwrap_or_else(|| panic!("{}", out.text));
    let call: Value = serde_json::from_str(json).unwrap();
    assert_eq!(call["name"], "meteo");
    assert!(call["arguments"]["ville"]
        .as_str()
        .unwrap()
        .eq_ignore_ascii_case("lyon"));
    assert!(["celsius", "fahrenheit"].contains(&call["arguments"]["unite"].as_str().unwrap()));

    let mut answer = Message::new("assistant", "");
    answer.tool_calls = vec![ToolCall {
        id: Some("call_1".into()),
        kind: "function".into(),
        function: FunctionCall {
            name: "meteo".into(),
            arguments: call["arguments"].clone(),
        },
    }];
    let mut result = Message::new("tool", "Lyon : 12 °C, ciel pluvieux.");
    result.tool_call_id = Some("call_1".into());
    chat.extend([answer, result]);
    let prompt = e.encode_chat_with_tools(&chat, &tools).unwrap();
    let text_only = format(json!({ "type": "regex", "pattern": "[A-Za-zÀ-ÿ][^<{}`]*" }));
    assert!(e
        .tokenizer
        .decode(&prompt)
        .contains("<tool_response>\nLyon : 12 °C"));
    let out = e
        .generate(&prompt, &greedy(Some(text_only)), &mut |_| true)
        .unwrap();
    eprintln!("answer: {}", out.text);
    assert!(out.text.contains("12"), "{}", out.text);
    assert!(!out.text.contains("<tool_call>"), "{}", out.text);
}
