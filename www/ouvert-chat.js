// <ouvert-chat>: a chat box that runs a language model in the page, in one script tag.
//   <script type="module" src="…/ouvert-chat.js"></script>
//   <ouvert-chat model="…/model.gguf" lang="fr"></ouvert-chat>
// Attributes: model, sha256, backend, load ("click", the default: nothing is downloaded until
// the visitor asks; "visible"; "eager"), context-length, max-tokens, temperature,
// repeat-penalty, system, placeholder, lang.
// Events (bubbling, composed): ouvert-progress, ouvert-token, ouvert-done, ouvert-trim,
// ouvert-error. Styling: CSS custom properties (--ouvert-*) and ::part(). Model output is
// only ever set as text (text nodes, textContent), never parsed as HTML.
import { costSummary, provenanceRows, showMethod, valueNode, watchNetwork } from "./about.js";
import { FILE_ERRORS } from "./errors.js";
import { createEngine, listCachedModels } from "./ouvert.js";

const STRINGS = {
  en: {
    conversation: "Conversation",
    input: "Your message",
    placeholder: "Ask something…",
    send: "Send",
    stop: "Stop",
    start: (size) => (size ? `Load the model (${size})` : "Load the model"),
    startCached: (size) => `Start the model (${size}, already on this device)`,
    startNote: "Downloaded once, then kept on this device. Nothing you type leaves it.",
    download: "Downloading the model",
    verify: "Checking the model",
    load: "Starting the model",
    ready: "Ready",
    runsOn: "runs on",
    card: "About the model",
    name: "Model",
    size: "Size",
    hash: "SHA-256",
    backend: "Runs on",
    params: "Parameters",
    network: (n) =>
      n === 0
        ? "Network: no request from this page since the model loaded"
        : `Network: ${n} request${n > 1 ? "s" : ""} from this page since the model loaded`,
    you: "You",
    model: "Model",
    stopped: "(stopped)",
    cut: "(cut short: the answer reached its length limit)",
    trimmed: (n) =>
      `${n} earlier message${n > 1 ? "s were" : " was"} set aside: the conversation outgrew what the model can read at once.`,
    newChat: "New conversation",
    regenerate: "Regenerate",
    edit: "Edit",
    copy: "Copy",
    copied: "Copied",
    retry: "Try again",
    tokps: "tokens/s",
    cpu: "this device's processor",
    gpu: "this device's graphics card",
    noModel: "No model: set this element's model attribute to a GGUF file's address.",
    noChat: "This model cannot hold a conversation (it has no chat template).",
    baseModel:
      "This is a base model: it continues text and was not trained to converse, so its answers may wander.",
    offline: "Runs on your device: nothing you type leaves it.",
    errors: {
      network: "The model could not be downloaded. Check its address and your connection.",
      integrity:
        "The downloaded model is not the expected file (its SHA-256 differs), so it was not used.",
      quota: "There is not enough storage space on this device for the model.",
      webgpu_unavailable: 'This browser offers no WebGPU; use backend="auto" or "wasm".',
      context_overflow: "The message is too long for the model's context. Shorten it.",
      model_too_large: "This model is too large for this device.",
      unsupported_architecture: "This model's architecture is not supported.",
      unsupported_quantization: "This model's quantization type is not supported.",
      csp_blocked: "This page's security policy blocks the model. The details say what to allow.",
      worker_failed: "The model's background task could not start.",
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
    start: (size) => (size ? `Charger le modèle (${size})` : "Charger le modèle"),
    startCached: (size) => `Démarrer le modèle (${size}, déjà sur cet appareil)`,
    startNote:
      "Téléchargé une fois, puis gardé sur cet appareil. Rien de ce que vous écrivez n’en sort.",
    download: "Téléchargement du modèle",
    verify: "Vérification du modèle",
    load: "Démarrage du modèle",
    ready: "Prêt",
    runsOn: "calcul sur",
    card: "À propos du modèle",
    name: "Modèle",
    size: "Taille",
    hash: "SHA-256",
    backend: "Calcul",
    params: "Paramètres",
    network: (n) =>
      n === 0
        ? "Réseau : aucune requête de cette page depuis le chargement du modèle"
        : `Réseau : ${n}\u00a0requête${n > 1 ? "s" : ""} de cette page depuis le chargement du modèle`,
    you: "Vous",
    model: "Modèle",
    stopped: "(arrêté)",
    cut: "(réponse coupée : elle a atteint sa longueur maximale)",
    trimmed: (n) =>
      `${n} message${n > 1 ? "s plus anciens ont été mis" : " plus ancien a été mis"} de côté : la conversation dépasse ce que le modèle peut lire d’un coup.`,
    newChat: "Nouvelle conversation",
    regenerate: "Régénérer",
    edit: "Modifier",
    copy: "Copier",
    copied: "Copié",
    retry: "Réessayer",
    tokps: "jetons/s",
    cpu: "le processeur de cet appareil",
    gpu: "la carte graphique de cet appareil",
    noModel: "Aucun modèle : donnez à l’attribut model de cet élément l’adresse d’un fichier GGUF.",
    noChat: "Ce modèle ne sait pas converser (il n’a pas de modèle de dialogue).",
    baseModel:
      "C’est un modèle de base : il prolonge un texte et n’a pas appris à converser ; ses réponses peuvent s’égarer.",
    offline: "Fonctionne sur votre appareil : rien de ce que vous écrivez n’en sort.",
    errors: {
      network: "Le modèle n’a pas pu être téléchargé. Vérifiez son adresse et votre connexion.",
      integrity:
        "Le modèle téléchargé n’est pas le fichier attendu (son SHA-256 diffère) ; il n’a pas été utilisé.",
      quota: "Il n’y a pas assez d’espace de stockage sur cet appareil pour le modèle.",
      webgpu_unavailable: 'Ce navigateur n’offre pas WebGPU ; utilisez backend="auto" ou "wasm".',
      context_overflow: "Le message est trop long pour le contexte du modèle. Raccourcissez-le.",
      model_too_large: "Ce modèle est trop gros pour cet appareil.",
      unsupported_architecture: "L’architecture de ce modèle n’est pas prise en charge.",
      unsupported_quantization: "Le type de quantification de ce modèle n’est pas pris en charge.",
      csp_blocked:
        "La politique de sécurité de cette page bloque le modèle. Le détail dit quoi autoriser.",
      worker_failed: "La tâche de fond du modèle n’a pas pu démarrer.",
      file: "Ce fichier n’est pas un modèle qu’Ouvert sait lire.",
      other: "Une erreur est survenue.",
    },
  },
};
// A base model in a chat box repeats itself without a penalty (Gemma 3 270M base answers a
// recipe question with one Russian sentence over and over); llama.cpp's classic value.
const BASE_REPEAT_PENALTY = 1.3;

// Widgets that name the same model (and sha256, backend, context) share one engine.
const shared = new Map(); // key → { engine: Promise<Engine>, users: Set<element>, listeners: Set<fn> }

function acquire(el, options, onProgress) {
  const key = JSON.stringify([
    new URL(options.model, location.href).href,
    options.sha256 ?? null,
    options.backend,
    options.contextLength ?? null,
  ]);
  let entry = shared.get(key);
  if (!entry) {
    entry = { users: new Set(), listeners: new Set() };
    entry.engine = createEngine({
      ...options,
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
header { display: flex; justify-content: space-between; align-items: baseline; gap: 1em; font-size: 0.85em; color: var(--ouvert-muted, #5b5b66); }
header > div { display: flex; gap: 0.75em; align-items: baseline; }
[part~=title] { font-weight: 600; color: inherit; }
[part~=notice] { margin: 0.5em 0; padding: 0.5em 0.75em; border-radius: 6px; background: var(--ouvert-notice-bg, #fff7e0); color: var(--ouvert-notice-fg, #5c4300); font-size: 0.9em; }
[part~=start] { margin: 0.75em 0; text-align: center; }
[part~=start] p { margin: 0.4em 0 0; font-size: 0.85em; color: var(--ouvert-muted, #5b5b66); }
[part~=progress] { margin: 0.5em 0; font-size: 0.85em; }
progress { width: 100%; accent-color: var(--ouvert-accent, #2553c8); }
[part~=error] { margin: 0.5em 0; padding: 0.5em 0.75em; border-radius: 6px; background: var(--ouvert-error-bg, #fdecec); color: var(--ouvert-error-fg, #8a1111); }
[part~=error] small { display: block; margin-top: 0.25em; opacity: 0.8; word-break: break-word; }
[part~=error] button { margin-top: 0.4em; }
ol { list-style: none; margin: 0.5em 0; padding: 0; max-height: var(--ouvert-log-height, 24em); overflow-y: auto; }
li { margin: 0.4em 0; padding: 0.5em 0.75em; border-radius: 8px; overflow-wrap: anywhere; }
li > b { display: block; font-size: 0.75em; font-weight: 600; opacity: 0.7; }
li > div { white-space: pre-wrap; }
[part~=user] { background: var(--ouvert-user-bg, #eef2fd); }
[part~=assistant] { background: var(--ouvert-assistant-bg, #f4f4f6); }
li[part~=trim] { background: none; padding: 0.25em 0.75em; font-size: 0.8em; color: var(--ouvert-muted, #5b5b66); text-align: center; }
pre { margin: 0.4em 0; padding: 0.5em 0.65em; border-radius: 6px; background: var(--ouvert-code-bg, #e6e6ec); overflow-x: auto;
  white-space: pre; font: var(--ouvert-code-font, 0.9em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace); }
small[part~=cut], small[part~=cost] { display: block; margin-top: 0.25em; opacity: 0.75; }
[part~=network] { margin: 0.4em 0 0; font-size: 0.8em; color: var(--ouvert-muted, #5b5b66); }
[part~=method] p { margin: 0.4em 0; }
[part~=actions] { display: flex; gap: 0.4em; margin-top: 0.35em; }
[part~=actions] button, header button { white-space: nowrap; font-size: 0.8em; padding: 0.15em 0.55em; background: transparent; color: var(--ouvert-accent, #2553c8); }
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
  static observedAttributes = [
    "model",
    "sha256",
    "backend",
    "context-length",
    "lang",
    "placeholder",
    "load",
  ];
  #els;
  #lease = null;
  #engine = null;
  /** The conversation: `{ role, content, li }`, each with its bubble in the log. */
  #messages = [];
  #abort = null;
  #loadToken = 0;
  #started = false;
  #visibility = null;
  /** What the last failure interrupted, for "try again": "load" or "answer". */
  #failed = null;
  /** Requests made since the model loaded (the network meter), and what stops counting. */
  #requests = 0;
  #unwatch = null;

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    const id = `ouvert-chat-${++uid}`;
    root.innerHTML = `<style>${STYLE}</style>
      <header part="header"><span part="title"></span><div><span part="status" role="status"></span>
        <button part="new" type="button" hidden></button></div></header>
      <p part="notice" hidden></p>
      <div part="start" hidden><button part="start-button" type="button"></button><p></p></div>
      <div part="progress" hidden><label for="${id}-p"></label><progress id="${id}-p" max="1" value="0"></progress></div>
      <div part="error" role="alert" hidden><span></span><small></small><button part="retry" type="button"></button></div>
      <ol part="log" role="log" aria-live="polite"></ol>
      <form part="form"><label class="sr" for="${id}-i"></label><textarea id="${id}-i" part="input" rows="2"></textarea>
        <button part="send" type="submit" disabled></button><button part="stop" type="button" hidden></button></form>
      <details part="card" hidden><summary></summary><dl></dl></details>
      <details part="method" hidden><summary></summary><div></div></details>
      <p part="network" role="status" hidden></p>
      <p class="sr" part="privacy"></p>`;
    const $ = (sel) => root.querySelector(sel);
    this.#els = {
      title: $("[part~=title]"),
      status: $("[part~=status]"),
      newChat: $("[part~=new]"),
      notice: $("[part~=notice]"),
      startBox: $("[part~=start]"),
      start: $("[part~=start-button]"),
      startNote: $("[part~=start] p"),
      progressBox: $("[part~=progress]"),
      progressLabel: $("[part~=progress] label"),
      progress: $("progress"),
      error: $("[part~=error]"),
      errorText: $("[part~=error] span"),
      errorDetail: $("[part~=error] small"),
      retry: $("[part~=retry]"),
      log: $("ol"),
      form: $("form"),
      inputLabel: $("form label"),
      input: $("textarea"),
      send: $("[part~=send]"),
      stop: $("[part~=stop]"),
      cardBox: $("[part~=card]"),
      summary: $("[part~=card] summary"),
      card: $("dl"),
      method: $("[part~=method]"),
      network: $("[part~=network]"),
      privacy: $("[part~=privacy]"),
    };
    const e = this.#els;
    e.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    e.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.send();
      }
      if (ev.key === "Escape") this.stop();
    });
    e.stop.addEventListener("click", () => this.stop());
    e.start.addEventListener("click", () => this.load());
    e.newChat.addEventListener("click", () => this.clear());
    e.retry.addEventListener("click", () => this.#retry());
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
    if (!this.#lease) this.#prepare();
  }

  disconnectedCallback() {
    this.stop();
    // Moving the element in the page disconnects and reconnects it: keep the engine then.
    queueMicrotask(() => {
      if (!this.isConnected) {
        this.#release();
        this.#visibility?.disconnect();
      }
    });
  }

  attributeChangedCallback(name, old, value) {
    // Before the first connection (the element's upgrade), connectedCallback prepares.
    if (old === value || !this.#started) return;
    if (["model", "sha256", "backend", "context-length", "load"].includes(name)) {
      const wasLoaded = this.#lease !== null;
      this.#release();
      this.#prepare(wasLoaded);
    }
    this.#render();
  }

  #release() {
    this.#unwatch?.();
    this.#unwatch = null;
    this.#requests = 0;
    this.#els.network.hidden = true;
    this.#els.method.hidden = true;
    this.#loadToken++;
    this.#lease?.release();
    this.#lease = null;
    this.#engine = null;
    this.#els.send.disabled = true;
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
    e.newChat.textContent = t.newChat;
    e.retry.textContent = t.retry;
    e.startNote.textContent = t.startNote;
    e.network.textContent = t.network(this.#requests);
    if (this.#engine) this.#showCard(this.#engine.info);
    else e.title.textContent = "Ouvert";
  }

  /**
   * Before the model loads: a "load the model (253 MB)" button (the default), loading once
   * the element is on screen (`load="visible"`), or at once (`load="eager"`, or `now`).
   */
  async #prepare(now = false) {
    const e = this.#els;
    const model = this.getAttribute("model");
    this.#visibility?.disconnect();
    e.startBox.hidden = true;
    e.error.hidden = true;
    if (!model) {
      this.#notice(this.#t.noModel);
      return;
    }
    this.#notice(null);
    const mode = this.getAttribute("load") ?? "click";
    if (now || mode === "eager") return this.load();
    if (mode === "visible" && "IntersectionObserver" in globalThis) {
      this.#visibility = new IntersectionObserver((entries) => {
        if (entries.some((en) => en.isIntersecting)) {
          this.#visibility.disconnect();
          this.load();
        }
      });
      this.#visibility.observe(this);
      return;
    }
    const token = this.#loadToken;
    e.start.textContent = this.#t.start(null);
    e.startBox.hidden = false;
    // The button says how much it downloads (a HEAD request: no body), or that it needn't.
    const url = new URL(model, location.href).href;
    const cached = (await listCachedModels().catch(() => [])).find((m) => m.url === url);
    const bytes =
      cached?.bytes ??
      (await fetch(url, { method: "HEAD" })
        .then((r) =>
          r.ok && !r.headers.get("Content-Encoding") ? r.headers.get("Content-Length") : null,
        )
        .catch(() => null));
    if (token !== this.#loadToken || e.startBox.hidden) return;
    const size = bytes ? mb(Number(bytes), this.#t) : null;
    e.start.textContent = cached ? this.#t.startCached(size) : this.#t.start(size);
  }

  /** Downloads (or reads from this device's cache) and starts the model. */
  async load() {
    const model = this.getAttribute("model");
    if (!model || this.#lease) return this.#lease?.engine;
    const token = ++this.#loadToken;
    const e = this.#els;
    this.#visibility?.disconnect();
    // The load button goes: keyboard focus moves on to the message box, not to the page.
    if (this.shadowRoot.activeElement === e.start) e.input.focus();
    e.startBox.hidden = true;
    e.error.hidden = true;
    e.progressBox.hidden = false;
    e.send.disabled = true;
    const onProgress = (p) => {
      if (token !== this.#loadToken) return;
      const t = this.#t;
      e.progress.value = p.total ? p.loaded / p.total : 0;
      e.progressLabel.textContent = `${t[p.phase]} · ${Math.floor(100 * e.progress.value)} % (${mb(p.loaded, t)} / ${mb(p.total, t)})`;
      this.#emit("ouvert-progress", p);
    };
    const contextLength = num(this.getAttribute("context-length"), NaN);
    this.#lease = acquire(
      this,
      {
        model,
        sha256: this.getAttribute("sha256") || undefined,
        backend: this.getAttribute("backend") || "auto",
        ...(Number.isInteger(contextLength) && { contextLength }),
      },
      onProgress,
    );
    try {
      const engine = await this.#lease.engine;
      if (token !== this.#loadToken) return;
      this.#engine = engine;
      e.progressBox.hidden = true;
      this.#showCard(engine.info);
      this.#requests = 0;
      this.#unwatch = watchNetwork(engine, (urls) => {
        this.#requests = urls.length;
        e.network.textContent = this.#t.network(urls.length);
      });
      e.network.textContent = this.#t.network(0);
      e.network.hidden = false;
      const chat = engine.info.chatTemplate;
      this.#notice(chat === "file" ? null : chat ? this.#t.baseModel : this.#t.noChat);
      e.send.disabled = !chat;
      e.status.textContent = `${this.#t.ready} · ${this.#t.runsOn} ${this.#where()}`;
      return engine;
    } catch (err) {
      if (token !== this.#loadToken) return;
      this.#lease = null;
      e.progressBox.hidden = true;
      this.#showError(err, "load");
    }
  }

  #where() {
    return this.#engine?.info.backend === "webgpu" ? this.#t.gpu : this.#t.cpu;
  }

  #notice(text) {
    this.#els.notice.textContent = text ?? "";
    this.#els.notice.hidden = !text;
  }

  #showCard(info) {
    const t = this.#t;
    this.#els.title.textContent = info.name ?? "Ouvert";
    const rows = [
      [t.name, `${info.name ?? "?"} (${info.architecture}, ${info.quantization})`],
      ...provenanceRows(info, this.#lang),
      [t.params, info.parameters.toLocaleString(t === STRINGS.fr ? "fr" : "en")],
      [t.size, mb(info.bytes, t)],
      [t.hash, info.sha256],
      [t.backend, `${this.#where()} (${info.backend === "webgpu" ? "WebGPU" : "WebAssembly"})`],
    ];
    this.#els.card.replaceChildren(
      ...rows.flatMap(([k, v]) => {
        const dd = document.createElement("dd");
        dd.append(valueNode(v));
        return [el("dt", k), dd];
      }),
    );
    this.#els.cardBox.hidden = false;
    if (info.energy) showMethod(this.#els.method, info.energy, this.#lang);
  }

  get #lang() {
    return this.#t === STRINGS.fr ? "fr" : "en";
  }

  #showError(err, during) {
    const t = this.#t,
      code = typeof err?.code === "string" ? err.code : "internal";
    const sentence = t.errors[code] ?? (FILE_ERRORS.has(code) ? t.errors.file : t.errors.other);
    this.#els.errorText.textContent = sentence;
    this.#els.errorDetail.textContent = `${code}: ${err?.message ?? err}`;
    this.#els.error.hidden = false;
    this.#failed = during;
    this.#emit("ouvert-error", { code, message: err?.message ?? String(err) });
  }

  #retry() {
    this.#els.error.hidden = true;
    if (this.#failed === "load") this.load();
    else if (this.#failed === "answer") this.regenerate();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** Whether the log shows its end, so that streaming text should keep it in view. */
  #atEnd() {
    const log = this.#els.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 8;
  }

  #follow(wasAtEnd) {
    if (wasAtEnd) this.#els.log.scrollTop = this.#els.log.scrollHeight;
  }

  #bubble(role, text) {
    const li = el("li", "");
    li.setAttribute("part", `message ${role}`);
    const body = document.createElement("div");
    body.setAttribute("part", "content");
    li.append(el("b", role === "user" ? this.#t.you : this.#t.model), body);
    renderText(body, text);
    const atEnd = this.#atEnd();
    this.#els.log.append(li);
    this.#follow(atEnd);
    return li;
  }

  /** Action buttons on the last message of each side: edit, copy, regenerate. */
  #updateActions() {
    for (const bar of this.#els.log.querySelectorAll("[part~=actions]")) bar.remove();
    if (this.#abort) return;
    const t = this.#t;
    const lastUser = this.#messages.findLast((m) => m.role === "user");
    const last = this.#messages.at(-1);
    const bar = (m, buttons) => {
      const div = document.createElement("div");
      div.setAttribute("part", "actions");
      for (const [label, part, action] of buttons) {
        const b = el("button", label);
        b.type = "button";
        b.setAttribute("part", part);
        b.addEventListener("click", action);
        div.append(b);
      }
      m.li.append(div);
    };
    if (lastUser) bar(lastUser, [[t.edit, "edit", () => this.edit()]]);
    if (last?.role === "assistant") {
      bar(last, [
        [t.copy, "copy", (ev) => this.#copy(last.content, ev.target)],
        [t.regenerate, "regenerate", () => this.regenerate()],
      ]);
    }
    this.#els.newChat.hidden = this.#messages.length === 0;
  }

  async #copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = this.#t.copied;
      setTimeout(() => {
        button.textContent = this.#t.copy;
      }, 1500);
    } catch {
      // No clipboard (an insecure page, or permission refused): the text stays selectable.
    }
  }

  /** Sends `text` (default: the input's) and streams the answer. */
  async send(text = this.#els.input.value) {
    text = text.trim();
    if (!text || !this.#engine || this.#abort || this.#els.send.disabled) return;
    this.#els.input.value = "";
    this.#messages.push({ role: "user", content: text, li: this.#bubble("user", text) });
    return this.#answer();
  }

  /** Answers the last message again (a new draw, when the temperature is above 0). */
  async regenerate() {
    if (!this.#engine || this.#abort) return;
    if (this.#messages.at(-1)?.role === "assistant") this.#messages.pop().li.remove();
    if (this.#messages.at(-1)?.role !== "user") return;
    return this.#answer();
  }

  /** Takes the last message back into the input (its answer goes), to change and resend. */
  edit() {
    if (this.#abort) return;
    const i = this.#messages.findLastIndex((m) => m.role === "user");
    if (i < 0) return;
    const [user, ...after] = this.#messages.splice(i);
    for (const m of [user, ...after]) m.li.remove();
    this.#els.input.value = user.content;
    this.#els.input.focus();
    this.#updateActions();
  }

  async #answer() {
    const e = this.#els;
    e.error.hidden = true;
    const system = this.getAttribute("system");
    const history = this.#messages.map(({ role, content }) => ({ role, content }));
    const messages = system ? [{ role: "system", content: system }, ...history] : history;
    const reply = { role: "assistant", content: "", li: this.#bubble("assistant", "") };
    const body = reply.li.querySelector("[part~=content]");
    this.#abort = new AbortController();
    this.#updateActions();
    e.send.disabled = true;
    e.stop.hidden = false;
    e.log.setAttribute("aria-busy", "true");
    const options = {
      signal: this.#abort.signal,
      maxTokens: num(this.getAttribute("max-tokens"), 256),
    };
    const temperature = num(this.getAttribute("temperature"), NaN);
    if (!Number.isNaN(temperature)) options.temperature = temperature;
    const base = this.#engine.info.chatTemplate !== "file";
    const penalty = num(this.getAttribute("repeat-penalty"), base ? BASE_REPEAT_PENALTY : NaN);
    if (!Number.isNaN(penalty)) options.repeatPenalty = penalty;
    let answer = "";
    let ok = false;
    let cutShort = false;
    try {
      const run = this.#engine.generate({ messages }, options);
      const { droppedMessages } = await run.prompt;
      if (droppedMessages > 0) this.#trimmed(droppedMessages);
      for await (const piece of run) {
        const previous = answer;
        answer += piece.text;
        const atEnd = this.#atEnd();
        renderText(body, answer, previous);
        this.#follow(atEnd);
        this.#emit("ouvert-token", { token: piece.token, text: piece.text });
      }
      const result = await run.result;
      cutShort = result.finishReason === "length";
      const cost = el("small", costSummary(result.stats, this.#lang));
      cost.setAttribute("part", "cost");
      reply.li.append(cost);
      e.method.hidden = false;
      e.status.textContent = `${result.stats.decodeTokensPerSecond.toLocaleString(this.#t === STRINGS.fr ? "fr" : "en", { maximumFractionDigits: 1 })} ${this.#t.tokps} · ${this.#where()}`;
      this.#emit("ouvert-done", result);
      ok = true;
    } catch (err) {
      if (err?.code === "aborted") {
        answer = `${answer} ${this.#t.stopped}`.trim();
        renderText(body, answer);
        ok = true;
      } else {
        reply.li.remove();
        this.#showError(err, "answer");
      }
    } finally {
      const atEnd = this.#atEnd();
      if (ok) {
        reply.content = answer;
        this.#messages.push(reply);
      }
      if (cutShort) {
        const cut = el("small", this.#t.cut);
        cut.setAttribute("part", "cut");
        reply.li.append(cut);
      }
      this.#abort = null;
      e.send.disabled = !this.#engine;
      e.stop.hidden = true;
      e.log.setAttribute("aria-busy", "false");
      this.#updateActions();
      this.#follow(atEnd);
      if (this.shadowRoot.activeElement === e.stop || !this.shadowRoot.activeElement)
        e.input.focus();
    }
  }

  /** The oldest messages no longer fit the context: they leave the conversation, not the page. */
  #trimmed(n) {
    const gone = this.#messages.splice(0, n);
    const note = el("li", this.#t.trimmed(n));
    note.setAttribute("part", "trim");
    gone.at(-1)?.li.after(note);
    this.#emit("ouvert-trim", { droppedMessages: n });
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
    this.#els.error.hidden = true;
    this.#updateActions();
    this.#els.input.focus();
  }
}

function el(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

/**
 * Shows `text` in `parent` as text nodes, with ``` fenced blocks as preformatted code (the
 * fence's language word dropped; a fence still open while streaming runs to the end).
 * Given the `previous` text of plain prose, only the new words are added (a screen reader
 * then reads those, not the whole answer again).
 */
function renderText(parent, text, previous) {
  const last = parent.lastChild;
  if (
    previous !== undefined &&
    !text.includes("`") &&
    text.startsWith(previous) &&
    last?.nodeType === Node.TEXT_NODE &&
    parent.childNodes.length === 1
  ) {
    last.appendData(text.slice(previous.length));
    return;
  }
  const parts = text.split("```");
  const nodes = parts.map((part, i) => {
    // The line breaks around a fence: the block breaks the line already.
    if (i % 2 === 0) {
      const before = i + 1 < parts.length ? part.replace(/\n+$/, "") : part;
      return document.createTextNode(i > 0 ? before.replace(/^\n/, "") : before);
    }
    const pre = document.createElement("pre");
    pre.setAttribute("part", "code");
    const code = document.createElement("code");
    code.textContent = part.replace(/^[^\n]*\n/, "").replace(/\n$/, "");
    pre.append(code);
    return pre;
  });
  parent.replaceChildren(...nodes);
}

const mb = (bytes, t) => {
  if (bytes == null) return "?";
  const fr = t === STRINGS.fr;
  const n = (bytes / 1e6).toLocaleString(fr ? "fr" : "en", {
    maximumFractionDigits: bytes < 1e7 ? 1 : 0,
  });
  return `${n}\u00a0${fr ? "Mo" : "MB"}`;
};
const num = (s, d) => (s == null || s === "" || Number.isNaN(Number(s)) ? d : Number(s));

if (!customElements.get("ouvert-chat")) customElements.define("ouvert-chat", OuvertChat);
