// Ouvert's JavaScript API. The engine runs in a Web Worker (worker.js), so the page never
// blocks; this module turns its messages into promises, async iterators and AbortSignals.
// Types: ouvert.d.ts. Errors: OuvertError, with a stable `code`.
import { cspError, OuvertError } from "./errors.js";
import { chatTools, textBeforeCall, toolCalls } from "./tool-calls.js";

export {
  costSummary,
  energyMethod,
  formatBytes,
  formatEnergy,
  provenanceRows,
  watchNetwork,
} from "./about.js";
export { OuvertError } from "./errors.js";
export { listCachedModels, deleteCachedModel, storageEstimate } from "./store.js";

/** What the engine runs: GGUF `general.architecture` values and weight types. */
export const SUPPORTED = Object.freeze({
  architectures: Object.freeze(["gemma3", "gemma2", "llama", "qwen2", "qwen3", "phi3"]),
  quantizations: Object.freeze([
    "F32",
    "F16",
    "BF16",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
  ]),
});

const BACKENDS = ["auto", "webgpu", "wasm"];
// The engine's generation options (GenerateOptions and SamplerConfig in Rust; tests/options.rs
// holds this list, the typings and the Rust structs to the same names).
const GENERATE_KEYS = [
  "maxTokens",
  "temperature",
  "topK",
  "topP",
  "minP",
  "repeatPenalty",
  "repeatLastN",
  "seed",
  "stop",
  "topLogprobs",
  "truncate",
  "stopAtEos",
  "responseFormat",
];
// Options that stay in the page (the engine never sees them).
const CALLER_KEYS = ["signal", "onPrefill", "onPiece"];
// The engine's scoring options (ScoreOptions in Rust; tests/options.rs holds the three lists).
const SCORE_KEYS = ["topLogprobs", "stride"];
const SCORE_CALLER_KEYS = ["signal", "onProgress"];

/** The worker's form of a prompt: text, ids, or a conversation (and its tools). */
function promptBody(prompt) {
  if (typeof prompt === "string") return { text: prompt };
  if (Array.isArray(prompt) || ArrayBuffer.isView(prompt)) return { ids: Array.from(prompt) };
  if (prompt?.ids) return { ids: Array.from(prompt.ids) };
  if (prompt?.messages)
    return { messages: prompt.messages.map(engineMessage), tools: prompt.tools };
  return null;
}

const badPrompt = () =>
  new OuvertError(
    "invalid_argument",
    "prompt must be a string, an array of token ids, { ids } or { messages }",
  );

const unknownOptions = (keys, known) => {
  const unknown = keys.filter((k) => !known.includes(k));
  return unknown.length
    ? new OuvertError(
        "invalid_argument",
        `unknown option${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; the options are ${known.join(", ")}`,
      )
    : null;
};

// A DOMException's numeric `code` is not one of ours.
const toError = (e) =>
  e instanceof OuvertError
    ? e
    : new OuvertError(typeof e?.code === "string" ? e.code : "internal", e?.message ?? String(e));

/**
 * The engine's worker. A worker's script must come from the page's origin: when this module
 * comes from another one (a CDN), the worker starts from a blob: URL of the page's origin
 * that imports the real script (which the CDN's CORS headers allow). The import is dynamic:
 * under any Content-Security-Policy, Chromium fails a blob: worker's static import from
 * another origin without a word. Messages that arrive before the script has loaded wait for
 * it; a script that fails to load fails the worker.
 */
const CROSS_ORIGIN_WORKER = (url) => `const early = [];
const hold = (e) => early.push(e.data);
self.addEventListener("message", hold);
import(${JSON.stringify(url)}).then(
  () => {
    self.removeEventListener("message", hold);
    for (const data of early) self.dispatchEvent(new MessageEvent("message", { data }));
  },
  (e) => setTimeout(() => { throw e; }),
);`;

// Relaxed SIMD where the browser has it and computes it right: a function that checks one
// i32x4.relaxed_dot_i8x16_i7x16_add_s (the byte dot product of every mat-mul in the relaxed
// builds, worker-relaxed.js and worker-mt-relaxed.js) against its known lanes. A prerelease
// V8 (Node 20's, behind a flag) validates it and gets it wrong; there, as where the module
// does not validate, the plain simd128 builds run. The module: () -> i32 =
// i32x4.all_true(i32x4.eq(i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c), expected)), all
// four vectors constants (signed bytes a, bytes b in 0..128, i32 lanes c and expected).
const RELAXED_SIMD = (() => {
  const probe = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 84,
    1, 82, 0, 253, 12, 128, 255, 5, 127, 3, 249, 100, 156, 0, 1, 254, 64, 206, 50, 128, 127, 253,
    12, 127, 1, 2, 3, 0, 126, 99, 1, 5, 6, 7, 8, 120, 0, 127, 64, 253, 12, 232, 3, 0, 0, 48, 248,
    255, 255, 3, 0, 0, 0, 144, 238, 254, 255, 253, 147, 2, 253, 12, 238, 197, 255, 255, 6, 27, 0, 0,
    251, 1, 0, 0, 96, 183, 254, 255, 253, 55, 253, 163, 1, 11,
  ]);
  try {
    return (
      WebAssembly.validate(probe) &&
      new WebAssembly.Instance(new WebAssembly.Module(probe)).exports.f() === 1
    );
  } catch {
    return false;
  }
})();

function startWorker(threaded) {
  if (new URL(import.meta.url).origin !== globalThis.location?.origin) {
    const file = `./worker${threaded ? "-mt" : ""}${RELAXED_SIMD ? "-relaxed" : ""}.js`;
    const url = new URL(file, import.meta.url);
    const blob = new Blob([CROSS_ORIGIN_WORKER(url.href)], { type: "text/javascript" });
    return new Worker(URL.createObjectURL(blob), { type: "module", name: "ouvert" });
  }
  // Literal `new Worker(new URL(…), { … })` forms, options included: bundlers (Vite) find
  // the workers only so.
  if (threaded)
    return RELAXED_SIMD
      ? new Worker(new URL("./worker-mt-relaxed.js", import.meta.url), {
          type: "module",
          name: "ouvert",
        })
      : new Worker(new URL("./worker-mt.js", import.meta.url), { type: "module", name: "ouvert" });
  return RELAXED_SIMD
    ? new Worker(new URL("./worker-relaxed.js", import.meta.url), {
        type: "module",
        name: "ouvert",
      })
    : new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "ouvert" });
}

/**
 * The engine's wasm, compiled on the page while the first engine's worker starts (each
 * takes tens of milliseconds), once for all the page's engines, and handed to each worker
 * compiled; null where the page cannot compile it (a Content-Security-Policy without
 * 'wasm-unsafe-eval', a server without the wasm MIME type, no network): that worker then
 * compiles it itself, and the next engine tries again. Literal URLs, as for the workers:
 * bundlers find them only so.
 */
const compiledBuilds = new Map();
function compileEngine(threaded) {
  const url = threaded
    ? RELAXED_SIMD
      ? new URL("./wasm-mt-relaxed/ouvert_bg.wasm", import.meta.url)
      : new URL("./wasm-mt/ouvert_bg.wasm", import.meta.url)
    : RELAXED_SIMD
      ? new URL("./wasm-relaxed/ouvert_bg.wasm", import.meta.url)
      : new URL("./wasm/ouvert_bg.wasm", import.meta.url);
  if (!compiledBuilds.has(url.href))
    compiledBuilds.set(
      url.href,
      WebAssembly.compileStreaming(fetch(url)).catch(() => {
        compiledBuilds.delete(url.href);
        return null;
      }),
    );
  return compiledBuilds.get(url.href);
}

const abortError = () => new OuvertError("aborted", "the request was aborted");

/**
 * Downloads (or reads from the cache), verifies and loads a model in a new worker.
 * @param {import("./ouvert").EngineOptions} options
 * @returns {Promise<Engine>}
 */
export async function createEngine(options = {}) {
  const {
    model,
    sha256,
    backend = "auto",
    contextLength = 2048,
    threads,
    onProgress,
    signal,
  } = options;
  if (!BACKENDS.includes(backend))
    throw new OuvertError("invalid_argument", `backend must be one of ${BACKENDS.join(", ")}`);
  if (threads != null && !(Number.isInteger(threads) && threads >= 1))
    throw new OuvertError("invalid_argument", "threads must be a whole number ≥ 1");
  if (sha256 != null && !/^[0-9a-fA-F]{64}$/.test(sha256))
    throw new OuvertError("invalid_argument", "sha256 must be 64 hexadecimal digits");
  const isUrl = typeof model === "string" || model instanceof URL;
  if (
    !(isUrl || model instanceof Blob || model instanceof ArrayBuffer || ArrayBuffer.isView(model))
  ) {
    throw new OuvertError(
      "invalid_argument",
      "model must be a URL, an ArrayBuffer, a Blob or a File",
    );
  }
  if (signal?.aborted) throw abortError();
  const source = isUrl ? new URL(model, globalThis.location?.href).href : model;
  // A cross-origin isolated page (COOP and COEP headers) may share wasm memory with more
  // workers: there the threaded build splits large mat-muls and attention over a pool of them. By
  // default half the logical processors (as llama.cpp and wllama): a core's second
  // hyperthread adds little to SIMD kernels, and the page needs a core. Elsewhere, one.
  const want =
    threads ?? Math.max(1, Math.floor((globalThis.navigator?.hardwareConcurrency ?? 1) / 2));
  const threaded = globalThis.crossOriginIsolated === true && want > 1;
  // What this page's Content-Security-Policy blocks while the worker starts says why it failed.
  let violation = null;
  const onViolation = (e) => {
    violation ??= e;
  };
  globalThis.document?.addEventListener("securitypolicyviolation", onViolation);
  let worker, compiled;
  try {
    worker = startWorker(threaded);
    compiled = compileEngine(threaded);
  } catch (e) {
    globalThis.document?.removeEventListener("securitypolicyviolation", onViolation);
    throw violation || e?.name === "SecurityError"
      ? cspError(violation ?? { effectiveDirective: "worker-src" })
      : toError(e);
  }
  const engine = new Engine(worker);
  try {
    const module = await compiled;
    engine.info = await engine._load(
      { model: source, sha256, contextLength, backend, threads: threaded ? want : 1, module },
      onProgress,
      signal,
    );
    return engine;
  } catch (e) {
    worker.terminate();
    throw e.code === "worker_failed" && violation ? cspError(violation) : e;
  } finally {
    globalThis.document?.removeEventListener("securitypolicyviolation", onViolation);
  }
}

let nextId = 1;

/** A loaded model. Requests run one after another in the worker, in the order made. */
export class Engine {
  /** @type {import("./ouvert").EngineInfo} */
  info = null;
  /** Addresses the engine's worker requested since the model loaded (the grammar module's wasm, say). */
  requests = [];
  #requestListeners = new Set();
  #worker;
  #pending = new Map(); // id → handler(msg)
  #disposed = false;
  #failed = null; // what stopped the worker: later requests fail with it too

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      // The worker moved the model (a lost GPU continues on wasm).
      if (data.type === "info")
        this.info = { ...this.info, adapter: undefined, fallback: undefined, ...data.info };
      else if (data.type === "request") {
        this.requests.push(data.url);
        for (const f of this.#requestListeners) f(data.url);
      } else this.#pending.get(data.id)?.(data);
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.#fail(
        new OuvertError(
          "worker_failed",
          `the engine's worker stopped: ${e.message ?? "it could not start"}`,
        ),
      );
    };
    this.chat = { completions: { create: (body, opts) => this.#chatCompletion(body, opts) } };
  }

  /** Calls `listener(url)` for each request the engine's worker makes from now; returns the unsubscribe. */
  onRequest(listener) {
    this.#requestListeners.add(listener);
    return () => this.#requestListeners.delete(listener);
  }

  #fail(error) {
    this.#failed = error;
    for (const handler of this.#pending.values()) handler({ type: "error", error });
  }

  #request(msg, handler) {
    if (this.#disposed)
      throw new OuvertError("disposed", "this engine was disposed; create a new one");
    const id = nextId++;
    this.#pending.set(id, handler);
    // A worker that failed before this request (while the page compiled its wasm) answers
    // nothing: the request fails at once, as it would have in flight.
    if (this.#failed) queueMicrotask(() => handler({ type: "error", error: this.#failed }));
    else this.#worker.postMessage({ ...msg, id });
    return id;
  }

  #call(method, ...args) {
    return new Promise((resolve, reject) => {
      const id = this.#request({ type: "call", method, args }, (m) => {
        this.#pending.delete(id);
        m.type === "result" ? resolve(m.value) : reject(toError(m.error));
      });
    });
  }

  _load(msg, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#pending.delete(id);
        reject(abortError());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const id = this.#request({ type: "load", ...msg }, (m) => {
        if (m.type === "progress")
          return onProgress?.({
            phase: m.phase,
            loaded: m.loaded,
            total: m.total,
            source: m.source,
          });
        this.#pending.delete(id);
        signal?.removeEventListener("abort", onAbort);
        m.type === "ready" ? resolve(m.info) : reject(toError(m.error));
      });
    });
  }

  /** Token ids of `text`, BOS first. */
  tokenize(text, { special = false } = {}) {
    return this.#call("tokenize", String(text), special);
  }
  /** The text of token ids. */
  detokenize(ids) {
    return this.#call("detokenize", Uint32Array.from(ids));
  }
  /** Each id's vocabulary entry as the model sees it ("▁the", "<0x0A>"). */
  tokenStrings(ids) {
    return this.#call("tokenStrings", Uint32Array.from(ids));
  }
  /**
   * How each id reads on screen: `{ text }`, `{ text, special: true }` for a control token,
   * or `{ bytes }` for a token holding part of a UTF-8 character (byte-level vocabularies
   * split "é" in two).
   */
  tokenPieces(ids) {
    return this.#call("tokenPieces", Uint32Array.from(ids));
  }
  /** Prompt ids of a conversation, through the model's chat template (told of `tools`). */
  encodeChat(messages, { tools } = {}) {
    if (!Array.isArray(messages))
      return Promise.reject(
        new OuvertError("invalid_argument", "messages must be an array of { role, content }"),
      );
    return this.#call("encodeChat", messages.map(engineMessage), tools);
  }

  /**
   * Streams generated pieces. `prompt` is text, `{ ids }` or `{ messages }`.
   * @returns {AsyncIterable<import("./ouvert").Piece> & { result: Promise<import("./ouvert").Completion> }}
   */
  generate(prompt, options = {}) {
    const { signal, onPrefill } = options;
    const unknown = unknownOptions(Object.keys(options), [...GENERATE_KEYS, ...CALLER_KEYS]);
    const opts = { stopAtEos: true };
    for (const k of GENERATE_KEYS) if (options[k] !== undefined) opts[k] = options[k];
    if (typeof opts.stop === "string") opts.stop = [opts.stop];
    // An unseeded request draws a fresh seed, so two requests do not repeat each other.
    if (opts.seed === undefined) opts.seed = crypto.getRandomValues(new Uint32Array(1))[0];
    const body = promptBody(prompt);

    const pieces = []; // not yet taken by the iterator
    let waiting = null; // the iterator's pending next()
    let ended = false,
      error = null,
      promptRead = null; // the worker's "prompt" message: the ids and the messages dropped
    let settle, settlePrompt;
    const result = new Promise((ok, ko) => {
      settle = { ok, ko };
    });
    result.catch(() => {}); // the iterator reports the error; `result` may go unobserved
    // The prompt as the engine will see it: its ids, and the oldest messages a conversation
    // too long for the context lost.
    const promptReady = new Promise((ok, ko) => {
      settlePrompt = { ok, ko };
    });
    promptReady.catch(() => {});

    const wakeUp = () => {
      if (waiting) {
        const w = waiting;
        waiting = null;
        w();
      }
    };
    const finish = (err, out) => {
      if (ended) return;
      ended = true;
      this.#pending.delete(id);
      signal?.removeEventListener("abort", onAbort);
      if (err) {
        error = err;
        settle.ko(err);
        settlePrompt.ko(err);
      } else {
        settle.ok({
          ...out,
          promptTokens: promptRead?.ids ?? out.promptTokens,
          droppedMessages: promptRead?.droppedMessages ?? 0,
        });
      }
      wakeUp();
    };
    // Once aborted, no piece is handed out, even one already on its way: the iterator
    // waits for the worker to stop, then throws `aborted`.
    const onAbort = () => {
      pieces.length = 0;
      if (!ended) this.#worker.postMessage({ type: "abort", id });
    };
    let id = 0;
    if (unknown) {
      ended = true;
      error = unknown;
      settle.ko(error);
      settlePrompt.ko(error);
    } else if (!body) {
      ended = true;
      error = badPrompt();
      settle.ko(error);
      settlePrompt.ko(error);
    } else if (signal?.aborted) {
      ended = true;
      error = abortError();
      settle.ko(error);
      settlePrompt.ko(error);
    } else {
      id = this.#request({ type: "generate", prompt: body, options: opts }, (m) => {
        if (m.type === "prompt") {
          promptRead = { ids: m.ids, droppedMessages: m.droppedMessages };
          settlePrompt.ok(promptRead);
        } else if (m.type === "prefill") onPrefill?.({ done: m.done, total: m.total });
        else if (m.type === "piece") {
          if (signal?.aborted) return;
          pieces.push({
            token: m.token,
            text: m.text,
            top: m.top,
            ...(m.chosen && { chosen: m.chosen }),
          });
          wakeUp();
        } else if (m.type === "done") finish(null, m.output);
        else if (m.type === "error") finish(toError(m.error));
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    }

    return {
      result,
      prompt: promptReady,
      [Symbol.asyncIterator]() {
        return {
          next: async () => {
            for (;;) {
              if (pieces.length) return { value: pieces.shift(), done: false };
              if (error) throw error;
              if (ended) return { value: undefined, done: true };
              await new Promise((r) => {
                waiting = r;
              });
            }
          },
          // Leaving a for-await loop early stops the generation.
          return: async () => {
            onAbort();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  /**
   * How the model reads a given text: each token's log-probability after the ones before
   * (the first has none), the `topLogprobs` likeliest tokens at each position, and the
   * perplexity. `prompt` is text, ids or `{ messages }`; a text longer than the context is
   * read in windows `stride` tokens apart (default half the context).
   * @returns {Promise<import("./ouvert").Score>}
   */
  score(prompt, options = {}) {
    const { signal, onProgress } = options;
    const unknown = unknownOptions(Object.keys(options), [...SCORE_KEYS, ...SCORE_CALLER_KEYS]);
    if (unknown) return Promise.reject(unknown);
    const body = promptBody(prompt);
    if (!body) return Promise.reject(badPrompt());
    if (signal?.aborted) return Promise.reject(abortError());
    const opts = {};
    for (const k of SCORE_KEYS) if (options[k] !== undefined) opts[k] = options[k];
    return new Promise((resolve, reject) => {
      const onAbort = () => this.#worker.postMessage({ type: "abort", id });
      const id = this.#request({ type: "score", prompt: body, options: opts }, (m) => {
        if (m.type === "scoring") return onProgress?.({ done: m.done, total: m.total });
        this.#pending.delete(id);
        signal?.removeEventListener("abort", onAbort);
        m.type === "score" ? resolve(m.score) : reject(toError(m.error));
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Generates to the end and resolves to `{ text, tokens, finishReason, stats, promptTokens }`. */
  async complete(prompt, options = {}) {
    const run = this.generate(prompt, options);
    for await (const piece of run) options.onPiece?.(piece);
    return run.result;
  }

  async #chatCompletion(body = {}, { signal } = {}) {
    const { messages, stream = false, n = 1 } = body;
    if (!Array.isArray(messages) || messages.length === 0)
      throw new OuvertError(
        "invalid_argument",
        "messages must be a non-empty array of { role, content }",
      );
    if (n !== 1) throw new OuvertError("invalid_argument", "only n = 1 is supported");
    const options = {
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? 256,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? 0,
      minP: body.min_p ?? 0,
      repeatPenalty: body.repeat_penalty,
      seed: body.seed ?? undefined,
      stop: body.stop ?? undefined,
      // At least one: the chosen token's log-probability comes with the alternatives.
      topLogprobs: body.logprobs ? Math.max(1, body.top_logprobs ?? 0) : 0,
      // A conversation longer than the context loses its oldest turns unless this is false.
      truncate: body.truncate,
      responseFormat: responseFormat(body.response_format),
      signal: signal ?? body.signal,
    };
    // OpenAI's per-token entries: the token's own text, its bytes, its log-probability.
    const entry = (t) => ({
      token: t.text,
      logprob: t.logprob,
      bytes: t.text.includes("\uFFFD") ? null : [...new TextEncoder().encode(t.text)],
    });
    const logprobs = (pieces) =>
      body.logprobs
        ? {
            content: pieces.map((p) => ({
              ...entry(p.chosen),
              top_logprobs: p.top.slice(0, body.top_logprobs ?? 0).map(entry),
            })),
            refusal: null,
          }
        : null;
    const tools = chatTools(body.tools, body.tool_choice);
    if (tools.required) options.responseFormat = tools.required;
    const run = this.generate({ messages, tools: tools.list }, options);
    const meta = {
      id: `chatcmpl-${crypto.randomUUID()}`,
      created: Math.floor(Date.now() / 1000),
      model: this.info.name,
    };
    const reason = (r) => (r === "stop" ? "stop" : "length");
    const usage = (stats) => ({
      prompt_tokens: stats.promptTokens,
      completion_tokens: stats.completionTokens,
      total_tokens: stats.promptTokens + stats.completionTokens,
      // The conversation so far, found in the KV cache: computed again only when it changed.
      prompt_tokens_details: { cached_tokens: stats.cachedPromptTokens },
      // Not OpenAI's: what the answer read and computed, and its energy estimate.
      cost: stats.cost,
    });
    if (!stream) {
      const pieces = [];
      for await (const p of run) pieces.push(p);
      const r = await run.result;
      const { content, calls } = tools.list ? toolCalls(r.text) : { content: r.text, calls: [] };
      return {
        ...meta,
        object: "chat.completion",
        choices: [
          {
            index: 0,
            message: {
              role: "assistant",
              content,
              ...(calls.length && { tool_calls: calls }),
            },
            logprobs: logprobs(pieces),
            finish_reason: calls.length ? "tool_calls" : reason(r.finishReason),
          },
        ],
        usage: usage(r.stats),
        dropped_messages: r.droppedMessages,
      };
    }
    return (async function* () {
      const chunk = (delta, pieces = [], finish_reason = null) => ({
        ...meta,
        object: "chat.completion.chunk",
        choices: [
          { index: 0, delta, logprobs: pieces.length ? logprobs(pieces) : null, finish_reason },
        ],
      });
      // The first chunk says how many of the oldest messages did not fit the context.
      const { droppedMessages } = await run.prompt;
      yield { ...chunk({ role: "assistant", content: "" }), dropped_messages: droppedMessages };
      // A token whose text is held back (part of a character, or of a possible stop string)
      // reports its log-probability with the next chunk that has text.
      let pending = [];
      // With tools, text from a possible "<tool_call>" on is held: calls come as tool_calls.
      let text = "",
        shown = 0;
      for await (const piece of run) {
        pending.push(piece);
        text += piece.text;
        const show = tools.list ? textBeforeCall(text) : text.length;
        if (show > shown) {
          yield chunk({ content: text.slice(shown, show) }, pending);
          shown = show;
          pending = [];
        }
      }
      const r = await run.result;
      const { calls } = tools.list ? toolCalls(r.text) : { calls: [] };
      if (calls.length) {
        yield chunk({ tool_calls: calls.map((c, index) => ({ index, ...c })) }, pending);
        pending = [];
      } else if (text.length > shown) {
        yield chunk({ content: text.slice(shown) }, pending);
        pending = [];
      }
      yield chunk({}, pending, calls.length ? "tool_calls" : reason(r.finishReason));
      if (body.stream_options?.include_usage) {
        yield { ...meta, object: "chat.completion.chunk", choices: [], usage: usage(r.stats) };
      }
    })();
  }

  /** Stops the worker and frees the model's memory. */
  async dispose() {
    if (this.#disposed) return;
    this.#fail(new OuvertError("disposed", "the engine was disposed"));
    this.#disposed = true;
    this.#worker.terminate();
  }
}

/**
 * OpenAI's `response_format` as the engine's `responseFormat`: `json_object`, `json_schema`
 * (`{ json_schema: { name, schema, strict } }`; the output always follows the schema, strict
 * or not), or `text`; the engine's own forms (`regex`, `grammar`) pass as they are.
 */
function responseFormat(format) {
  if (format == null || format.type === "text") return undefined;
  if (format.type !== "json_schema") return format;
  const schema = format.json_schema?.schema;
  if (schema == null || typeof schema !== "object")
    throw new OuvertError(
      "invalid_argument",
      "response_format json_schema needs { json_schema: { name, schema } } with a JSON Schema object",
    );
  return { type: "json_schema", schema };
}

/** A chat message as the engine reads it: text content, and the tool fields. */
function engineMessage(m) {
  const out = { role: m.role, content: contentText(m.content) };
  if (Array.isArray(m.tool_calls))
    out.tool_calls = m.tool_calls.map((c) => ({
      id: c.id,
      type: "function",
      function: { name: c.function?.name, arguments: parseArguments(c.function?.arguments) },
    }));
  if (m.tool_call_id != null) out.tool_call_id = String(m.tool_call_id);
  if (m.name != null) out.name = String(m.name);
  if (m.prefix === true) out.prefix = true;
  return out;
}

// Templates write a call's arguments as JSON themselves: they take the object.
function parseArguments(args) {
  if (typeof args !== "string") return args ?? {};
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

function contentText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content
      .filter((p) => p?.type === "text")
      .map((p) => p.text)
      .join("");
  return String(content ?? "");
}
