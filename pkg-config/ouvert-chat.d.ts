// Types of the <ouvert-chat> element (ouvert-chat.js).
import type { Completion, Engine, Progress } from "./ouvert";

export interface OuvertChatEventMap {
  "ouvert-progress": CustomEvent<Progress>;
  "ouvert-token": CustomEvent<{ token: number; text: string }>;
  "ouvert-done": CustomEvent<Completion>;
  "ouvert-error": CustomEvent<{ code: string; message: string }>;
}

/**
 * A chat box running a model in the page. Attributes: model, sha256, backend, max-tokens,
 * temperature, system, placeholder, lang ("fr" | "en"). Parts: header, title, status,
 * progress, error, log, message, user, assistant, form, input, send, stop, card.
 */
export class OuvertChat extends HTMLElement {
  /** The engine, shared with other widgets naming the same model, once loaded. */
  readonly engine: Engine | null;
  /** Sends a message (default: the input's text) and streams the answer. */
  send(text?: string): Promise<void>;
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
