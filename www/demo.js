// The workshop site: a playground that shows what a language model does — tokens, the
// next-token probabilities, temperature, top-k, top-p — on a model running in the page.
// It works offline after the first visit (sw.js caches the site, the model stays in OPFS).
import { costSummary, energyMethod, provenanceRows, valueNode, watchNetwork } from "./about.js";
import {
  createEngine,
  listCachedModels,
  deleteCachedModel,
  storageEstimate,
  SUPPORTED,
} from "./ouvert.js";

// The models `./build.sh demo` puts next to the site: a base model (the default: it
// continues text) and an instruct model (trained on conversations).
const BUNDLED = [
  {
    name: "Gemma 3 270M",
    kind: "base",
    url: "models/gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  },
  {
    name: "Qwen2.5 Coder 0.5B Instruct",
    kind: "instruct",
    url: "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
  },
];
const DEFAULT_MODEL = BUNDLED[0];
const TOP = 10; // alternatives shown per step

const STRINGS = {
  fr: {
    title: "Comment un modèle de langue écrit",
    intro:
      "Un modèle de langue découpe le texte en jetons, puis devine, jeton après jeton, la suite la plus probable. Tout se passe ici, sur cet appareil : rien de ce que vous écrivez n’est envoyé.",
    model: "Le modèle",
    storage: "Modèles enregistrés sur cet appareil",
    prompt: "1. Le texte de départ",
    promptLabel: "Écrivez le début d’un texte :",
    tokensHelp:
      "Le modèle ne voit pas des lettres mais des jetons (tokens), chacun avec son numéro :",
    settings: "2. Les réglages du tirage",
    temperature: "Température",
    temperatureHelp:
      "0 : toujours le jeton le plus probable. Plus haut : plus de hasard, plus de surprises.",
    topK: "Top-k",
    topKHelp: "Ne tirer qu’entre les k jetons les plus probables.",
    topP: "Top-p",
    topPHelp:
      "Ne garder que les jetons les plus probables dont les probabilités font p à elles toutes.",
    maxTokens: "Longueur (jetons)",
    seed: "Graine du hasard",
    seedHelp: "Même graine, mêmes réglages : même texte.",
    output: "3. Ce que le modèle écrit",
    generate: "Écrire la suite",
    stop: "Arrêter",
    outputHelp:
      "Cliquez sur un jeton généré pour voir les jetons que le modèle envisageait à cet endroit ; cliquez sur une autre possibilité pour faire bifurquer le texte à partir de là.",
    footer: "Propulsé par Ouvert : un modèle ouvert, dans la page.",
    download: "Téléchargement du modèle",
    fromCache: "Lecture du modèle enregistré",
    verify: "Vérification de l’empreinte SHA-256",
    load: "Démarrage du modèle",
    ready: "Modèle prêt.",
    failed: "Le modèle n’a pas pu être chargé",
    name: "Nom",
    params: "Paramètres",
    size: "Taille",
    hash: "SHA-256",
    backend: "Calcul",
    cpu: "processeur (WebAssembly)",
    threads: (n) => `, ${n} fils d’exécution`,
    gpu: "carte graphique (WebGPU)",
    context: "Contexte",
    tokens: "jetons",
    del: "Supprimer",
    used: (u, q) => `Stockage utilisé : ${u} sur ${q} disponibles.`,
    stats: (s, b) =>
      `${s.promptTokens} jetons lus, premier jeton en ${ms(s.timeToFirstTokenMs)}, ${s.decodeTokensPerSecond.toFixed(1)} jetons/s (${b}).`,
    choicesAt: (before) => `Après « …${before} », le modèle envisageait :`,
    stopped: "Arrêté.",
    offline: "Cette page et le modèle sont enregistrés : elle fonctionne aussi sans réseau.",
    other: "Essayer un autre modèle",
    bundledHelp: "Les modèles fournis avec ce site :",
    base: "modèle de base : il prolonge un texte",
    instruct: "modèle instruit : il a appris à converser",
    otherHelp:
      "N’importe quel fichier GGUF d’une architecture et d’une quantification prises en charge :",
    modelUrl: "Adresse du fichier GGUF",
    loadUrl: "Charger",
    dropHelp: "ou déposez un fichier .gguf ici, ou",
    pickFile: "choisissez-le sur cet appareil",
    architectures: "Architectures",
    quantizations: "Quantifications",
    kept: "Le modèle précédent reste chargé.",
    network: (n) =>
      n === 0
        ? "Réseau : aucune requête de cette page depuis le chargement du modèle."
        : `Réseau : ${n}\u00a0requête${n > 1 ? "s" : ""} de cette page depuis le chargement du modèle.`,
  },
  en: {
    title: "How a language model writes",
    intro:
      "A language model cuts text into tokens, then guesses, one token after another, the most likely continuation. Everything happens here, on this device: nothing you type is sent anywhere.",
    model: "The model",
    storage: "Models stored on this device",
    prompt: "1. The starting text",
    promptLabel: "Write the beginning of a text:",
    tokensHelp: "The model does not see letters but tokens, each with its number:",
    settings: "2. How the next token is drawn",
    temperature: "Temperature",
    temperatureHelp: "0: always the most likely token. Higher: more chance, more surprises.",
    topK: "Top-k",
    topKHelp: "Draw only among the k most likely tokens.",
    topP: "Top-p",
    topPHelp: "Keep only the most likely tokens whose probabilities add up to p.",
    maxTokens: "Length (tokens)",
    seed: "Random seed",
    seedHelp: "Same seed, same settings: same text.",
    output: "3. What the model writes",
    generate: "Write what comes next",
    stop: "Stop",
    outputHelp:
      "Click a generated token to see the tokens the model weighed at that point; click another one to branch the text from there.",
    footer: "Powered by Ouvert: an open model, in the page.",
    download: "Downloading the model",
    fromCache: "Reading the stored model",
    verify: "Checking the SHA-256 fingerprint",
    load: "Starting the model",
    ready: "Model ready.",
    failed: "The model could not be loaded",
    name: "Name",
    params: "Parameters",
    size: "Size",
    hash: "SHA-256",
    backend: "Runs on",
    cpu: "processor (WebAssembly)",
    threads: (n) => `, ${n} threads`,
    gpu: "graphics card (WebGPU)",
    context: "Context",
    tokens: "tokens",
    del: "Delete",
    used: (u, q) => `Storage used: ${u} of ${q} available.`,
    stats: (s, b) =>
      `${s.promptTokens} tokens read, first token after ${ms(s.timeToFirstTokenMs)}, ${s.decodeTokensPerSecond.toFixed(1)} tokens/s (${b}).`,
    choicesAt: (before) => `After “…${before}”, the model weighed:`,
    stopped: "Stopped.",
    offline: "This page and the model are stored: it works without a network too.",
    other: "Try another model",
    bundledHelp: "The models that come with this site:",
    base: "base model: it continues text",
    instruct: "instruct model: trained to converse",
    otherHelp: "Any GGUF file of a supported architecture and quantization:",
    modelUrl: "Address of the GGUF file",
    loadUrl: "Load",
    dropHelp: "or drop a .gguf file here, or",
    pickFile: "pick one on this device",
    architectures: "Architectures",
    quantizations: "Quantizations",
    kept: "The previous model stays loaded.",
    network: (n) =>
      n === 0
        ? "Network: no request from this page since the model loaded."
        : `Network: ${n} request${n > 1 ? "s" : ""} from this page since the model loaded.`,
  },
};

const $ = (id) => document.getElementById(id);
const ms = (x) => (x < 1000 ? `${x.toFixed(0)} ms` : `${(x / 1000).toFixed(1)} s`);
const mb = (b) => (b == null ? "?" : `${(b / 1e6).toFixed(0)} MB`);
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}
/** How a vocabulary entry looks on screen: spaces and line breaks made visible. */
// (SentencePiece marks a space ▁; byte-level BPE vocabularies write space Ġ and newline Ċ.)
const showToken = (s) =>
  s
    .replaceAll("▁", "␣")
    .replaceAll("Ġ", "␣")
    .replaceAll("Ċ", "↵")
    .replace(/^<0x0A>$/, "↵")
    .replaceAll("\n", "↵");

const state = {
  lang:
    localStorage.getItem("ouvert-demo-lang") ??
    (navigator.language?.startsWith("fr") ? "fr" : "en"),
  engine: null,
  promptIds: [],
  steps: [], // generated tokens: { token, text, top }
  selected: -1,
  run: null, // the AbortController of the generation in progress
  loading: false,
  lastStatus: null, // re-rendered on a language switch
  lastStats: null, // the last answer's, for its cost
  requests: [], // made since the model loaded (the network meter)
  unwatch: null,
};
const t = () => STRINGS[state.lang];

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = `Ouvert — ${t().title}`;
  for (const node of document.querySelectorAll("[data-i18n]"))
    node.textContent = t()[node.dataset.i18n];
  for (const b of document.querySelectorAll("[data-lang]"))
    b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
  state.lastStatus?.();
  showSupported();
  showBundled();
  if (state.engine) showCard(state.engine.info);
  showCost();
  if (state.selected >= 0) showChoices(state.selected);
  showStorage();
}

function setStatus(render, stateName) {
  state.lastStatus = () => {
    $("status").textContent = render();
  };
  state.lastStatus();
  if (stateName) $("status").dataset.state = stateName;
}

function showCard(info) {
  const rows = [
    [t().name, `${info.name} (${info.architecture}, ${info.quantization})`],
    ...provenanceRows(info, state.lang),
    [t().params, info.parameters.toLocaleString(state.lang)],
    [t().size, mb(info.bytes)],
    [t().context, `${info.contextLength} ${t().tokens}`],
    [t().hash, info.sha256],
    [
      t().backend,
      info.backend === "webgpu"
        ? t().gpu
        : info.threads > 1
          ? t().cpu.replace(")", `${t().threads(info.threads)})`)
          : t().cpu,
    ],
  ];
  $("card").replaceChildren(
    ...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", {}, valueNode(v))]),
  );
  $("network").textContent = t().network(state.requests.length);
}

/** The last answer's cost, and how its energy is estimated. */
function showCost() {
  const stats = state.lastStats;
  $("cost").textContent = stats ? costSummary(stats, state.lang) : "";
  $("method").hidden = !stats;
  if (!stats) return;
  const m = energyMethod(state.engine.info.energy, state.lang);
  $("method").querySelector("summary").textContent = m.summary;
  $("method")
    .querySelector("div")
    .replaceChildren(
      ...m.paragraphs.map((p) => el("p", { textContent: p })),
      el("p", { textContent: m.sourcesLabel }),
      el("ul", {}, ...m.sources.map((src) => el("li", { textContent: src }))),
    );
}

async function showStorage() {
  const [models, est] = await Promise.all([listCachedModels().catch(() => []), storageEstimate()]);
  $("cached").replaceChildren(
    ...models.map((m) =>
      el(
        "li",
        { textContent: `${new URL(m.url).pathname.split("/").pop()} · ${mb(m.bytes)}` },
        el("button", {
          type: "button",
          textContent: t().del,
          onclick: async () => {
            await deleteCachedModel(m.url);
            showStorage();
          },
        }),
      ),
    ),
  );
  $("estimate").textContent = est.quota ? t().used(mb(est.usage), mb(est.quota)) : "";
}

function showBundled() {
  $("bundled").replaceChildren(
    ...BUNDLED.map((m) =>
      el(
        "li",
        {},
        el("button", {
          type: "button",
          textContent: m.name,
          onclick: () => load(m.url, m.sha256),
        }),
        ` ${t()[m.kind]}`,
      ),
    ),
  );
}

function showSupported() {
  $("supported").replaceChildren(
    el("li", { textContent: `${t().architectures} : ${SUPPORTED.architectures.join(", ")}` }),
    el("li", { textContent: `${t().quantizations} : ${SUPPORTED.quantizations.join(", ")}` }),
  );
}

/** Loads `model` (a URL or a File); the engine in use stays until the new one is ready. */
async function load(model, sha256) {
  if (state.loading) return;
  state.loading = true;
  $("progress").hidden = false;
  $("progress").value = 0;
  setStatus(() => t().download, "loading");
  let engine;
  try {
    engine = await createEngine({
      model,
      sha256,
      contextLength: 2048,
      onProgress: ({ phase, loaded, total, source }) => {
        $("progress").value = total ? loaded / total : 0;
        const label = phase === "download" && source === "cache" ? t().fromCache : t()[phase];
        setStatus(() => `${label} · ${mb(loaded)} / ${mb(total)}`);
      },
    });
  } catch (e) {
    $("progress").hidden = true;
    setStatus(
      () => `${t().failed} (${e.code}) : ${e.message}${state.engine ? ` ${t().kept}` : ""}`,
      "error",
    );
    return;
  } finally {
    state.loading = false;
  }
  state.run?.abort();
  state.engine?.dispose();
  state.engine = engine;
  state.unwatch?.();
  state.requests = [];
  state.unwatch = watchNetwork(engine, (urls) => {
    state.requests = urls;
    $("network").textContent = t().network(urls.length);
  });
  state.lastStats = null;
  showCost();
  state.steps = [];
  state.selected = -1;
  $("choices").hidden = true;
  $("stats").textContent = "";
  $("progress").hidden = true;
  setStatus(() => t().ready, "ready");
  showCard(state.engine.info);
  showStorage();
  $("generate").disabled = false;
  showPromptTokens();
  showOfflineState();
}

let tokenizeTimer = 0;
async function showPromptTokens() {
  if (!state.engine) return;
  const ids = await state.engine.tokenize($("prompt").value);
  const strings = await state.engine.tokenStrings(ids);
  state.promptIds = ids;
  $("tokens").replaceChildren(
    ...ids.map((id, i) =>
      el(
        "span",
        { className: "tok", title: `id ${id}` },
        el("span", { textContent: showToken(strings[i]) }),
        el("small", { textContent: String(id) }),
      ),
    ),
  );
}

function settings() {
  const num = (id) => Number($(id).value);
  return {
    temperature: num("temperature"),
    topK: num("topK"),
    topP: num("topP"),
    maxTokens: num("maxTokens"),
    seed: num("seed"),
  };
}

function showSettings() {
  for (const id of ["temperature", "topK", "topP", "maxTokens"])
    $(id).labels[0].querySelector("output").textContent = $(id).value;
}

function renderOutput() {
  const prompt = el("span", { className: "prompt", textContent: $("prompt").value });
  const tokens = state.steps.map((s, i) => {
    // A sampled token may lie outside the top list: `chosen` has its own probability.
    const p = Math.exp((s.chosen ?? s.top.find((c) => c.token === s.token))?.logprob ?? -Infinity);
    const b = el("button", {
      type: "button",
      className: "tok",
      textContent: s.text,
      title: `${(100 * p).toFixed(1)} %`,
      onclick: () => showChoices(i),
    });
    b.style.setProperty("--hue", String(Math.round(120 * p))); // red: unlikely, green: likely
    b.dataset.index = i;
    b.setAttribute("aria-pressed", String(i === state.selected));
    return b;
  });
  $("output").replaceChildren(prompt, ...tokens);
}

function showChoices(i) {
  state.selected = i;
  const step = state.steps[i];
  const before =
    state.steps
      .slice(Math.max(0, i - 6), i)
      .map((s) => s.text)
      .join("") || $("prompt").value.slice(-30);
  $("choices-caption").textContent = t().choicesAt(before);
  $("bars").replaceChildren(
    ...step.top.map((c) => {
      const p = Math.exp(c.logprob);
      const bar = el("span", { className: "bar" });
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      const b = el(
        "button",
        { type: "button", onclick: () => branch(i, c) },
        el("span", { className: "label", textContent: JSON.stringify(c.text).slice(1, -1) }),
        el("span", { className: "track" }, bar),
        el("span", { className: "pct", textContent: `${(100 * p).toFixed(1)} %` }),
      );
      b.dataset.token = c.token;
      if (c.token === step.token) b.setAttribute("aria-current", "true");
      return el("li", {}, b);
    }),
  );
  $("choices").hidden = false;
  renderOutput();
}

/** Replaces step `i` by the alternative `c` and lets the model write on from there. */
function branch(i, c) {
  if (state.run) return;
  const top = state.steps[i].top;
  state.steps = [...state.steps.slice(0, i), { token: c.token, text: c.text, top }];
  showChoices(i);
  generate(Math.max(8, settings().maxTokens - state.steps.length));
}

async function generate(maxTokens) {
  const fresh = maxTokens === undefined;
  if (fresh) {
    await showPromptTokens();
    state.steps = [];
    state.selected = -1;
    $("choices").hidden = true;
  }
  const s = settings();
  state.run = new AbortController();
  $("generate").disabled = true;
  $("stop").hidden = false;
  $("output").dataset.state = "running";
  $("output").setAttribute("aria-busy", "true");
  renderOutput();
  try {
    const ids = [...state.promptIds, ...state.steps.map((x) => x.token)];
    const run = state.engine.generate(
      { ids },
      { ...s, maxTokens: maxTokens ?? s.maxTokens, topLogprobs: TOP, signal: state.run.signal },
    );
    for await (const piece of run) {
      state.steps.push(piece);
      renderOutput();
    }
    const r = await run.result;
    $("stats").textContent = t().stats(r.stats, state.engine.info.backend);
    state.lastStats = r.stats;
    showCost();
  } catch (e) {
    $("stats").textContent = e.code === "aborted" ? t().stopped : `${e.code}: ${e.message}`;
  } finally {
    state.run = null;
    $("generate").disabled = false;
    $("stop").hidden = true;
    $("output").dataset.state = "done";
    $("output").setAttribute("aria-busy", "false");
  }
}

async function showOfflineState() {
  const sw = navigator.serviceWorker?.controller;
  const cached = (await listCachedModels().catch(() => [])).length > 0;
  $("offline-state").textContent = sw && cached ? t().offline : "";
}

for (const b of document.querySelectorAll("[data-lang]")) {
  b.onclick = () => {
    state.lang = b.dataset.lang;
    localStorage.setItem("ouvert-demo-lang", state.lang);
    applyLanguage();
  };
}
for (const id of ["temperature", "topK", "topP", "maxTokens"]) $(id).oninput = showSettings;
$("prompt").oninput = () => {
  clearTimeout(tokenizeTimer);
  tokenizeTimer = setTimeout(showPromptTokens, 150);
};
$("generate").onclick = () => generate();
$("stop").onclick = () => state.run?.abort();
showSettings();
applyLanguage();
if ("serviceWorker" in navigator && location.protocol.startsWith("http")) {
  navigator.serviceWorker
    .register("sw.js")
    .then(() => navigator.serviceWorker.ready)
    .then(showOfflineState, () => {});
}
$("url-form").onsubmit = (e) => {
  e.preventDefault();
  load($("model-url").value.trim());
};
$("model-file").onchange = () => {
  const f = $("model-file").files[0];
  if (f) load(f);
};
$("drop").ondragover = (e) => {
  e.preventDefault();
  $("drop").dataset.over = "true";
};
$("drop").ondragleave = () => {
  delete $("drop").dataset.over;
};
$("drop").ondrop = (e) => {
  e.preventDefault();
  delete $("drop").dataset.over;
  const f =
    [...e.dataTransfer.files].find((x) => x.name.endsWith(".gguf")) ?? e.dataTransfer.files[0];
  if (f) load(f);
};
const params = new URLSearchParams(location.search);
const first = params.get("model") ?? DEFAULT_MODEL.url;
load(first, params.get("sha256") ?? BUNDLED.find((m) => m.url === first)?.sha256);
