// Types of Ouvert's JavaScript API (ouvert.js).

/** Error codes: the engine's, plus those of the browser runtime. */
export type ErrorCode =
  | "network"
  | "integrity"
  | "aborted"
  | "quota"
  | "webgpu_unavailable"
  | "webgpu_lost"
  | "webgpu_error"
  | "busy"
  | "disposed"
  | "worker_failed"
  | "csp_blocked"
  | "bad_magic"
  | "unsupported_version"
  | "truncated_file"
  | "invalid_metadata"
  | "invalid_tensor"
  | "missing_tensor"
  | "unsupported_architecture"
  | "unsupported_quantization"
  | "unsupported_tokenizer"
  | "context_overflow"
  | "invalid_argument"
  | "invalid_chat"
  | "model_too_large"
  | "superseded"
  | "internal";

/** Every error Ouvert throws: a real `Error` with a stable `code`. */
export class OuvertError extends Error {
  constructor(code: ErrorCode, message: string, options?: ErrorOptions);
  readonly name: "OuvertError";
  readonly code: ErrorCode;
}

export interface Progress {
  /** download: bytes arriving (from the network, the cache or a file); verify: SHA-256; load: parsing. */
  phase: "download" | "verify" | "load";
  loaded: number;
  total: number;
  source: "network" | "cache" | "file";
}

export interface EngineOptions {
  /** A URL (cached in the browser after the first download), or the file's bytes. */
  model: string | URL | ArrayBuffer | ArrayBufferView | Blob | File;
  /** Hex SHA-256 of the file; a mismatch fails with `integrity` and nothing is cached. */
  sha256?: string;
  /**
   * "auto" (default): WebGPU when the browser has an adapter that passes a check against the
   * CPU kernels, else wasm. "webgpu" fails with `webgpu_unavailable` (before downloading) where
   * there is none; "wasm" never uses the GPU.
   */
  backend?: "auto" | "webgpu" | "wasm";
  /** Positions of KV cache to allocate (default 2048, capped at the model's). */
  contextLength?: number;
  /**
   * Threads for the wasm engine's mat-muls (default: half of
   * `navigator.hardwareConcurrency`, at least 1).
   * More than one needs a cross-origin isolated page (`Cross-Origin-Opener-Policy:
   * same-origin` and `Cross-Origin-Embedder-Policy: require-corp`); elsewhere it is 1.
   */
  threads?: number;
  onProgress?: (p: Progress) => void;
  /** Aborting stops the download and rejects with `aborted`. */
  signal?: AbortSignal;
}

export interface EngineInfo {
  name: string | null;
  architecture: string;
  parameters: number;
  quantization: string;
  sizeLabel: string | null;
  /** From the file's `general.*` metadata; null (or empty) where the file says nothing. */
  author: string | null;
  organization: string | null;
  version: string | null;
  finetune: string | null;
  description: string | null;
  /** The licence's identifier ("apache-2.0", "gemma"). */
  license: string | null;
  licenseName: string | null;
  /** The file's `general.license.link`, else the public text of a licence known by its identifier. */
  licenseUrl: string | null;
  /** The model's page, and what it was converted from. Shown as links, never fetched. */
  url: string | null;
  sourceUrl: string | null;
  baseModels: Provenance[];
  datasets: Provenance[];
  languages: string[];
  tags: string[];
  /** The figures each answer's `stats.cost.joules` is estimated with, for the backend in use. */
  energy: EnergyModel;
  contextLength: number;
  vocabSize: number;
  /**
   * Where the chat template comes from: "file" (an instruct model, trained to converse),
   * "builtin" (the architecture's turns, which a base model was not trained on), or null
   * (plain completion only: `{ messages }` prompts fail with `invalid_chat`).
   */
  chatTemplate: "file" | "builtin" | null;
  /** Hex SHA-256 of the file. */
  sha256: string;
  bytes: number;
  /** Where the model runs now (a lost GPU moves it to "wasm"). */
  backend: "wasm" | "webgpu";
  /** Threads the wasm engine's mat-muls use (1 unless the page is cross-origin isolated). */
  threads: number;
  /**
   * The wasm build's vector instructions: "relaxed" (relaxed SIMD, where the browser has
   * it) or "simd128". Both give the same results.
   */
  simd: "relaxed" | "simd128";
  /** The WebGPU adapter, when on "webgpu". */
  adapter?: string;
  /** On "webgpu": bytes of weights uploaded to the GPU while the file was still arriving. */
  streamedToGpu?: number;
  /** Why the engine is not on WebGPU, when "auto" fell back or the GPU was lost. */
  fallback?: { code: ErrorCode; message: string };
  /** Where the bytes came from this time. */
  source: "network" | "cache" | "file";
  /** Whether the file is now in the browser's model cache. */
  cached: boolean;
  /** Why a downloaded file was not cached ("quota", "unavailable"), or null. */
  cacheSkipped: string | null;
}

export interface GenerateOptions {
  /** Default 256. */
  maxTokens?: number;
  /** 0 is greedy. Default 0.8. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  /** Same seed, same options, same prompt: same text. Default: a fresh random seed. */
  seed?: number;
  /** Generation ends before any of these strings. */
  stop?: string | string[];
  /** Report this many most likely tokens at every step (`piece.top`). */
  topLogprobs?: number;
  /**
   * When the prompt and `maxTokens` do not fit the context. A conversation (`{ messages }`)
   * drops its oldest turns, keeping the system prompt and the last message, unless this is
   * false (then `context_overflow`). Other prompts fail with `context_overflow` unless this
   * is true (then the start of the prompt is dropped).
   */
  truncate?: boolean;
  /** Stop at end-of-sequence and end-of-turn tokens (default true). */
  stopAtEos?: boolean;
  /**
   * Hold the output to a form: at each step only the tokens that keep it valid may be drawn.
   * A format the engine cannot honour fails with `invalid_argument` naming the part, before
   * any token. Output cut by `maxTokens` has `finishReason: "length"`: it may not parse.
   * The first request with a format loads the grammar module (~0.5 MB gzipped) and reads
   * the model's vocabulary once (about a second).
   */
  responseFormat?: ResponseFormat;
  signal?: AbortSignal;
  /** Called as the prompt is read (long prompts are read in chunks). */
  onPrefill?: (p: { done: number; total: number }) => void;
}

/**
 * What the output must be. JSON is written on one line (`{"a": 1, "b": [2, 3]}`).
 * `regex`: Rust regex syntax, matched whole (no look-around or back-references).
 * `grammar`: Lark (llguidance's dialect) or GBNF (llama.cpp's), one of the two.
 */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; schema: object | true }
  | { type: "regex"; pattern: string }
  | { type: "grammar"; lark: string; gbnf?: never }
  | { type: "grammar"; gbnf: string; lark?: never };

export interface TopToken {
  token: number;
  text: string;
  logprob: number;
}

export interface Piece {
  token: number;
  /** New text: whole characters only; may be empty. */
  text: string;
  /** The most likely tokens at this step, when `topLogprobs` asked for them. */
  top: TopToken[];
  /** This token as `top` reports tokens (its own text and log-probability), when `topLogprobs` asked. */
  chosen?: TopToken;
}

export interface Stats {
  promptTokens: number;
  /** Leading prompt tokens already in the KV cache (the conversation so far): not computed again. */
  cachedPromptTokens: number;
  completionTokens: number;
  timeToFirstTokenMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Time spent computing what `responseFormat` allows at each step (part of the above). */
  constraintMs: number;
  /** What the answer's forward passes read and computed, and the energy that comes to. */
  cost: Cost;
}

/**
 * What forward passes read and computed, counted as they run: each weight matrix once per
 * pass, the embedding rows of the tokens fed, the output projection when logits were asked
 * for, the KV cache attention read and wrote. `joules` is `[low, high]`:
 * (weightBytes + cacheBytes) × `EnergyModel.picojoulesPerByte` + multiplyAdds ×
 * `picojoulesPerMultiplyAdd`, for `device`. The computation's own energy: not the screen,
 * the device's idle draw, nor the model's download.
 */
export interface Cost {
  weightBytes: number;
  cacheBytes: number;
  multiplyAdds: number;
  device: "cpu" | "gpu";
  joules: [number, number];
}

/** The published figures an energy estimate uses, as `[low, high]` picojoule ranges. */
export interface EnergyModel {
  device: "cpu" | "gpu";
  picojoulesPerByte: [number, number];
  picojoulesPerMultiplyAdd: [number, number];
  /** Where the figures come from. */
  sources: string[];
  /** For scale: a published estimate of one prompt to a large hosted assistant. */
  hostedPrompt: { wattHours: number; what: string; source: string };
}

export interface TokenPiece {
  text?: string;
  bytes?: number[];
  special: boolean;
}

/** A base model or dataset the file names. */
export interface Provenance {
  name: string;
  organization: string | null;
  version: string | null;
  url: string | null;
}

/** What `score` reads besides each token's own log-probability. */
export interface ScoreOptions {
  /** The `n` likeliest tokens at each position, best first (at most 100). */
  topLogprobs?: number;
  /** For a text longer than the context: how far each window moves on (default half the
   * context); every token is scored once, after at least `context − stride` tokens. */
  stride?: number;
  signal?: AbortSignal;
  /** After each forward pass: tokens scored so far, of all. */
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface TokenLogprob {
  id: number;
  /** The token's text (U+FFFD where it holds part of a character). */
  text: string;
  /** Natural log. */
  logprob: number;
}

export interface ScoredToken {
  id: number;
  text: string;
  /** The log-probability after the tokens before; null for the first token. */
  logprob: number | null;
  /** The likeliest tokens at this position (with `topLogprobs`). */
  top?: TokenLogprob[];
}

export interface Score {
  tokens: ScoredToken[];
  /** exp(mean negative log-probability) over the scored tokens. */
  perplexity: number;
  /** The window each token was read in (the context, or the text when it fits). */
  window: number;
  stride: number;
  stats: { ms: number; tokensPerSecond: number; cost: Cost };
}

export interface Completion {
  text: string;
  /** Generated token ids. */
  tokens: number[];
  /** The prompt's token ids (BOS included). */
  promptTokens: number[];
  finishReason: "stop" | "length";
  stats: Stats;
  /** Oldest messages of a conversation left out because it outgrew the context. */
  droppedMessages: number;
}

export type Prompt =
  | string
  | number[]
  | Uint32Array
  | { ids: number[] | Uint32Array }
  | { messages: ChatMessage[]; tools?: Tool[] };

export interface Generation extends AsyncIterable<Piece> {
  /** The whole completion, once generation ends. */
  result: Promise<Completion>;
  /** The prompt as the model reads it, before the first token. */
  prompt: Promise<{ ids: number[]; droppedMessages: number }>;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | string;
  content: string | { type: "text"; text: string }[] | null;
  /** An assistant's calls (as a chat completion returned them). */
  tool_calls?: ToolCall[];
  /** A `tool` message: the call it answers. */
  tool_call_id?: string;
  name?: string;
  /** On the last message, an assistant's: the start of the answer, which the model carries
   * on (the reply holds only what it adds). */
  prefix?: boolean;
}

/** A function the model may call (OpenAI's definition). */
export interface Tool {
  type: "function";
  function: { name: string; description?: string; parameters?: object };
}

export interface ToolCall {
  id: string;
  type: "function";
  /** `arguments` is JSON text. */
  function: { name: string; arguments: string };
}

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  seed?: number;
  stop?: string | string[];
  /** Report each token's log-probability (`choices[0].logprobs`). */
  logprobs?: boolean;
  /** With `logprobs`: this many most likely tokens at each step too. */
  top_logprobs?: number;
  n?: 1;
  /** Ouvert: false to fail with `context_overflow` instead of dropping the oldest turns. */
  truncate?: boolean;
  /** A last chunk with `usage` (and no choices). */
  stream_options?: { include_usage?: boolean };
  /**
   * Functions the model may call, told to it through its chat template. The answer's calls
   * come as `message.tool_calls` (finish_reason "tool_calls"); send each result back as a
   * `{ role: "tool", tool_call_id, content }` message.
   */
  tools?: Tool[];
  /**
   * "auto" (default): the model chooses; "none": the tools are not offered; "required" or a
   * named function: the answer is one call, its arguments held to the function's `parameters`.
   */
  tool_choice?: "auto" | "none" | "required" | { type: "function"; function: { name: string } };
  /** OpenAI's forms (`strict` or not, the output follows the schema), or Ouvert's `regex` and `grammar`. */
  response_format?:
    | { type: "text" }
    | { type: "json_object" }
    | { type: "json_schema"; json_schema: { name?: string; schema: object; strict?: boolean } }
    | Extract<ResponseFormat, { type: "regex" | "grammar" }>;
  signal?: AbortSignal;
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** The conversation so far, found in the KV cache and not computed again. */
  prompt_tokens_details: { cached_tokens: number };
  /** Not OpenAI's: what the answer read and computed, and its energy estimate. */
  cost: Cost;
}

export interface ChatCompletionTokenLogprob {
  /** The token's own text (lossy where it holds part of a character; `bytes` is then null). */
  token: string;
  logprob: number;
  bytes: number[] | null;
}

export interface ChatCompletionLogprobs {
  content: (ChatCompletionTokenLogprob & { top_logprobs: ChatCompletionTokenLogprob[] })[];
  refusal: null;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: 0;
    message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[] };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: "stop" | "length" | "tool_calls";
  }[];
  usage: ChatCompletionUsage;
  /** Ouvert: oldest messages left out because the conversation outgrew the context. */
  dropped_messages: number;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: 0;
    delta: { role?: "assistant"; content?: string; tool_calls?: (ToolCall & { index: number })[] };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: "stop" | "length" | "tool_calls" | null;
  }[];
  /** On the first chunk: oldest messages left out because the conversation outgrew the context. */
  dropped_messages?: number;
  /** On the last chunk, with `stream_options.include_usage`. */
  usage?: ChatCompletionUsage;
}

export class Engine {
  readonly info: EngineInfo;
  generate(prompt: Prompt, options?: GenerateOptions): Generation;
  /** How the model reads a given text: each token's log-probability after the ones before,
   * the likeliest alternatives, the perplexity (teacher-forced, a few positions per pass). */
  score(prompt: Prompt, options?: ScoreOptions): Promise<Score>;
  complete(
    prompt: Prompt,
    options?: GenerateOptions & { onPiece?: (p: Piece) => void },
  ): Promise<Completion>;
  readonly chat: {
    completions: {
      create(
        body: ChatCompletionRequest & { stream: true },
        options?: { signal?: AbortSignal },
      ): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(
        body: ChatCompletionRequest & { stream?: false },
        options?: { signal?: AbortSignal },
      ): Promise<ChatCompletion>;
    };
  };
  /** Token ids of `text`, BOS first; `special` reads control tokens written in the text. */
  tokenize(text: string, options?: { special?: boolean }): Promise<number[]>;
  detokenize(ids: number[] | Uint32Array): Promise<string>;
  /** Each id's vocabulary entry as the model sees it ("▁the", "<0x0A>"). */
  tokenStrings(ids: number[] | Uint32Array): Promise<string[]>;
  /** How each id reads on screen: its text, a control token's name (`special`), or the bytes
   * of a token holding part of a UTF-8 character (byte-level vocabularies split "é" in two). */
  tokenPieces(ids: number[] | Uint32Array): Promise<TokenPiece[]>;
  /** Prompt ids of a conversation, through the model's chat template. */
  encodeChat(messages: ChatMessage[], options?: { tools?: Tool[] }): Promise<number[]>;
  /** Stops the worker and frees the model's memory. */
  dispose(): Promise<void>;
  /** Addresses the engine's worker requested since the model loaded (the grammar module's wasm, on the first `responseFormat`). */
  readonly requests: string[];
  /** Calls `listener(url)` for each request the engine's worker makes from now on; returns the unsubscribe. */
  onRequest(listener: (url: string) => void): () => void;
}

/**
 * The network meter: calls `onChange(urls)` with every request made from now on by this
 * page (its resource timing, whichever script made them) and by `engine`'s worker. A model
 * answering offline leaves it empty. Returns what stops watching.
 */
export function watchNetwork(engine: Engine | null, onChange: (urls: string[]) => void): () => void;

/** An answer's cost in one line: tokens, seconds, bytes read, the energy range ("fr" or "en"). */
export function costSummary(stats: Stats, lang?: string): string;
/** How `Cost.joules` is computed, for a "how is this computed?" disclosure. */
export function energyMethod(
  energy: EnergyModel,
  lang?: string,
): { summary: string; paragraphs: string[]; sourcesLabel: string; sources: string[] };
/**
 * The model's provenance as `[label, value]` rows for a card (author, base models, licence,
 * source, datasets), as its file states them; a value is text, or `{ href, text }` for an
 * http(s) link to show (never to fetch unasked).
 */
export function provenanceRows(
  info: EngineInfo,
  lang?: string,
): [string, string | { href: string; text: string }][];
/** "253 MB", "6,1 Go". */
export function formatBytes(bytes: number, lang?: string): string;
/** A `[low, high]` joule range, with the same in watt-hours. */
export function formatEnergy(joules: [number, number], lang?: string): string;

export function createEngine(options: EngineOptions): Promise<Engine>;

/** GGUF `general.architecture` values and weight types the engine runs; anything else fails
 * to load with `unsupported_architecture` or `unsupported_quantization`. */
export const SUPPORTED: {
  readonly architectures: readonly ("gemma3" | "gemma2" | "llama" | "qwen2" | "qwen3" | "phi3")[];
  readonly quantizations: readonly string[];
};

export interface CachedModel {
  url: string;
  sha256: string;
  bytes: number;
  storedAt: number;
}
/** Models in the browser's model cache. */
export function listCachedModels(): Promise<CachedModel[]>;
/** Removes a cached model, named by URL or SHA-256; true if there was one. */
export function deleteCachedModel(urlOrSha256: string): Promise<boolean>;
/** The browser's storage estimate, in bytes. */
export function storageEstimate(): Promise<{ usage?: number; quota?: number }>;
