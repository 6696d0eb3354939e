//! Chat prompts: the GGUF's own `tokenizer.chat_template` (Jinja, run by minijinja) when
//! the file has one, else the architecture's known template.

use crate::error::{Code, Error, Result};
use crate::gguf::{Gguf, Value};
use serde::{Deserialize, Serialize};

/// One message of a conversation, with OpenAI's tool fields: an assistant's `tool_calls`,
/// and a `tool` message's `tool_call_id` and `name`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// On the last message, an assistant's: the answer so far, which the model carries on
    /// (DeepSeek's chat prefix, the Prompt API's `prefix`) instead of starting a new turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix: bool,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }
}

/// A function the assistant called, as templates read it: `arguments` is an object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: serde_json::Value,
}

/// What a model without a tools section in its template is told (the Hermes format, which
/// Qwen's own template also uses, so one parser reads every model's calls).
fn tools_preamble(tools: &[serde_json::Value]) -> String {
    let list: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
    format!(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
        list.join("\n")
    )
}

/// The conversation in plain turns, for a template that knows no tools: the list in the
/// system message, calls and results as text in the Hermes format.
fn tools_as_text(messages: &[Message], tools: &[serde_json::Value]) -> Vec<Message> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    let preamble = tools_preamble(tools);
    match messages.first() {
        Some(m) if m.role == "system" => out.push(Message::new(
            "system",
            &format!("{}\n\n{preamble}", m.content),
        )),
        _ => out.push(Message::new("system", &preamble)),
    }
    let rest = messages.iter().skip(usize::from(
        messages.first().is_some_and(|m| m.role == "system"),
    ));
    for m in rest {
        let mut text = m.content.clone();
        for c in &m.tool_calls {
            let call =
                serde_json::json!({ "name": c.function.name, "arguments": c.function.arguments });
            text.push_str(&format!("\n<tool_call>\n{call}\n</tool_call>"));
        }
        match m.role.as_str() {
            "tool" => out.push(Message::new(
                "user",
                &format!("<tool_response>\n{text}\n</tool_response>"),
            )),
            role => out.push(Message::new(role, text.trim_start())),
        }
    }
    out
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
            let tokens = g.get("tokenizer.ggml.tokens").and_then(Value::as_strings);
            id.zip(tokens)
                .and_then(|(i, t)| t.get(i as usize))
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
        self.render_with_tools(messages, &[])
    }

    /// `render`, telling the model of `tools` (OpenAI's `[{type: "function", function: {name,
    /// description, parameters}}]`): through the template's own tools section when it has
    /// one, else in the system message (`tools_as_text`). A last message marked `prefix`
    /// is left open: the text ends with its content, where the model goes on.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: &[serde_json::Value],
    ) -> Result<String> {
        let Some((last, earlier)) = messages.split_last() else {
            crate::bail!(Code::InvalidArgument, "a chat needs at least one message");
        };
        if earlier.iter().any(|m| m.prefix) || (last.prefix && last.role != "assistant") {
            crate::bail!(
                Code::InvalidArgument,
                "only the last message, an assistant's, may be a prefix"
            );
        }
        if !last.prefix {
            return self.render_turns(messages, tools, true);
        }
        // The template writes a closed turn: render a marker in place of the prefix's
        // content, and cut there (templates may trim content; the prefix stays as given).
        let mut open = messages.to_vec();
        open.last_mut().expect("not empty").content = PREFIX_MARK.into();
        let text = self.render_turns(&open, tools, false)?;
        let Some(at) = text.rfind(PREFIX_MARK) else {
            crate::bail!(
                Code::InvalidChat,
                "this model's chat template does not write an assistant's text, so it cannot continue a prefix"
            );
        };
        Ok(format!("{}{}", &text[..at], last.content))
    }

    fn render_turns(
        &self,
        messages: &[Message],
        tools: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let has_tools_section = self.source.contains("tools");
        let plain;
        let messages = if has_tools_section
            || (tools.is_empty()
                && !messages
                    .iter()
                    .any(|m| m.role == "tool" || !m.tool_calls.is_empty()))
        {
            messages
        } else {
            plain = tools_as_text(messages, tools);
            &plain
        };
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
        env.add_filter("tojson", tojson);
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
        let tools = (has_tools_section && !tools.is_empty()).then_some(tools);
        let ctx = minijinja::context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => add_generation_prompt,
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

/// Stands for a prefix's content while the template runs: private-use characters no real
/// text holds.
const PREFIX_MARK: &str = "\u{F8FF}ouvert-prefix\u{F8FF}";

/// Jinja's `tojson` as Hugging Face's chat templates run it (Python's `json.dumps`, non-ASCII
/// kept): `{"a": 1, "b": [2, 3]}`, or with `indent=n` one item per line.
fn tojson(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    use serde::Serialize;
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let written = match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let f = serde_json::ser::PrettyFormatter::with_indent(&pad);
            value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, f))
        }
        None => value.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, PythonJson,
        )),
    };
    written.map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
    })?;
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

/// `json.dumps`'s default separators: ", " between items, ": " after a key.
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(w, first)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn comma<W: ?Sized + std::io::Write>(w: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

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
        let m = Message::new;
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
    fn a_prefix_leaves_the_assistant_turn_open_with_its_text_as_given() {
        let t = ChatTemplate {
            source: GEMMA_TEMPLATE.into(),
            bos: "<bos>".into(),
            eos: "<eos>".into(),
        };
        let prefix = Message {
            prefix: true,
            ..Message::new("assistant", "```toml\n")
        };
        let out = t
            .render(&[Message::new("user", "A gnome."), prefix.clone()])
            .unwrap();
        // Gemma's template trims content; the prefix keeps its newline.
        assert_eq!(
            out,
            "<bos><start_of_turn>user\nA gnome.<end_of_turn>\n<start_of_turn>model\n```toml\n"
        );
        let user_prefix = Message {
            role: "user".into(),
            ..prefix.clone()
        };
        for wrong in [
            vec![user_prefix],
            vec![prefix, Message::new("user", "A gnome.")],
        ] {
            let e = t.render(&wrong).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{e}");
        }
    }

    #[test]
    fn tools_go_in_the_system_message_of_a_template_without_a_tools_section() {
        let t = ChatTemplate {
            source: GEMMA_TEMPLATE.into(),
            bos: "<bos>".into(),
            eos: "<eos>".into(),
        };
        let tool = serde_json::json!({ "type": "function", "function": { "name": "meteo" } });
        let mut call = Message::new("assistant", "");
        call.tool_calls = vec![ToolCall {
            id: Some("c1".into()),
            kind: "function".into(),
            function: FunctionCall {
                name: "meteo".into(),
                arguments: serde_json::json!({ "ville": "Lyon" }),
            },
        }];
        let out = t
            .render_with_tools(
                &[
                    Message::new("user", "Quel temps ?"),
                    call,
                    Message::new("tool", "12 °C"),
                ],
                &[tool],
            )
            .unwrap();
        assert!(
            out.starts_with("<bos><start_of_turn>user\n# Tools"),
            "{out}"
        );
        assert!(
            out.contains(
                "<tools>\n{\"type\":\"function\",\"function\":{\"name\":\"meteo\"}}\n</tools>"
            ),
            "{out}"
        );
        assert!(out.contains("<start_of_turn>model\n<tool_call>\n{\"name\":\"meteo\",\"arguments\":{\"ville\":\"Lyon\"}}\n</tool_call><end_of_turn>"), "{out}");
        assert!(
            out.contains(
                "<start_of_turn>user\n<tool_response>\n12 °C\n</tool_response><end_of_turn>"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_template_that_never_ends_is_an_error() {
        let t = ChatTemplate {
            source: "{% for a in range(10000) %}{% for b in range(10000) %}{{ a }}{% endfor %}{% endfor %}".into(),
            bos: String::new(),
            eos: String::new(),
        };
        let err = t.render(&[Message::new("user", "hi")]).unwrap_err();
        assert_eq!(err.code, "invalid_chat");
    }
}
