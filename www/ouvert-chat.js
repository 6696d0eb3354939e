// <ouvert-chat>: a chat box that runs a language model in the page, in one script tag.
//   <script type="module" src="…/ouvert-chat.js"></script>
//   <ouvert-chat model="…/model.gguf" lang="fr"></ouvert-chat>
// Attributes: model, sha256, backend, max-tokens, temperature, system, placeholder, lang.
// Events (bubbling, composed): ouvert-progress, ouvert-token, ouvert-done, ouvert-error.
// Styling: CSS custom properties (--ouvert-*) and ::part(). Model output is only ever
// set as text (textContent), never parsed as HTML.
import { createEngine } from "./ouvert.js";

const STRINGS = {
  en: {
    conversation: "Conversation",
    input: "Your message",
    placeholder: "Ask something…",
    send: "Send",
    stop: "Stop",
    download: "Downloading the model",
    verify: "Checking the model",
    load: "Starting the model",
    ready: "Ready",
    card: "About the model",
    name: "Model",
    size: "Size",
    license: "Licence",
    hash: "SHA-256",
    backend: "Runs on",
    params: "Parameters",
    you: "You",
    model: "Model",
    stopped: "(stopped)",
    tokps: "tokens/s",
    cpu: "this device's processor (wasm)",
    gpu: "this device's GPU (WebGPU)",
    offline: "Runs on your device: nothing you type leaves it.",
    errors: {
      network: "The model could not be downloaded. Check its address and your connection.",
      integrity:
        "The downloaded model is not the expected file (its SHA-256 differs), so it was not used.",
      quota: "There is not enough storage space on this device for the model.",
      webgpu_unavailable: 'This browser offers no WebGPU; use backend="auto" or "wasm".',
      context_overflow:
        "The conversation is too long for the model's context. Reload to start over.",
      model_too_large: "This model is too large for this device.",
      unsupported_architecture: "This model's architecture is not supported.",
      unsupported_quantization: "This model's quantization type is not supported.",
      file: "This file is not a model Ouvert can read.",
      other: "Something went wrong.",
    },
  },
  fr: {
    conversation: "Conversation",
    input: "Votre message",
    placeholder: "Posez une question…",
    send: "Envoyer",
    stop: "Arrêter",
    download: "Téléchargement du modèle",
    verify: "Vérification du modèle",
    load: "Démarrage du modèle",
    ready: "Prêt",
    card: "À propos du modèle",
    name: "Modèle",
    size: "Taille",
    license: "Licence",
    hash: "SHA-256",
    backend: "Calcul",
    params: "Paramètres",
    you: "Vous",
    model: "Modèle",
    stopped: "(arrêté)",
    tokps: "jetons/s",
    cpu: "le processeur de cet appareil (wasm)",
    gpu: "la carte graphique de cet appareil (WebGPU)",
    offline: "Fonctionne sur votre appareil : rien de ce que vous écrivez n’en sort.",
    errors: {
      network: "Le modèle n’a pas pu être téléchargé. Vérifiez son adresse et votre connexion.",
      integrity:
        "Le modèle téléchargé n’est pas le fichier attendu (son SHA-256 diffère) ; il n’a pas été utilisé.",
      quota: "Il n’y a pas assez d’espace de stockage sur cet appareil pour le modèle.",
      webgpu_unavailable: 'Ce navigateur n’offre pas WebGPU ; utilisez backend="auto" ou "wasm".',
      context_overflow:
        "La conversation est trop longue pour le contexte du modèle. Rechargez pour recommencer.",
      model_too_large: "Ce modèle est trop gros pour cet appareil.",
      unsupported_architecture: "L’architecture de ce modèle n’est pas prise en charge.",
      unsupported_quantization: "Le type de quantification de ce modèle n’est pas pris en charge.",
      file: "Ce fichier n’est pas un modèle qu’Ouvert sait lire.",
      other: "Une erreur est survenue.",
    },
  },
};
const FILE_ERRORS = [
  "bad_magic",
  "unsupported_version",
  "truncated_file",
  "invalid_metadata",
  "invalid_tensor",
  "missing_tensor",
  "unsupported_tokenizer",
];

// Widgets that name the same model (and sha256, backend) share one engine.
const shared = new Map(); // key → { engine: Promise<Engine>, users: Set<element>, listeners: Set<fn> }

function acquire(el, model, sha256, backend, onProgress) {
  const key = JSON.stringify([new URL(model, location.href).href, sha256 ?? null, backend]);
  let entry = shared.get(key);
  if (!entry) {
    entry = { users: new Set(), listeners: new Set() };
    entry.engine = createEngine({
      model,
      sha256: sha256 || undefined,
      backend,
      onProgress: (p) => {
        for (const f of entry.listeners) f(p);
      },
    });
    entry.engine.catch(() => shared.get(key) === entry && shared.delete(key)); // a failed load may be retried
    shared.set(key, entry);
  }
  entry.users.add(el);
  entry.listeners.add(onProgress);
  return {
    engine: entry.engine,
    release() {
      entry.users.delete(el);
      entry.listeners.delete(onProgress);
      if (entry.users.size === 0 && shared.get(key) === entry) {
        shared.delete(key);
        entry.engine.then(
          (e) => e.dispose(),
          () => {},
        );
      }
    },
  };
}

const STYLE = `
:host { display: block; font: var(--ouvert-font, 15px/1.45 system-ui, sans-serif); color: var(--ouvert-fg, #1d1d1f);
  background: var(--ouvert-bg, #fff); border: var(--ouvert-border, 1px solid #d0d0d7); border-radius: var(--ouvert-radius, 10px);
  padding: 0.75em; max-width: var(--ouvert-max-width, 40rem); box-sizing: border-box; }
:host([hidden]) { display: none; }
header { display: flex; justify-content: space-between; gap: 1em; font-size: 0.85em; color: var(--ouvert-muted, #5b5b66); }
[part~=title] { font-weight: 600; color: inherit; }
[part~=progress] { margin: 0.5em 0; font-size: 0.85em; }
progress { width: 100%; accent-color: var(--ouvert-accent, #2553c8); }
[part~=error] { margin: 0.5em 0; padding: 0.5em 0.75em; border-radius: 6px; background: var(--ouvert-error-bg, #fdecec); color: var(--ouvert-error-fg, #8a1111); }
[part~=error] small { display: block; opacity: 0.8; word-break: break-word; }
ol { list-style: none; margin: 0.5em 0; padding: 0; max-height: var(--ouvert-log-height, 24em); overflow-y: auto; }
li { margin: 0.4em 0; padding: 0.5em 0.75em; border-radius: 8px; white-space: pre-wrap; overflow-wrap: anywhere; }
li b { display: block; font-size: 0.75em; font-weight: 600; opacity: 0.7; }
[part~=user] { background: var(--ouvert-user-bg, #eef2fd); }
[part~=assistant] { background: var(--ouvert-assistant-bg, #f4f4f6); }
form { display: flex; gap: 0.5em; align-items: flex-end; }
textarea { flex: 1; font: inherit; padding: 0.45em; border: 1px solid #b9b9c3; border-radius: 6px; resize: vertical; min-height: 2.6em; }
button { font: inherit; padding: 0.45em 0.9em; border-radius: 6px; border: 1px solid var(--ouvert-accent, #2553c8); cursor: pointer;
  background: var(--ouvert-accent, #2553c8); color: var(--ouvert-accent-fg, #fff); }
button[part~=stop] { background: transparent; color: var(--ouvert-accent, #2553c8); }
button:disabled { opacity: 0.5; cursor: default; }
:focus-visible { outline: 2px solid var(--ouvert-accent, #2553c8); outline-offset: 2px; }
details { margin-top: 0.5em; font-size: 0.85em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; margin: 0.4em 0 0; }
dt { color: var(--ouvert-muted, #5b5b66); } dd { margin: 0; overflow-wrap: anywhere; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
[hidden] { display: none !important; }
`;

let uid = 0;

export class OuvertChat extends HTMLElement {
  static observedAttributes = ["model", "sha256", "backend", "lang", "placeholder"];
  #els;
  #lease = null;
  #engine = null;
  #messages = [];
  #abort = null;
  #loadToken = 0;
  #started = false;

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    const id = `ouvert-chat-${++uid}`;
    root.innerHTML = `<style>${STYLE}</style>
      <header part="header"><span part="title"></span><span part="status" role="status"></span></header>
      <div part="progress" hidden><label for="${id}-p"></label><progress id="${id}-p" max="1" value="0"></progress></div>
      <div part="error" role="alert" hidden></div>
      <ol part="log" role="log" aria-live="polite"></ol>
      <form part="form"><label class="sr" for="${id}-i"></label><textarea id="${id}-i" part="input" rows="2"></textarea>
        <button part="send" type="submit" disabled></button><button part="stop" type="button" hidden></button></form>
      <details part="card"><summary></summary><dl></dl></details>
      <p class="sr" part="privacy"></p>`;
    const $ = (sel) => root.querySelector(sel);
    this.#els = {
      title: $("[part~=title]"),
      status: $("[part~=status]"),
      progressBox: $("[part~=progress]"),
      progressLabel: $("[part~=progress] label"),
      progress: $("progress"),
      error: $("[part~=error]"),
      log: $("ol"),
      form: $("form"),
      inputLabel: $("form label"),
      input: $("textarea"),
      send: $("[part~=send]"),
      stop: $("[part~=stop]"),
      summary: $("summary"),
      card: $("dl"),
      privacy: $("[part~=privacy]"),
    };
    this.#els.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    this.#els.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
      if (e.key === "Escape") this.stop();
    });
    this.#els.stop.addEventListener("click", () => this.stop());
  }

  get #t() {
    return (
      STRINGS[(this.getAttribute("lang") || document.documentElement.lang || "en").slice(0, 2)] ??
      STRINGS.en
    );
  }

  /** The engine this widget uses (shared with widgets naming the same model), once loaded. */
  get engine() {
    return this.#engine;
  }

  connectedCallback() {
    this.#started = true;
    this.#render();
    if (!this.#lease) this.#load();
  }

  disconnectedCallback() {
    this.stop();
    // Moving the element in the page disconnects and reconnects it: keep the engine then.
    queueMicrotask(() => {
      if (!this.isConnected) this.#release();
    });
  }

  attributeChangedCallback(name, old, value) {
    // Before the first connection (the element's upgrade), connectedCallback loads.
    if (old === value || !this.#started) return;
    if (["model", "sha256", "backend"].includes(name)) {
      this.#release();
      this.#load();
    }
    this.#render();
  }

  #release() {
    this.#lease?.release();
    this.#lease = null;
    this.#engine = null;
  }

  #render() {
    const t = this.#t,
      e = this.#els;
    e.log.setAttribute("aria-label", t.conversation);
    e.inputLabel.textContent = t.input;
    e.input.placeholder = this.getAttribute("placeholder") ?? t.placeholder;
    e.send.textContent = t.send;
    e.stop.textContent = t.stop;
    e.summary.textContent = t.card;
    e.privacy.textContent = t.offline;
    if (!this.#engine) e.title.textContent = "Ouvert";
  }

  async #load() {
    const model = this.getAttribute("model");
    if (!model) return;
    const token = ++this.#loadToken;
    const e = this.#els;
    e.error.hidden = true;
    e.progressBox.hidden = false;
    e.send.disabled = true;
    const onProgress = (p) => {
      if (token !== this.#loadToken) return;
      const t = this.#t;
      e.progress.value = p.total ? p.loaded / p.total : 0;
      e.progressLabel.textContent = `${t[p.phase]} · ${Math.floor(100 * e.progress.value)} % (${mb(p.loaded)} / ${mb(p.total)})`;
      this.#emit("ouvert-progress", p);
    };
    this.#lease = acquire(
      this,
      model,
      this.getAttribute("sha256"),
      this.getAttribute("backend") || "auto",
      onProgress,
    );
    try {
      const engine = await this.#lease.engine;
      if (token !== this.#loadToken) return;
      this.#engine = engine;
      e.progressBox.hidden = true;
      e.send.disabled = false;
      this.#showCard(engine.info);
      e.status.textContent = `${this.#t.ready} · ${engine.info.backend}`;
    } catch (err) {
      if (token !== this.#loadToken) return;
      this.#lease = null;
      e.progressBox.hidden = true;
      this.#showError(err);
    }
  }

  #showCard(info) {
    const t = this.#t;
    this.#els.title.textContent = info.name ?? "Ouvert";
    const rows = [
      [t.name, `${info.name ?? "?"} (${info.architecture}, ${info.quantization})`],
      [t.params, info.parameters.toLocaleString(this.#t === STRINGS.fr ? "fr" : "en")],
      [t.size, mb(info.bytes)],
      [t.license, info.license ?? "?"],
      [t.hash, info.sha256],
      [t.backend, info.backend === "webgpu" ? t.gpu : t.cpu],
    ];
    this.#els.card.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  }

  #showError(err) {
    const t = this.#t,
      code = err?.code ?? "internal";
    const sentence =
      t.errors[code] ?? (FILE_ERRORS.includes(code) ? t.errors.file : t.errors.other);
    const detail = el("small", `${code}: ${err?.message ?? err}`);
    this.#els.error.replaceChildren(document.createTextNode(sentence), detail);
    this.#els.error.hidden = false;
    this.#emit("ouvert-error", { code, message: err?.message ?? String(err) });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  #append(role, text) {
    const li = el("li", "");
    li.setAttribute("part", `message ${role}`);
    li.append(
      el("b", role === "user" ? this.#t.you : this.#t.model),
      document.createTextNode(text),
    );
    this.#els.log.append(li);
    li.scrollIntoView?.({ block: "nearest" });
    return li.lastChild; // the text node that streaming extends
  }

  /** Sends `text` (default: the input's) and streams the answer. */
  async send(text = this.#els.input.value) {
    const e = this.#els;
    text = text.trim();
    if (!text || !this.#engine || this.#abort) return;
    e.input.value = "";
    e.error.hidden = true;
    this.#append("user", text);
    this.#messages.push({ role: "user", content: text });
    const system = this.getAttribute("system");
    const messages = system
      ? [{ role: "system", content: system }, ...this.#messages]
      : [...this.#messages];
    const out = this.#append("assistant", "");
    this.#abort = new AbortController();
    e.send.disabled = true;
    e.stop.hidden = false;
    e.log.setAttribute("aria-busy", "true");
    const options = {
      signal: this.#abort.signal,
      maxTokens: num(this.getAttribute("max-tokens"), 256),
    };
    const temperature = num(this.getAttribute("temperature"), NaN);
    if (!Number.isNaN(temperature)) options.temperature = temperature;
    let answer = "";
    try {
      const run = this.#engine.generate({ messages }, options);
      for await (const piece of run) {
        answer += piece.text;
        out.data = answer;
        this.#emit("ouvert-token", { token: piece.token, text: piece.text });
      }
      const result = await run.result;
      e.status.textContent = `${this.#engine.info.backend} · ${result.stats.decodeTokensPerSecond.toFixed(1)} ${this.#t.tokps}`;
      this.#emit("ouvert-done", result);
    } catch (err) {
      if (err?.code === "aborted") out.data = `${answer} ${this.#t.stopped}`;
      else this.#showError(err);
    } finally {
      this.#messages.push({ role: "assistant", content: answer });
      this.#abort = null;
      e.send.disabled = !this.#engine;
      e.stop.hidden = true;
      e.log.setAttribute("aria-busy", "false");
      if (this.shadowRoot.activeElement === e.stop || !this.shadowRoot.activeElement)
        e.input.focus();
    }
  }

  /** Stops the answer being generated, if any. */
  stop() {
    this.#abort?.abort();
  }

  /** Forgets the conversation. */
  clear() {
    this.stop();
    this.#messages = [];
    this.#els.log.replaceChildren();
  }
}

function el(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

const mb = (bytes) => (bytes == null ? "?" : `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`);
const num = (s, d) => (s == null || s === "" || Number.isNaN(Number(s)) ? d : Number(s));

if (!customElements.get("ouvert-chat")) customElements.define("ouvert-chat", OuvertChat);
