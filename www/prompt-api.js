// The WICG Prompt API (`LanguageModel`, github.com/webmachinelearning/prompt-api) on an open
// model that runs in the page: the explainer's code runs unchanged, in every browser.
//
//   import { install } from "ouvert/prompt-api";
//   install(); // globalThis.LanguageModel, unless the browser has its own
//   const session = await LanguageModel.create();
//   console.log(await session.prompt("Écris un haïku sur la pluie."));
//
// Sessions share one engine (createEngine in ouvert.js) and speak to it through its chat
// completions: a session is the conversation so far, its tools, its sampling. Types:
// prompt-api.d.ts.
import { createEngine, OuvertError } from "./ouvert.js";
import { listCachedModels } from "./store.js";
import { callGrammar, TEXT_ANSWER } from "./tool-calls.js";

/**
 * The model a `LanguageModel` runs unless the page names another: the instruct model the
 * project is tested on (Qwen2.5 Coder 0.5B Instruct, Q4_K_M, 491 MB), at this path next to
 * the page, checked against this SHA-256.
 */
export const DEFAULT_MODEL = Object.freeze({
  model: "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
  sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
});

/** Languages the default model's family names in its card (Qwen2.5 is trained on 29). */
export const DEFAULT_LANGUAGES = Object.freeze([
  "en",
  "fr",
  "es",
  "pt",
  "de",
  "it",
  "ru",
  "ja",
  "ko",
  "vi",
  "th",
  "ar",
  "zh",
]);

/**
 * The explainer's `samplingMode`s as the engine's options. "balanced" is what Qwen2.5's
 * instruct models ship with (temperature 0.7, top-p 0.8, top-k 20, repetition penalty 1.05);
 * the others move away from it on either side.
 */
export const SAMPLING_MODES = Object.freeze({
  "most-predictable": Object.freeze({ temperature: 0 }),
  predictable: Object.freeze({ temperature: 0.3, topK: 20, topP: 0.8 }),
  balanced: Object.freeze({ temperature: 0.7, topK: 20, topP: 0.8, repeatPenalty: 1.05 }),
  creative: Object.freeze({ temperature: 1, topK: 40, topP: 0.95 }),
  "most-creative": Object.freeze({ temperature: 1.3, topK: 0, topP: 1, minP: 0.05 }),
});

// `params()` (the legacy raw parameters, which an Ouvert session honours).
const PARAMS = Object.freeze({
  defaultTopK: 20,
  maxTopK: 128,
  defaultTemperature: 0.7,
  maxTemperature: 2,
});

const ROLES = ["system", "user", "assistant"];
const TYPES = ["text", "image", "audio", "tool-call", "tool-response"];
// What this implementation reads and writes: text, and tools (calls out, results in).
const INPUTS = ["text", "tool-response"];
const OUTPUTS = ["text", "tool-call"];
const KEY = Symbol("LanguageModel");

/**
 * A `LanguageModel` class bound to a model and its settings (all optional):
 * `model`, `sha256`, `backend`, `contextLength` (the context window, default 4096),
 * `threads` (createEngine's), `languages` (what `expectedInputs`/`expectedOutputs` may name),
 * `sampling` (engine options that override every session's, e.g. `{ temperature: 0 }`),
 * `maxTokens` (the longest answer, default 1024); or `engine`, an Engine the page loaded
 * (createEngine), which the sessions then use and never dispose.
 */
export function createLanguageModel(config = {}) {
  const settings = {
    // Another model is not checked against the default's SHA-256 unless given its own.
    ...(config.model == null && config.engine == null ? DEFAULT_MODEL : {}),
    backend: "auto",
    contextLength: 4096,
    languages: DEFAULT_LANGUAGES,
    maxTokens: 1024,
    ...config,
  };
  const shared = sharedEngine(settings);
  // A page's own engine has the context it was loaded with.
  const contextWindow = settings.engine?.info?.contextLength ?? settings.contextLength;

  class LanguageModel extends EventTarget {
    #s; // this session's state (see create)
    #onContextOverflow = null;
    #onQuotaOverflow = null;

    constructor(key, state) {
      if (key !== KEY) throw new TypeError("Illegal constructor: use LanguageModel.create()");
      super();
      this.#s = state;
      this.addEventListener("contextoverflow", (e) => this.#onContextOverflow?.call(this, e));
      this.addEventListener("quotaoverflow", (e) => this.#onQuotaOverflow?.call(this, e));
    }

    /** "available" (in memory or in the model cache), "downloadable", "downloading" or "unavailable". */
    static async availability(options = {}) {
      if (unsupported(options, settings).length) return "unavailable";
      if (typeof WebAssembly !== "object" || typeof Worker !== "function") return "unavailable";
      return shared.availability();
    }

    /** The legacy sampling parameters' defaults and limits. */
    static async params() {
      return { ...PARAMS };
    }

    static async create(options = {}) {
      const { signal, monitor } = options;
      if (signal?.aborted) throw signal.reason;
      const missing = unsupported(options, settings);
      if (missing.length)
        throw new DOMException(
          `this model reads ${INPUTS.join(" and ")} and writes ${OUTPUTS.join(" and ")}, in ${settings.languages.join(", ")}; not ${missing
            .map((e) => `${e.type}${e.languages ? ` (${e.languages.join(", ")})` : ""}`)
            .join(", ")}`,
          "NotSupportedError",
        );
      const sampling = samplingOf(options, settings);
      const tools = toolsOf(options.tools);
      const initial = options.initialPrompts
        ? canonical(options.initialPrompts, expectedTypes(options.expectedInputs), false)
        : [];
      if (initial.at(-1)?.prefix)
        throw new DOMException("initialPrompts cannot end with a prefix", "SyntaxError");
      const progress = new EventTarget();
      if (monitor != null) {
        if (typeof monitor !== "function") throw new TypeError("monitor must be a function");
        monitor(progress);
      }
      const engine = await shared.acquire(signal, (loaded) =>
        progress.dispatchEvent(new ProgressEvent("downloadprogress", { loaded, total: 1 })),
      );
      try {
        const state = {
          engine,
          initial,
          history: [], // one entry per prompt() or append(): { messages }
          usage: 0,
          initialUsage: 0, // what the initial prompts hold, which no overflow drops
          tools,
          sampling,
          expected: expectedTypes(options.expectedInputs),
          destroyed: new AbortController(),
          queue: Promise.resolve(),
        };
        if (initial.length) {
          const ids = await engine.encodeChat(initial, { tools: tools.openai });
          if (ids.length > contextWindow)
            throw quotaError(
              `the initial prompts need ${ids.length} tokens, more than the context window of ${contextWindow}`,
              ids.length,
              contextWindow,
            );
          state.usage = state.initialUsage = ids.length;
        }
        if (signal?.aborted) throw signal.reason;
        const session = new LanguageModel(KEY, state);
        signal?.addEventListener("abort", () => session.destroy(signal.reason), { once: true });
        return session;
      } catch (e) {
        shared.release();
        throw toDOMException(e, signal);
      }
    }

    /** Tokens the conversation holds (the chat template's markers included). */
    get contextUsage() {
      return this.#s.usage;
    }
    /** The tokens a session may hold: the engine's context length. */
    get contextWindow() {
      return contextWindow;
    }
    /** @deprecated `contextUsage`'s old name. */
    get inputUsage() {
      return this.contextUsage;
    }
    /** @deprecated `contextWindow`'s old name. */
    get inputQuota() {
      return this.contextWindow;
    }
    get samplingMode() {
      return this.#s.sampling.mode;
    }
    get topK() {
      return this.#s.sampling.options.topK;
    }
    get temperature() {
      return this.#s.sampling.options.temperature;
    }
    get oncontextoverflow() {
      return this.#onContextOverflow;
    }
    set oncontextoverflow(f) {
      this.#onContextOverflow = typeof f === "function" ? f : null;
    }
    get onquotaoverflow() {
      return this.#onQuotaOverflow;
    }
    set onquotaoverflow(f) {
      this.#onQuotaOverflow = typeof f === "function" ? f : null;
    }

    /** The answer to `input` (a string, or messages), once whole. */
    prompt(input, options = {}) {
      return this.#run(options.signal, async (signal) => {
        let text = "";
        for await (const piece of this.#respond(input, options, signal)) text += piece;
        return text;
      });
    }

    /** The answer to `input` as a `ReadableStream` of text pieces, each one new text. */
    promptStreaming(input, options = {}) {
      const stop = new AbortController();
      const signal = combine([options.signal, stop.signal]);
      const stream = new ReadableStream({
        start: (controller) => {
          this.#run(signal, async (signal) => {
            for await (const piece of this.#respond(input, options, signal))
              controller.enqueue(piece);
            controller.close();
          }).catch((e) => controller.error(e));
        },
        cancel: (reason) => stop.abort(reason),
      });
      // `for await` over a stream, where the browser's streams lack it (Safari); leaving
      // the loop early cancels the answer, as the native iterator does.
      stream[Symbol.asyncIterator] ??= async function* () {
        const reader = stream.getReader();
        let ended = false;
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) {
              ended = true;
              return;
            }
            yield value;
          }
        } finally {
          if (!ended) reader.cancel().catch(() => {});
          reader.releaseLock();
        }
      };
      return stream;
    }

    /** Adds `input` to the conversation without asking for an answer. */
    append(input, options = {}) {
      return this.#run(options.signal, async (signal) => {
        const messages = canonical(input, this.#s.expected, this.#s.usage > 0);
        if (messages.at(-1)?.prefix)
          throw new DOMException("append() takes no prefix; pass it to prompt()", "SyntaxError");
        const ids = await this.#fit(messages, signal, 0);
        this.#s.history.push({ messages });
        this.#s.usage = ids;
      });
    }

    /** How many tokens `input` would add to the conversation. */
    measureContextUsage(input, options = {}) {
      return this.#run(options.signal, async (signal) => {
        const messages = this.#withConstraintNote(
          canonical(input, this.#s.expected, false),
          options,
        );
        const ids = await this.#s.engine.encodeChat(this.#conversation(messages), {
          tools: this.#s.tools.openai,
        });
        if (signal.aborted) throw signal.reason;
        return Math.max(0, ids.length - this.#s.usage);
      });
    }
    /** @deprecated `measureContextUsage`'s old name. */
    measureInputUsage(input, options) {
      return this.measureContextUsage(input, options);
    }

    /** A new session that starts from this one's conversation, tools and sampling. */
    async clone(options = {}) {
      const signal = combine([options.signal, this.#s.destroyed.signal]);
      if (signal.aborted) throw signal.reason;
      const engine = await shared.acquire(signal);
      const state = {
        ...this.#s,
        engine,
        history: this.#s.history.map((h) => ({ messages: [...h.messages] })),
        destroyed: new AbortController(),
        queue: Promise.resolve(),
      };
      if (signal.aborted) {
        shared.release();
        throw signal.reason;
      }
      return new LanguageModel(KEY, state);
    }

    /** Ends the session: its requests fail with an AbortError, and the model leaves memory
     * when no other session uses it. */
    destroy(reason) {
      const s = this.#s;
      if (s.destroyed.signal.aborted) return;
      s.destroyed.abort(reason ?? new DOMException("the session was destroyed", "AbortError"));
      shared.release();
    }

    // Runs `work` after the session's earlier requests (a conversation is a sequence); a
    // request aborted while it waits fails at once and never runs.
    #run(userSignal, work) {
      const s = this.#s;
      const signal = combine([userSignal, s.destroyed.signal]);
      if (signal.aborted) return Promise.reject(signal.reason);
      const turn = s.queue.then(() => {
        if (signal.aborted) throw signal.reason;
        return work(signal);
      });
      s.queue = turn.catch(() => {});
      return new Promise((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        turn
          .then(resolve, (e) => reject(toDOMException(e, signal)))
          .finally(() => signal.removeEventListener("abort", onAbort));
      });
    }

    #conversation(more = []) {
      return [...this.#s.initial, ...this.#s.history.flatMap((h) => h.messages), ...more];
    }

    // A constraint the model is told of, unless the caller says not to.
    #withConstraintNote(messages, { responseConstraint, omitResponseConstraintInput }) {
      if (omitResponseConstraintInput === true && responseConstraint == null)
        throw new TypeError("omitResponseConstraintInput needs a responseConstraint");
      if (responseConstraint == null || omitResponseConstraintInput === true) return messages;
      const note =
        responseConstraint instanceof RegExp
          ? `Answer with text that matches the regular expression ${responseConstraint}.`
          : `Answer with JSON that follows this JSON Schema: ${JSON.stringify(responseConstraint)}`;
      const out = [...messages];
      const at = out.findLastIndex((m) => m.role === "user");
      if (at < 0) out.push({ role: "user", content: note });
      else out[at] = { ...out[at], content: `${out[at].content}\n\n${note}` };
      return out;
    }

    // The prompt ids' length once `messages` join the conversation, the oldest entries
    // dropped (with a contextoverflow event) while they and `room` more tokens do not fit.
    async #fit(messages, signal, room) {
      const s = this.#s;
      const window = contextWindow;
      for (let overflowed = false; ; ) {
        const ids = await s.engine.encodeChat(this.#conversation(messages), {
          tools: s.tools.openai,
        });
        if (signal.aborted) throw signal.reason;
        if (ids.length + room <= window) return ids.length;
        if (!s.history.length) {
          const initial = s.initialUsage;
          const requested = ids.length - initial + room;
          throw quotaError(
            `the input needs ${requested} tokens, and the session has room for ${window - initial} (its context window less its initial prompts)`,
            requested,
            window - initial,
          );
        }
        s.history.shift();
        if (!overflowed) {
          overflowed = true;
          this.dispatchEvent(new Event("contextoverflow"));
          this.dispatchEvent(new Event("quotaoverflow"));
        }
      }
    }

    // The answer's text pieces. The conversation keeps the prompt and the answer only once
    // the answer is whole; an abort or error leaves it as it was.
    async *#respond(input, options, signal) {
      const s = this.#s;
      const constraint = responseFormat(options.responseConstraint);
      const asked = this.#withConstraintNote(canonical(input, s.expected, s.usage > 0), options);
      const prefix = asked.at(-1)?.prefix ? asked.at(-1).content : null;
      const turn = prefix == null ? asked : asked.slice(0, -1);
      // One round of tool calls (any number of them, run together), held to the Hermes format
      // and the tools' schemas; the answer after their results is text: small models
      // otherwise call the same tool again and again.
      const toolsOn = s.tools.list.length > 0 && !constraint;
      let called = false;
      for (;;) {
        const prefill =
          prefix == null ? [] : [{ role: "assistant", content: prefix, prefix: true }];
        const promptLength = await this.#fit([...turn, ...prefill], signal, 1);
        const body = {
          messages: this.#conversation([...turn, ...prefill]),
          stream: true,
          stream_options: { include_usage: true },
          truncate: false,
          max_tokens: Math.min(settings.maxTokens, contextWindow - promptLength),
          ...chatSampling(s.sampling.options),
          tools: s.tools.list.length ? s.tools.openai : undefined,
          response_format:
            constraint ?? (!toolsOn ? undefined : called ? TEXT_ANSWER : s.tools.grammar),
        };
        const stream = await s.engine.chat.completions.create(body, { signal });
        let text = "";
        let finish = null;
        let usage = null;
        let found = [];
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          if (chunk.usage) usage = chunk.usage;
          if (!choice) continue;
          if (choice.delta?.content) {
            text += choice.delta.content;
            yield choice.delta.content;
          }
          if (choice.delta?.tool_calls) found = choice.delta.tool_calls;
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (finish === "length" && constraint)
          throw new DOMException(
            `the answer reached the longest allowed (${body.max_tokens} tokens) before it met the responseConstraint`,
            "SyntaxError",
          );
        if (finish === "tool_calls" && toolsOn && !called) {
          called = true;
          const results = await Promise.all(found.map((c) => runTool(s.tools.list, c, signal)));
          if (signal.aborted) throw signal.reason;
          turn.push(
            {
              role: "assistant",
              content: text,
              tool_calls: found.map(({ index, ...c }) => c),
            },
            ...found.map((c, i) => ({
              role: "tool",
              tool_call_id: c.id,
              name: c.function.name,
              content: results[i],
            })),
          );
          continue;
        }
        const reply = { role: "assistant", content: (prefix ?? "") + text };
        s.history.push({ messages: [...turn, reply] });
        s.usage = promptLength + (usage?.completion_tokens ?? 0);
        return;
      }
    }
  }
  Object.defineProperty(LanguageModel, "name", { value: "LanguageModel" });
  return LanguageModel;
}

/** The Prompt API on the default model. */
export const LanguageModel = createLanguageModel();

/**
 * Makes `globalThis.LanguageModel` this implementation (bound to `config`), unless the
 * browser has its own; returns the one in use.
 */
export function install(config) {
  if (typeof globalThis.LanguageModel === "function") return globalThis.LanguageModel;
  const cls = config ? createLanguageModel(config) : LanguageModel;
  Object.defineProperty(globalThis, "LanguageModel", {
    value: cls,
    writable: true,
    configurable: true,
  });
  return cls;
}

/**
 * The one engine a class's sessions share: loaded on the first create(), its progress told
 * to every create() waiting on it, disposed when the last session is destroyed. A load that
 * every waiting create() gave up on is aborted.
 */
function sharedEngine(settings) {
  let loading = null; // { promise, controller, waiting, listeners }
  let engine = null;
  let users = 0;
  const given = settings.engine ?? null;
  if (given) engine = given;
  return {
    async availability() {
      if (engine) return "available";
      if (loading) return "downloading";
      const { model } = settings;
      if (typeof model !== "string" && !(model instanceof URL)) return "available";
      const url = new URL(model, globalThis.location?.href).href;
      try {
        const cached = await listCachedModels();
        if (cached.some((m) => m.url === url)) return "available";
      } catch {
        // No model cache in this browser (OPFS): every session downloads.
      }
      return "downloadable";
    },
    async acquire(signal, onProgress) {
      users++;
      try {
        if (engine) {
          onProgress?.(0);
          onProgress?.(1);
          return engine;
        }
        if (!loading) {
          const controller = new AbortController();
          const listeners = new Set();
          const shares = { download: 0.9, verify: 0.05, load: 0.05 };
          const starts = { download: 0, verify: 0.9, load: 0.95 };
          let last = 0;
          loading = { controller, listeners, waiting: 0 };
          loading.promise = createEngine({
            model: settings.model,
            sha256: settings.sha256,
            backend: settings.backend,
            contextLength: settings.contextLength,
            threads: settings.threads,
            signal: controller.signal,
            onProgress: ({ phase, loaded, total }) => {
              const part = total > 0 ? Math.min(1, loaded / total) : 0;
              // Below 1 until the engine is ready; never backwards.
              last = Math.max(last, Math.min(0.999, starts[phase] + shares[phase] * part));
              for (const l of listeners) l(last);
            },
          }).then(
            (e) => {
              engine = e;
              loading = null;
              return e;
            },
            (e) => {
              loading = null;
              throw e;
            },
          );
        }
        const load = loading;
        load.waiting++;
        if (onProgress) {
          onProgress(0);
          load.listeners.add(onProgress);
        }
        try {
          const ready = await new Promise((resolve, reject) => {
            const onAbort = () => reject(signal.reason);
            signal?.addEventListener("abort", onAbort, { once: true });
            load.promise
              .then(resolve, reject)
              .finally(() => signal?.removeEventListener("abort", onAbort));
          });
          onProgress?.(1);
          return ready;
        } finally {
          load.listeners.delete(onProgress);
          if (--load.waiting === 0 && !engine) load.controller.abort();
        }
      } catch (e) {
        users--;
        throw toDOMException(e, signal);
      }
    },
    release() {
      if (--users > 0 || !engine || engine === given) return;
      engine.dispose();
      engine = null;
    },
  };
}

/** The expected inputs and outputs this model cannot serve (their language tags canonical). */
function unsupported(options, settings) {
  const out = [];
  const check = (list, kinds) => {
    if (list == null) return;
    if (!Array.isArray(list)) throw new TypeError("expectedInputs and expectedOutputs are arrays");
    for (const e of list) {
      if (!TYPES.includes(e?.type))
        throw new TypeError(`an expected type is one of ${TYPES.join(", ")}`);
      // Throws a RangeError for a tag that is not one.
      if (e.languages != null) e.languages = Intl.getCanonicalLocales(e.languages);
      if (!kinds.includes(e.type) || !(e.languages ?? []).every((l) => speaks(settings, l)))
        out.push(e);
    }
  };
  check(options.expectedInputs, INPUTS);
  check(options.expectedOutputs, OUTPUTS);
  return out;
}

// "fr-CA" is French: a language is known by its primary subtag.
const speaks = (settings, tag) =>
  settings.languages.some((l) => l.toLowerCase() === tag.toLowerCase().split("-")[0]);

function expectedTypes(expectedInputs) {
  const types = new Set((expectedInputs ?? []).map((e) => e.type));
  types.add("text");
  return types;
}

function samplingOf(options, settings) {
  const { samplingMode, temperature, topK } = options;
  if (samplingMode != null && (temperature != null || topK != null))
    throw new TypeError("pass samplingMode or temperature and topK, not both");
  if (samplingMode != null && !(samplingMode in SAMPLING_MODES))
    throw new TypeError(
      `samplingMode is one of ${Object.keys(SAMPLING_MODES).join(", ")}, not ${JSON.stringify(samplingMode)}`,
    );
  const mode = samplingMode ?? "balanced";
  const opts = { ...SAMPLING_MODES[mode] };
  if (temperature != null) {
    if (!(temperature >= 0)) throw new RangeError("temperature must be 0 or more");
    opts.temperature = Math.min(temperature, PARAMS.maxTemperature);
  }
  if (topK != null) {
    if (!(topK >= 1)) throw new RangeError("topK must be 1 or more");
    opts.topK = Math.floor(Math.min(topK, PARAMS.maxTopK));
  }
  if (temperature != null && topK == null) opts.topK = PARAMS.defaultTopK;
  return { mode, options: { ...opts, ...settings.sampling } };
}

// The engine's sampling options as the chat completion's body names them.
const chatSampling = (o) => ({
  temperature: o.temperature,
  top_k: o.topK,
  top_p: o.topP,
  min_p: o.minP,
  repeat_penalty: o.repeatPenalty,
  seed: o.seed,
});

function toolsOf(tools) {
  if (tools == null) return { list: [], openai: undefined };
  if (!Array.isArray(tools)) throw new TypeError("tools must be an array");
  const seen = new Set();
  const list = tools.map((t, i) => {
    for (const [k, type] of [
      ["name", "string"],
      ["description", "string"],
      ["inputSchema", "object"],
      ["execute", "function"],
    ])
      if (typeof t?.[k] !== type || t[k] === null)
        throw new TypeError(`tools[${i}].${k} must be a ${type}`);
    if (seen.has(t.name)) throw new TypeError(`two tools are named ${t.name}`);
    seen.add(t.name);
    return t;
  });
  const openai = list.map((t) => ({
    type: "function",
    function: { name: t.name, description: t.description, parameters: t.inputSchema },
  }));
  const grammar = list.length
    ? callGrammar(
        list.map((t) => ({ name: t.name, parameters: t.inputSchema })),
        { orText: true },
      )
    : undefined;
  return { list, openai, grammar };
}

async function runTool(tools, call, signal) {
  const tool = tools.find((t) => t.name === call.function.name);
  if (!tool) return `Error: there is no tool named ${call.function.name}.`;
  let args;
  try {
    args = JSON.parse(call.function.arguments);
  } catch {
    return `Error: the arguments were not JSON: ${call.function.arguments}`;
  }
  if (signal.aborted) throw signal.reason;
  const out = await tool.execute(args);
  return typeof out === "string" ? out : JSON.stringify(out);
}

/** `responseConstraint` as the engine's `responseFormat` (a JSON Schema, or a RegExp). */
function responseFormat(constraint) {
  if (constraint == null) return undefined;
  if (constraint instanceof RegExp) {
    // A constraint holds the whole answer, so ^ and $ change nothing; flags become groups.
    let pattern = constraint.source;
    if (constraint.flags.includes("s")) pattern = `(?s:${pattern})`;
    if (constraint.flags.includes("i")) pattern = `(?i:${pattern})`;
    return { type: "regex", pattern };
  }
  if (typeof constraint !== "object" || Array.isArray(constraint))
    throw new TypeError("responseConstraint must be a JSON Schema object or a RegExp");
  return { type: "json_schema", json_schema: { name: "response", schema: constraint } };
}

/** A prompt in the explainer's longhand (text only): `[{ role, content, prefix }]`. */
function canonical(input, expected, hasAppendedInput) {
  if (typeof input === "string") return [{ role: "user", content: input }];
  if (!Array.isArray(input))
    throw new TypeError("a prompt is a string or an array of { role, content } messages");
  if (input.length === 0) return [{ role: "user", content: "" }];
  let appended = hasAppendedInput;
  return input.map((m, i) => {
    if (!ROLES.includes(m?.role))
      throw new TypeError(`a message's role is one of ${ROLES.join(", ")}`);
    if (m.prefix === true && (m.role !== "assistant" || i !== input.length - 1))
      throw new DOMException(
        "only the last message, an assistant's, may be a prefix",
        "SyntaxError",
      );
    if (m.role === "system" && appended)
      throw new TypeError(
        "a system prompt must be the first message of the session (in initialPrompts, or the first prompt() or append())",
      );
    appended = true;
    const parts =
      typeof m.content === "string"
        ? [{ type: "text", value: m.content }]
        : Array.isArray(m.content)
          ? m.content
          : null;
    if (!parts) throw new TypeError("a message's content is a string or an array of parts");
    let text = "";
    for (const p of parts) {
      if (!TYPES.includes(p?.type))
        throw new TypeError(`a content part's type is one of ${TYPES.join(", ")}`);
      if (p.type !== "text") {
        if (m.role === "assistant" || !expected.has(p.type))
          throw new DOMException(
            `this model reads text only, not ${p.type}; declare what a session reads in expectedInputs`,
            "NotSupportedError",
          );
        throw new DOMException(`this model cannot read ${p.type}`, "NotSupportedError");
      }
      if (typeof p.value !== "string") throw new TypeError("a text part's value is a string");
      text += p.value;
    }
    return m.prefix === true
      ? { role: m.role, content: text, prefix: true }
      : { role: m.role, content: text };
  });
}

function combine(signals) {
  const list = signals.filter(Boolean);
  if (list.length === 1) return list[0];
  if (AbortSignal.any) return AbortSignal.any(list);
  const c = new AbortController();
  for (const s of list) {
    if (s.aborted) c.abort(s.reason);
    else s.addEventListener("abort", () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

/** The spec's QuotaExceededError: a DOMException with `requested` and `quota`. */
function quotaError(sentence, requested, quota) {
  const message = `${sentence}; shorten it, or use a LanguageModel with a larger contextLength`;
  if (typeof globalThis.QuotaExceededError === "function")
    return new globalThis.QuotaExceededError(message, { requested, quota });
  const e = new DOMException(message, "QuotaExceededError");
  Object.defineProperties(e, {
    requested: { value: requested, enumerable: true },
    quota: { value: quota, enumerable: true },
  });
  return e;
}

// What an engine error is in the Prompt API's terms (the OuvertError stays as `cause`).
const NAMES = {
  aborted: "AbortError",
  disposed: "AbortError",
  invalid_argument: "NotSupportedError",
  network: "NetworkError",
  quota: "QuotaExceededError",
};

function toDOMException(e, signal) {
  if (signal?.aborted) return signal.reason;
  if (!(e instanceof OuvertError)) return e;
  const name =
    e.code === "context_overflow"
      ? "QuotaExceededError"
      : (NAMES[e.code] ?? (e.code === "integrity" ? "NetworkError" : "OperationError"));
  const out = new DOMException(e.message, name);
  Object.defineProperty(out, "cause", { value: e });
  return out;
}
