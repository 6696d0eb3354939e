// Types of `ouvert/prompt-api` (prompt-api.js): the WICG Prompt API's `LanguageModel`
// (github.com/webmachinelearning/prompt-api, index.bs) on a model that runs in the page.
import type { Engine, EngineOptions, GenerateOptions } from "./ouvert";

export type Availability = "unavailable" | "downloadable" | "downloading" | "available";
export type LanguageModelMessageRole = "system" | "user" | "assistant";
export type LanguageModelMessageType = "text" | "image" | "audio" | "tool-call" | "tool-response";
export type LanguageModelSamplingMode =
  | "most-predictable"
  | "predictable"
  | "balanced"
  | "creative"
  | "most-creative";

export interface LanguageModelMessageContent {
  type: LanguageModelMessageType;
  /** Text only in this implementation: other types are a NotSupportedError. */
  value: string | Blob | BufferSource | ImageBitmapSource | AudioBuffer;
}

export interface LanguageModelMessage {
  role: LanguageModelMessageRole;
  content: string | LanguageModelMessageContent[];
  /** On the last message, an assistant's: the start of the answer, which the model carries on. */
  prefix?: boolean;
}

/** A string is one user message. */
export type LanguageModelPrompt = string | LanguageModelMessage[];

export interface LanguageModelExpected {
  type: LanguageModelMessageType;
  /** BCP 47 tags; a malformed one is a RangeError. */
  languages?: string[];
}

export interface LanguageModelTool {
  name: string;
  description: string;
  /** A JSON Schema for the arguments; the model's call is held to it. */
  inputSchema: object;
  /** Runs a call; its result (a string, or anything JSON.stringify takes) goes back to the model. */
  // biome-ignore lint/suspicious/noExplicitAny: the arguments follow the tool's own inputSchema
  execute(args: any): Promise<unknown> | unknown;
}

export interface LanguageModelCreateCoreOptions {
  samplingMode?: LanguageModelSamplingMode;
  /** The legacy raw parameters (not with samplingMode). */
  temperature?: number;
  topK?: number;
  expectedInputs?: LanguageModelExpected[];
  expectedOutputs?: LanguageModelExpected[];
  tools?: LanguageModelTool[];
}

/** What `monitor` is given: it fires `downloadprogress` (a ProgressEvent, `loaded` 0 to 1). */
export interface CreateMonitor extends EventTarget {
  addEventListener(
    type: "downloadprogress",
    listener: (this: CreateMonitor, ev: ProgressEvent) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export interface LanguageModelCreateOptions extends LanguageModelCreateCoreOptions {
  signal?: AbortSignal;
  monitor?: (monitor: CreateMonitor) => void;
  initialPrompts?: LanguageModelMessage[];
}

export interface LanguageModelPromptOptions {
  /** A JSON Schema (the answer is JSON that follows it) or a RegExp (the answer matches it). */
  responseConstraint?: object | RegExp;
  /** The model is not told of the constraint (by default it is, at the end of the prompt). */
  omitResponseConstraintInput?: boolean;
  signal?: AbortSignal;
}

export interface LanguageModelParams {
  readonly defaultTopK: number;
  readonly maxTopK: number;
  readonly defaultTemperature: number;
  readonly maxTemperature: number;
}

/**
 * A session: one conversation with the model. Errors are the spec's: DOMExceptions named
 * AbortError, NotSupportedError, QuotaExceededError (with `requested` and `quota`),
 * SyntaxError (an answer cut before it met its constraint), NetworkError, OperationError,
 * and TypeError / RangeError for malformed arguments; an engine error stays as `cause`.
 */
export declare class LanguageModel extends EventTarget {
  private constructor();
  static create(options?: LanguageModelCreateOptions): Promise<LanguageModel>;
  static availability(options?: LanguageModelCreateCoreOptions): Promise<Availability>;
  static params(): Promise<LanguageModelParams | null>;

  prompt(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): Promise<string>;
  /** Each chunk is new text (not the answer so far). */
  promptStreaming(
    input: LanguageModelPrompt,
    options?: LanguageModelPromptOptions,
  ): ReadableStream<string> & AsyncIterable<string>;
  append(input: LanguageModelPrompt, options?: { signal?: AbortSignal }): Promise<void>;
  measureContextUsage(
    input: LanguageModelPrompt,
    options?: LanguageModelPromptOptions,
  ): Promise<number>;
  /** Tokens the conversation holds, chat template markers included. */
  readonly contextUsage: number;
  readonly contextWindow: number;
  oncontextoverflow: ((this: LanguageModel, ev: Event) => unknown) | null;
  readonly samplingMode: LanguageModelSamplingMode;
  readonly topK: number | undefined;
  readonly temperature: number;
  /** A new session with this one's conversation so far, tools and sampling. */
  clone(options?: { signal?: AbortSignal }): Promise<LanguageModel>;
  /** Ends the session (its requests fail with an AbortError); the model leaves memory with
   * the last session. */
  destroy(): void;

  /** @deprecated contextUsage */
  readonly inputUsage: number;
  /** @deprecated contextWindow */
  readonly inputQuota: number;
  /** @deprecated measureContextUsage */
  measureInputUsage(
    input: LanguageModelPrompt,
    options?: LanguageModelPromptOptions,
  ): Promise<number>;
  /** @deprecated oncontextoverflow */
  onquotaoverflow: ((this: LanguageModel, ev: Event) => unknown) | null;
}

export type LanguageModelClass = typeof LanguageModel;

/** Which model a LanguageModel class runs, and how. */
export interface PromptApiConfig {
  /** The GGUF's URL (relative to the page) or bytes; default DEFAULT_MODEL.model. */
  model?: string | URL | Blob | ArrayBuffer | ArrayBufferView;
  /** Checked after the download; default DEFAULT_MODEL.sha256 (set null with another model). */
  sha256?: string | null;
  backend?: EngineOptions["backend"];
  /** The context window, in tokens (default 4096). */
  contextLength?: number;
  threads?: number;
  /** Language subtags `expectedInputs`/`expectedOutputs` may name (default DEFAULT_LANGUAGES). */
  languages?: readonly string[];
  /** Engine options applied over every session's sampling, e.g. `{ temperature: 0 }`. */
  sampling?: Pick<
    GenerateOptions,
    "temperature" | "topK" | "topP" | "minP" | "repeatPenalty" | "seed"
  >;
  /** The longest answer, in tokens (default 1024). */
  maxTokens?: number;
  /** An engine the page loaded: sessions use it (its context length is the window) and
   * never dispose it. */
  engine?: Engine;
}

/** The default model: Qwen2.5 Coder 0.5B Instruct (Q4_K_M) next to the page. */
export const DEFAULT_MODEL: Readonly<{ model: string; sha256: string }>;
export const DEFAULT_LANGUAGES: readonly string[];
/** The engine options each samplingMode stands for. */
export const SAMPLING_MODES: Readonly<Record<LanguageModelSamplingMode, Readonly<GenerateOptions>>>;

/** A LanguageModel class bound to `config` (nothing is installed). */
export function createLanguageModel(config?: PromptApiConfig): LanguageModelClass;
/** globalThis.LanguageModel, made this implementation unless the browser has its own; the
 * class in use. */
export function install(config?: PromptApiConfig): LanguageModelClass;
