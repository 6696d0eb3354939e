// Types of the <ouvert-chat> element (ouvert-chat.js).
import type { Completion, Engine, Progress } from "./ouvert";

export interface OuvertChatEventMap {
  "ouvert-progress": CustomEvent<Progress>;
  "ouvert-token": CustomEvent<{ token: number; text: string }>;
  "ouvert-done": CustomEvent<Completion>;
  /** The conversation outgrew the context: its oldest messages were set aside. */
  "ouvert-trim": CustomEvent<{ droppedMessages: number }>;
  "ouvert-error": CustomEvent<{ code: string; message: string }>;
}

/**
 * A chat box running a model in the page. Attributes: model, sha256, backend, load ("click"
 * (default) | "visible" | "eager"), context-length, max-tokens, temperature, repeat-penalty,
 * system, placeholder, lang ("fr" | "en"). Parts: header, title, status, new, notice, start,
 * start-button, progress, error, retry, log, message, user, assistant, content, code, cut,
 * trim, actions, edit, copy, regenerate, form, input, send, stop, card (the model's provenance,
 * from its file), cost (under each answer: tokens, time, bytes read, energy range), method
 * (how that energy is estimated), network (requests made since the model loaded).
 */
export class OuvertChat extends HTMLElement {
  /** The engine, shared with other widgets naming the same model, once loaded. */
  readonly engine: Engine | null;
  /** Downloads (or reads from the cache) and starts the model; what the load button does. */
  load(): Promise<Engine | undefined>;
  /** Sends a message (default: the input's text) and streams the answer. */
  send(text?: string): Promise<void>;
  /** Answers the last message again. */
  regenerate(): Promise<void>;
  /** Takes the last message back into the input, its answer removed, to change and resend. */
  edit(): void;
  /** Stops the answer being generated. */
  stop(): void;
  /** Forgets the conversation. */
  clear(): void;
  addEventListener<K extends keyof OuvertChatEventMap>(
    type: K,
    listener: (this: OuvertChat, ev: OuvertChatEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "ouvert-chat": OuvertChat;
  }
  interface HTMLElementEventMap extends OuvertChatEventMap {}
}
