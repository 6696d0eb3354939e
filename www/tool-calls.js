// Tool calls in the Hermes format (`<tool_call>{"name": …, "arguments": …}</tool_call>`,
// which Qwen's chat template asks for and which models without a tools section are told):
// OpenAI's tool options read, the grammar that holds a call to its function's schema, and the
// calls found in an answer. Shared by the chat completions (ouvert.js) and the Prompt API.
import { OuvertError } from "./errors.js";

/**
 * OpenAI's `tools` and `tool_choice`: the list the chat template is given (none for "none"),
 * and for "required" or a named function the grammar the answer is held to: one call in
 * the Hermes format (`<tool_call>{"name": …, "arguments": …}</tool_call>`, which Qwen's
 * template asks for and which models without a tools section are told), its arguments
 * valid under the function's `parameters`.
 */
export function chatTools(tools, choice = "auto") {
  if (tools == null || tools.length === 0 || choice === "none") return { list: undefined };
  if (!Array.isArray(tools))
    throw new OuvertError(
      "invalid_argument",
      'tools must be an array of { type: "function", function }',
    );
  const fns = tools.map((t, i) => {
    const f = t?.function;
    if (t?.type !== "function" || typeof f?.name !== "string" || !/^[\w.-]{1,64}$/.test(f.name))
      throw new OuvertError(
        "invalid_argument",
        `tools[${i}] must be { type: "function", function: { name, description?, parameters? } } with a name of letters, digits, _, . or - (at most 64)`,
      );
    const parameters = f.parameters ?? { type: "object", properties: {} };
    if (typeof parameters !== "object" || Array.isArray(parameters))
      throw new OuvertError(
        "invalid_argument",
        `tools[${i}].function.parameters must be a JSON Schema object`,
      );
    return { name: f.name, parameters };
  });
  let required = null;
  if (choice === "required" || typeof choice === "object") {
    let allowed = fns;
    if (typeof choice === "object") {
      allowed = fns.filter((f) => f.name === choice?.function?.name);
      if (!allowed.length)
        throw new OuvertError(
          "invalid_argument",
          `tool_choice names ${JSON.stringify(choice?.function?.name)}, which is not among the tools (${fns.map((f) => f.name).join(", ")})`,
        );
    }
    required = callGrammar(allowed, { orText: false });
  } else if (choice !== "auto") {
    throw new OuvertError(
      "invalid_argument",
      'tool_choice is "auto", "none", "required" or { type: "function", function: { name } }',
    );
  }
  return { list: tools, required };
}

const CALL = /<tool_call>\s*([\s\S]*?)\s*(?:<\/tool_call>|$)/g;

/** Where shown text must stop: before a "<tool_call>" or what may still become one. */
export function textBeforeCall(text) {
  const at = text.indexOf("<tool_call>");
  if (at >= 0) return at;
  for (let n = Math.min(text.length, 10); n > 0; n--)
    if ("<tool_call>".startsWith(text.slice(-n))) return text.length - n;
  return text.length;
}

/**
 * The calls in a model's answer, as OpenAI's `tool_calls` (arguments as a JSON string):
 * `<tool_call>` blocks (Hermes, Qwen), or an answer that is one JSON object with a name and
 * arguments or parameters (Llama 3.x), bare or in a code block. The text outside them is the
 * content (or null).
 */
export function toolCalls(text) {
  const found = [];
  const call = (json) => {
    try {
      const v = JSON.parse(json);
      const args = v?.arguments ?? v?.parameters;
      if (typeof v?.name !== "string" || args === undefined) return false;
      found.push({
        id: `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
        type: "function",
        function: {
          name: v.name,
          arguments: typeof args === "string" ? args : JSON.stringify(args),
        },
      });
      return true;
    } catch {
      return false;
    }
  };
  let rest = text.replace(CALL, (whole, json) => (call(json) ? "" : whole));
  // A whole answer that is one call, bare or in a code block (small models write both).
  const whole = text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, "$1");
  if (!found.length && whole.startsWith("{") && call(whole)) rest = "";
  rest = rest.trim();
  return { content: rest || (found.length ? null : text), calls: found };
}

/**
 * The grammar (a `responseFormat`) of an answer that is one or more calls to `fns` (`[{ name,
 * parameters }]`), each call's arguments valid under its function's `parameters`; with
 * `orText`, or a text answer instead, which may not open like a call (`<`, `{`, a code
 * fence or a space): small models otherwise write calls in formats of their own.
 */
export function callGrammar(fns, { orText }) {
  const call = (f) => ({
    type: "object",
    properties: { name: { const: f.name }, arguments: f.parameters },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  const schema = fns.length === 1 ? call(fns[0]) : { anyOf: fns.map(call) };
  // One line, as the chat template writes JSON: constraint.rs's json_layout (tests/options.rs).
  schema["x-guidance"] = { whitespace_flexible: false, item_separator: ", ", key_separator: ": " };
  const calls = `calls: call ("\\n" call)*\ncall: "<tool_call>\\n" args "\\n</tool_call>"\nargs: %json ${JSON.stringify(schema)}`;
  return {
    type: "grammar",
    lark: orText ? `start: calls | text\ntext: ${TEXT}\n${calls}` : `start: calls\n${calls}`,
  };
}

/** A text answer that cannot open like a tool call (a Lark regex terminal). */
const TEXT = "/[^<{`\\s][\\s\\S]*/";

/**
 * After a round of calls and their results: an answer in prose, without `<`, `{` or a
 * backtick. Qwen2.5 Coder 0.5B, given a tool's result, writes the same call again (as a
 * `<tool_call>`, bare JSON, or JSON after a parenthesis) unless no call can be written.
 */
export const TEXT_ANSWER = { type: "regex", pattern: "[^<{`]+" };
