//! Chat prompts: the GGUF's own `tokenizer.chat_template` (Jinja, run by minijinja) when
//! the file has one, else the architecture's known template.

use crate::error::{Code, Error, Result};
use crate::gguf::{Gguf, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Gemma's turn markers, as in its Hugging Face chat template: a system message is folded
/// into the first user turn, and the assistant's role is called "model".
const GEMMA_TEMPLATE: &str = "{{ bos_token }}\
{%- if messages[0]['role'] == 'system' -%}\
{%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}\
{%- set loop_messages = messages[1:] -%}\
{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}\
{%- for message in loop_messages -%}\
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}\
{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// Where a file's chat template comes from: `"file"` (its own: an instruct model),
/// `"builtin"` (none in the file, but its architecture's known turns), or none at all.
pub fn template_origin(g: &Gguf) -> Option<&'static str> {
    let arch = g
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("");
    if file_template(g).is_some() {
        Some("file")
    } else if arch.starts_with("gemma") {
        Some("builtin")
    } else {
        None
    }
}

fn file_template(g: &Gguf) -> Option<&str> {
    g.get("tokenizer.chat_template").and_then(Value::as_str)
}

pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    pub fn from_gguf(g: &Gguf) -> Option<Self> {
        let token = |key: &str| -> String {
            let id = g.get(key).and_then(Value::as_u64);
            let tokens = g.get("tokenizer.ggml.tokens").and_then(Value::as_array);
            id.zip(tokens)
                .and_then(|(i, t)| t.get(i as usize))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let source = match template_origin(g)? {
            "file" => file_template(g)?.to_owned(),
            _ => GEMMA_TEMPLATE.to_owned(),
        };
        Some(ChatTemplate {
            source,
            bos: token("tokenizer.ggml.bos_token_id"),
            eos: token("tokenizer.ggml.eos_token_id"),
        })
    }

    /// The prompt text for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        if messages.is_empty() {
            crate::bail!(Code::InvalidArgument, "a chat needs at least one message");
        }
        let mut env = minijinja::Environment::new();
        // As Hugging Face's apply_chat_template runs Jinja, which the templates are written for.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // The template comes from the file: bound its work, so a hostile one cannot hang the
        // engine (real templates use a few thousand instructions per message).
        env.set_fuel(Some(
            TEMPLATE_FUEL_PER_MESSAGE * (messages.len() as u64 + 1),
        ));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let fail = |e: minijinja::Error| {
            Error::new(
                Code::InvalidChat,
                format!("the chat template could not render these messages: {e}"),
            )
        };
        env.add_template("chat", &self.source).map_err(fail)?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        };
        env.get_template("chat")
            .map_err(fail)?
            .render(ctx)
            .map_err(fail)
    }
}

const TEMPLATE_FUEL_PER_MESSAGE: u64 = 200_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_template_folds_system_into_first_turn() {
        let t = ChatTemplate {
            source: GEMMA_TEMPLATE.into(),
            bos: "<bos>".into(),
            eos: "<eos>".into(),
        };
        let m = |r: &str, c: &str| Message {
            role: r.into(),
            content: c.into(),
        };
        let out = t
            .render(&[
                m("system", "Be brief."),
                m("user", " Hi! "),
                m("assistant", "Hello."),
                m("user", "Bye"),
            ])
            .unwrap();
        assert_eq!(
            out,
            "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn a_template_that_never_ends_is_an_error() {
        let t = ChatTemplate {
            source: "{% for a in range(10000) %}{% for b in range(10000) %}{{ a }}{% endfor %}{% endfor %}".into(),
            bos: String::new(),
            eos: String::new(),
        };
        let err = t
            .render(&[Message {
                role: "user".into(),
                content: "hi".into(),
            }])
            .unwrap_err();
        assert_eq!(err.code, "invalid_chat");
    }
}
