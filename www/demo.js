// The workshop site: what a language model does, shown on a model running in the page.
// Four views: "write what comes next" (tokens, next-token probabilities, the sampling
// settings and their cuts, click to branch), "base or instruct" (one question to both
// bundled models, the chat template's prompt as tokens), "how surprised is the model"
// (each token of a text coloured by its surprisal, from engine.score()) and "languages and
// tokens" (what a sentence costs in tokens in each language). French and English; it works
// offline after the first visit (sw.js keeps the site, the model stays in OPFS).
import { costSummary, provenanceRows, showMethod, valueNode, watchNetwork } from "./about.js";
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
const NBSP = "\u00a0";

const STRINGS = {
  fr: {
    title: "Comment un modèle de langue écrit",
    intro:
      "Un modèle de langue découpe le texte en jetons, puis devine, jeton après jeton, la suite la plus probable. Tout se passe ici, sur cet appareil : rien de ce que vous écrivez n’est envoyé.",
    model: "Le modèle",
    about: "À propos du modèle",
    storage: "Modèles enregistrés sur cet appareil",
    views: "Vues",
    viewWrite: "Écrire la suite",
    viewChat: "Base ou instruit",
    viewSurprise: "La surprise du modèle",
    viewLanguages: "Langues et jetons",
    prompt: "1. Le texte de départ",
    promptLabel: "Écrivez le début d’un texte :",
    tokensHelp:
      "Le modèle ne voit pas des lettres mais des jetons (tokens), chacun avec son numéro :",
    tokensLegend:
      "Les couleurs ne font que séparer les jetons. ␣ est une espace, ↵ un retour à la ligne ; <0xC3> est un octet seul : le jeton ne tient qu’une partie d’un caractère.",
    settings: "2. Les réglages du tirage",
    temperature: "Température",
    temperatureHelp:
      "0 : toujours le jeton le plus probable. Plus haut : plus de hasard, plus de surprises.",
    topK: "Top-k",
    topKHelp: "Ne tirer qu’entre les k jetons les plus probables.",
    topP: "Top-p",
    topPHelp:
      "Ne garder que les jetons les plus probables dont les probabilités font p à elles toutes.",
    minP: "Min-p",
    minPHelp: "Écarter les jetons moins probables que min-p fois le plus probable.",
    maxTokens: "Longueur (jetons)",
    seed: "Graine du hasard",
    seedHelp: "Même graine, mêmes réglages : même texte. « Nouveau tirage » en change.",
    output: "3. Ce que le modèle écrit",
    generate: "Écrire la suite",
    redraw: "Nouveau tirage",
    stop: "Arrêter",
    outputHelp:
      "Cliquez sur un jeton généré (ou choisissez-le au clavier) pour voir les jetons que le modèle envisageait à cet endroit ; choisissez une autre possibilité pour faire bifurquer le texte à partir de là.",
    outputLegend:
      "Couleur d’un jeton écrit : la probabilité que le modèle lui donnait, du rouge (peu probable) au vert (très probable).",
    choicesEmpty: "Les possibilités d’un jeton s’affichent ici quand vous le choisissez.",
    footer: "Propulsé par Ouvert : un modèle ouvert, dans la page.",
    download: "Téléchargement du modèle",
    fromCache: "Lecture du modèle enregistré",
    verify: "Vérification de l’empreinte SHA-256",
    load: "Démarrage du modèle",
    ready: (name) => `${name} est prêt.`,
    failed: "Le modèle n’a pas pu être chargé.",
    name: "Nom",
    params: "Paramètres",
    size: "Taille",
    hash: "SHA-256",
    backend: "Calcul",
    cpu: "processeur (WebAssembly)",
    threads: (n) => `, ${n}${NBSP}fils d’exécution`,
    gpu: "carte graphique (WebGPU)",
    context: "Contexte",
    tokens: (n) => `${num(n)}${NBSP}jeton${n > 1 ? "s" : ""}`,
    del: "Supprimer",
    use: "Utiliser",
    inUse: "(en cours d’utilisation)",
    used: (u, q) => `Stockage utilisé${NBSP}: ${u} sur ${q} disponibles.`,
    stats: (s, b) =>
      `${num(s.promptTokens)}${NBSP}jetons lus, premier jeton en ${ms(s.timeToFirstTokenMs)}, ${num(s.decodeTokensPerSecond, 1)}${NBSP}jetons/s (${b}).`,
    choicesAt: (before) => `Après «${NBSP}…${before}${NBSP}», le modèle envisageait${NBSP}:`,
    rule: (t, cuts) =>
      `Probabilités à la température ${num(t, 2)}, sur tout le vocabulaire. ${cuts ? `Grisés : écartés avant le tirage par ${cuts}.` : "Aucune coupe ne s’applique."} ✓ : le jeton tiré.`,
    greedyRule:
      "Température 0 (ou top-k 1) : le jeton le plus probable est toujours pris (✓). Probabilités à la température 1.",
    cut: { topK: "top-k", topP: "top-p", minP: "min-p", greedy: "température 0" },
    and: " et ",
    chosen: "tiré",
    endOfText: "fin du texte",
    finish: {
      stop: "Le modèle a écrit la fin du texte : il s’arrête là.",
      stopAtOnce:
        "Le modèle a écrit la fin du texte tout de suite : pour lui, le texte était fini.",
      length: (n) => `Longueur atteinte (${num(n)}${NBSP}jetons).`,
      aborted: "Arrêté.",
    },
    stale: "Le texte de départ a changé : écrivez à nouveau la suite.",
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
        : `Réseau${NBSP}: ${n}${NBSP}requête${n > 1 ? "s" : ""} de cette page depuis le chargement du modèle.`,
    chatTitle: "Un modèle de base et un modèle instruit, même question",
    chatIntro:
      "Un modèle instruit a appris sur des conversations mises en forme par un modèle de dialogue (chat template) : des jetons spéciaux marquent qui parle. Voici ce que chaque modèle lit vraiment, jetons spéciaux surlignés, puis ce qu’il répond (sans hasard).",
    chatQuestion: "Votre question :",
    chatDefault: "Quelle est la capitale de la France ?",
    chatAsk: "Poser la question aux deux",
    chatReads: "Ce que le modèle lit",
    chatAnswer: "Sa réponse",
    chatBase:
      "Modèle de base : son fichier n’a pas de modèle de dialogue ; il reçoit les tours de Gemma, sur lesquels il n’a pas été entraîné.",
    chatInstruct: "Modèle instruit : le modèle de dialogue vient de son fichier.",
    special: "jeton spécial",
    loadingPeer: (name) => `Chargement de ${name}…`,
    surpriseTitle: "Le modèle est-il surpris ?",
    surpriseIntro:
      "Le modèle lit un texte donné et dit, à chaque jeton, quelle probabilité il lui donnait. Sa surprise, en bits, est −log₂ de cette probabilité : 1 bit, c’est une chance sur 2 ; 10 bits, une sur 1 024. Survolez ou choisissez un jeton pour voir ce qu’il attendait.",
    surpriseText: "Un texte :",
    surpriseDefault:
      "Le matin, le boulanger sort les baguettes du four. Le matin, le boulanger sort les girafes du four.",
    surpriseGo: "Mesurer la surprise",
    surpriseReading: (done, total) => `Lecture : ${num(done)} jetons sur ${num(total)}…`,
    surpriseDone: (ppl, n, tps) =>
      `Perplexité ${num(ppl, 2)} sur ${num(n)}${NBSP}jetons (${num(tps, 1)}${NBSP}jetons/s) : en moyenne, le modèle hésitait comme entre ${num(ppl, 1)} jetons également probables.`,
    surpriseLegend:
      "Couleur : la surprise, du blanc (attendu, moins de 1 bit) au rouge (inattendu, 12 bits et plus). Le premier jeton n’est prédit par rien.",
    surpriseToken: (text, bits, p, alts) =>
      `${text} : ${num(bits, 1)}${NBSP}bits (probabilité ${p}). Le modèle attendait${NBSP}: ${alts}.`,
    surpriseFirst: (text) => `${text} : le premier jeton, que rien ne prédit.`,
    languagesTitle: "Langues et jetons",
    languagesIntro:
      "La même phrase dans plusieurs langues (modifiables) : combien de jetons chaque modèle y met. Une langue rare dans les textes d’entraînement se découpe en plus de morceaux : elle coûte plus de calcul et tient moins dans le contexte.",
    language: "Langue",
    sentence: "Phrase",
    languagesAdd: "Ajouter une langue",
    newLanguage: "Autre langue",
  },
  en: {
    title: "How a language model writes",
    intro:
      "A language model cuts text into tokens, then guesses, one token after another, the most likely continuation. Everything happens here, on this device: nothing you type is sent anywhere.",
    model: "The model",
    about: "About the model",
    storage: "Models stored on this device",
    views: "Views",
    viewWrite: "Write what comes next",
    viewChat: "Base or instruct",
    viewSurprise: "How surprised is the model?",
    viewLanguages: "Languages and tokens",
    prompt: "1. The starting text",
    promptLabel: "Write the beginning of a text:",
    tokensHelp: "The model does not see letters but tokens, each with its number:",
    tokensLegend:
      "The colours only tell tokens apart. ␣ is a space, ↵ a line break; <0xC3> is a lone byte: the token holds only part of a character.",
    settings: "2. How the next token is drawn",
    temperature: "Temperature",
    temperatureHelp: "0: always the most likely token. Higher: more chance, more surprises.",
    topK: "Top-k",
    topKHelp: "Draw only among the k most likely tokens.",
    topP: "Top-p",
    topPHelp: "Keep only the most likely tokens whose probabilities add up to p.",
    minP: "Min-p",
    minPHelp: "Drop tokens less likely than min-p times the most likely one.",
    maxTokens: "Length (tokens)",
    seed: "Random seed",
    seedHelp: "Same seed, same settings: same text. “New draw” changes it.",
    output: "3. What the model writes",
    generate: "Write what comes next",
    redraw: "New draw",
    stop: "Stop",
    outputHelp:
      "Click a generated token (or choose it with the keyboard) to see the tokens the model weighed at that point; choose another one to branch the text from there.",
    outputLegend:
      "A written token's colour: the probability the model gave it, from red (unlikely) to green (very likely).",
    choicesEmpty: "A token's alternatives show here when you choose it.",
    footer: "Powered by Ouvert: an open model, in the page.",
    download: "Downloading the model",
    fromCache: "Reading the stored model",
    verify: "Checking the SHA-256 fingerprint",
    load: "Starting the model",
    ready: (name) => `${name} is ready.`,
    failed: "The model could not be loaded.",
    name: "Name",
    params: "Parameters",
    size: "Size",
    hash: "SHA-256",
    backend: "Runs on",
    cpu: "processor (WebAssembly)",
    threads: (n) => `, ${n} threads`,
    gpu: "graphics card (WebGPU)",
    context: "Context",
    tokens: (n) => `${num(n)} token${n === 1 ? "" : "s"}`,
    del: "Delete",
    use: "Use",
    inUse: "(in use)",
    used: (u, q) => `Storage used: ${u} of ${q} available.`,
    stats: (s, b) =>
      `${num(s.promptTokens)} tokens read, first token after ${ms(s.timeToFirstTokenMs)}, ${num(s.decodeTokensPerSecond, 1)} tokens/s (${b}).`,
    choicesAt: (before) => `After “…${before}”, the model weighed:`,
    rule: (t, cuts) =>
      `Probabilities at temperature ${num(t, 2)}, over the whole vocabulary. ${cuts ? `Greyed: removed before the draw by ${cuts}.` : "No cut applies."} ✓: the token drawn.`,
    greedyRule:
      "Temperature 0 (or top-k 1): the most likely token is always taken (✓). Probabilities at temperature 1.",
    cut: { topK: "top-k", topP: "top-p", minP: "min-p", greedy: "temperature 0" },
    and: " and ",
    chosen: "drawn",
    endOfText: "end of text",
    finish: {
      stop: "The model wrote the end of the text: it stops there.",
      stopAtOnce: "The model wrote the end of the text at once: to it, the text was finished.",
      length: (n) => `Length reached (${num(n)} tokens).`,
      aborted: "Stopped.",
    },
    stale: "The starting text changed: write what comes next again.",
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
    chatTitle: "A base model and an instruct model, one question",
    chatIntro:
      "An instruct model was trained on conversations laid out by a chat template: special tokens mark who speaks. Here is what each model really reads, special tokens highlighted, then what it answers (no chance involved).",
    chatQuestion: "Your question:",
    chatDefault: "What is the capital of France?",
    chatAsk: "Ask both",
    chatReads: "What the model reads",
    chatAnswer: "Its answer",
    chatBase:
      "Base model: its file has no chat template; it gets Gemma's turns, which it was not trained on.",
    chatInstruct: "Instruct model: the chat template comes from its file.",
    special: "special token",
    loadingPeer: (name) => `Loading ${name}…`,
    surpriseTitle: "How surprised is the model?",
    surpriseIntro:
      "The model reads a given text and says, at each token, what probability it gave it. Its surprise, in bits, is −log₂ of that probability: 1 bit is one chance in 2; 10 bits, one in 1,024. Hover or choose a token to see what it expected.",
    surpriseText: "A text:",
    surpriseDefault:
      "In the morning, the baker takes the loaves out of the oven. In the morning, the baker takes the giraffes out of the oven.",
    surpriseGo: "Measure the surprise",
    surpriseReading: (done, total) => `Reading: ${num(done)} tokens of ${num(total)}…`,
    surpriseDone: (ppl, n, tps) =>
      `Perplexity ${num(ppl, 2)} over ${num(n)} tokens (${num(tps, 1)} tokens/s): on average, the model hesitated as between ${num(ppl, 1)} equally likely tokens.`,
    surpriseLegend:
      "Colour: the surprise, from white (expected, under 1 bit) to red (unexpected, 12 bits or more). Nothing predicts the first token.",
    surpriseToken: (text, bits, p, alts) =>
      `${text}: ${num(bits, 1)} bits (probability ${p}). The model expected: ${alts}.`,
    surpriseFirst: (text) => `${text}: the first token, which nothing predicts.`,
    languagesTitle: "Languages and tokens",
    languagesIntro:
      "The same sentence in several languages (edit them): how many tokens each model needs. A language thin in the training texts is cut into more pieces: it costs more computation and fits less in the context.",
    language: "Language",
    sentence: "Sentence",
    languagesAdd: "Add a language",
    newLanguage: "Another language",
  },
};

// French typography: a no-break space before : ; ? ! % and », after «, so that none wraps alone.
const frenchSpaces = (s) => s.replace(/ ([:;?!%»])/g, `${NBSP}$1`).replaceAll("« ", `«${NBSP}`);
function typeset(v) {
  if (typeof v === "string") return frenchSpaces(v);
  if (typeof v === "function") return (...args) => frenchSpaces(v(...args));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeset(x)]));
}
STRINGS.fr = typeset(STRINGS.fr);

// The languages view's sentences: one thought, in languages a model may know well or barely.
const LANGUAGES = [
  ["Français", "Le pain du boulanger est encore chaud ce matin."],
  ["English", "The baker's bread is still warm this morning."],
  ["Brezhoneg", "Tomm eo c'hoazh bara ar baraer er mintin-mañ."],
  ["Occitan", "Lo pan del bolangièr es encara caud aqueste matin."],
  ["Wolof", "Mburu mburukat bi dafa tàng ba tey ci suba si."],
];

const $ = (id) => document.getElementById(id);
const state = {
  lang:
    localStorage.getItem("ouvert-demo-lang") ??
    (navigator.language?.startsWith("fr") ? "fr" : "en"),
  engine: null,
  model: null, // what the engine was loaded from (a URL or a File)
  promptIds: [],
  steps: [], // generated tokens: { token, text, top, chosen }
  pieces: new Map(), // id → { text } | { bytes } | { text, special }, once asked
  finish: null, // why the last generation stopped, and after how many tokens
  selected: -1,
  run: null, // the AbortController of the generation in progress
  loading: false,
  lastStatus: null, // re-rendered on a language switch
  lastStats: null, // the last answer's, for its cost
  requests: [], // made since the model loaded (the network meter)
  unwatch: null,
  peers: new Map(), // url → Promise<Engine>: the other bundled model, for the chat and languages views
  peersReady: new Map(), // url → Engine, once loaded
  surprise: null, // the last score()
  rows: LANGUAGES.map(([language, sentence]) => ({ language, sentence })),
};
const t = () => STRINGS[state.lang];

/** A number in the page's language (French: 13,4 and no-break thousands). */
function num(x, digits = 0) {
  return x.toLocaleString(state.lang, { maximumFractionDigits: digits });
}
const ms = (x) => (x < 1000 ? `${num(x)}${NBSP}ms` : `${num(x / 1000, 1)}${NBSP}s`);
const mb = (b) => (b == null ? "?" : `${num(b / 1e6)}${NBSP}${state.lang === "fr" ? "Mo" : "MB"}`);
/** A probability as a percentage, "< 0,1 %" below what one decimal shows. */
const pct = (p) => (p < 0.0005 ? `<${NBSP}${num(0.1, 1)}${NBSP}%` : `${num(100 * p, 1)}${NBSP}%`);

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/**
 * How a token looks on screen: its text with spaces, tabs and line breaks made visible, a
 * control token's name, or the bytes of a token that holds part of a character (<0xC3>).
 */
function shown(piece) {
  if (!piece) return "";
  if (piece.bytes)
    return piece.bytes
      .map((b) =>
        b < 0x80
          ? visible(String.fromCharCode(b))
          : `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
      )
      .join("");
  return piece.special ? piece.text : visible(piece.text);
}
const visible = (s) => s.replaceAll(" ", "␣").replaceAll("\n", "↵").replaceAll("\t", "⇥");
/** Generated text as written, but a line break as ↵ (followed by a real break). */
const written = (s) => s.replaceAll("\n", "↵").replaceAll("\t", "⇥");

/** Pieces of `ids` not asked yet, asked once (the worker answers between generations). */
async function learnPieces(ids) {
  const engine = state.engine;
  const missing = [...new Set(ids)].filter((id) => !state.pieces.has(id));
  if (!engine || missing.length === 0) return;
  const pieces = await engine.tokenPieces(missing);
  if (engine !== state.engine) return;
  for (const [i, id] of missing.entries()) state.pieces.set(id, pieces[i]);
}

// --- language ---------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = `Ouvert — ${t().title}`;
  for (const node of document.querySelectorAll("[data-i18n]"))
    node.textContent = t()[node.dataset.i18n];
  for (const b of document.querySelectorAll("[data-lang]"))
    b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
  state.lastStatus?.();
  showSettings();
  showSupported();
  showBundled();
  if (state.engine) showCard(state.engine.info);
  showStats();
  showCost();
  showFinish();
  renderOutput();
  if (state.selected >= 0) showChoices(state.selected, false);
  showStorage();
  showOfflineState();
  showSurprise();
  showLanguages();
  if (!$("chat-question").value) $("chat-question").value = t().chatDefault;
  if (!$("surprise-text").value) $("surprise-text").value = t().surpriseDefault;
}

function setStatus(render, stateName) {
  state.lastStatus = () => {
    $("status").replaceChildren(...[render()].flat());
  };
  state.lastStatus();
  if (stateName) $("status").dataset.state = stateName;
}

// --- the model --------------------------------------------------------------------------

function showCard(info) {
  const short = `${info.sha256.slice(0, 12)}…`;
  const hash = el("code", { textContent: short, title: info.sha256 });
  hash.dataset.full = info.sha256;
  const rows = [
    [t().name, `${info.name} (${info.architecture}, ${info.quantization})`],
    ...provenanceRows(info, state.lang),
    [t().params, num(info.parameters)],
    [t().size, mb(info.bytes)],
    [t().context, t().tokens(info.contextLength)],
    [t().hash, hash],
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
    ...rows.flatMap(([k, v]) => [
      el("dt", { textContent: k }),
      el("dd", {}, v instanceof Node ? v : valueNode(v)),
    ]),
  );
  $("network").textContent = t().network(state.requests.length);
}

function showStats() {
  const s = state.lastStats;
  $("stats").textContent = s
    ? t().stats(s, state.engine.info.backend === "webgpu" ? t().gpu : t().cpu)
    : "";
}

/** The last answer's cost, and how its energy is estimated. */
function showCost() {
  const stats = state.lastStats;
  $("cost").textContent = stats ? costSummary(stats, state.lang) : "";
  $("method").hidden = !stats;
  if (!stats) return;
  showMethod($("method"), state.engine.info.energy, state.lang);
}

async function showStorage() {
  const [models, est] = await Promise.all([listCachedModels().catch(() => []), storageEstimate()]);
  const inUse = typeof state.model === "string" ? state.model : null;
  $("cached").replaceChildren(
    ...models.map((m) =>
      el(
        "li",
        { textContent: `${new URL(m.url).pathname.split("/").pop()} · ${mb(m.bytes)} ` },
        m.url === inUse
          ? el("span", { className: "help", textContent: t().inUse })
          : el("button", {
              type: "button",
              textContent: t().use,
              onclick: () => load(m.url, m.sha256),
            }),
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
  const colon = state.lang === "fr" ? `${NBSP}: ` : ": ";
  $("supported").replaceChildren(
    el("li", { textContent: `${t().architectures}${colon}${SUPPORTED.architectures.join(", ")}` }),
    el("li", { textContent: `${t().quantizations}${colon}${SUPPORTED.quantizations.join(", ")}` }),
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
    // The sentence, then what the engine said on a line of its own (in English).
    setStatus(
      () => [
        `${t().failed}${state.engine ? ` ${t().kept}` : ""}`,
        el("small", { className: "detail", textContent: `${e.code} : ${e.message}` }),
      ],
      "error",
    );
    return;
  } finally {
    state.loading = false;
  }
  dropRun();
  state.engine?.dispose();
  state.engine = engine;
  state.model = absolute(model);
  // A second engine already holding this model (for the chat view) is not needed twice.
  state.peers.get(state.model)?.then(
    (e) => e.dispose(),
    () => {},
  );
  state.peers.delete(state.model);
  state.peersReady.delete(state.model);
  state.unwatch?.();
  state.requests = [];
  // The page's requests and the engine's; a second engine's come through countRequest too.
  state.unwatch = watchNetwork(engine, (urls) => countRequest(urls.at(-1)));
  // Nothing of the previous model stays on screen: its tokens, steps, figures.
  state.pieces = new Map();
  state.steps = [];
  state.selected = -1;
  state.finish = null;
  state.lastStats = null;
  state.surprise = null;
  renderOutput();
  showChoices(-1);
  showStats();
  showCost();
  showFinish();
  showSurprise();
  $("progress").hidden = true;
  setStatus(() => t().ready(engine.info.name ?? "?"), "ready");
  showCard(engine.info);
  showStorage();
  for (const id of ["generate", "redraw", "surprise-go"]) $(id).disabled = false;
  showPromptTokens();
  showOfflineState();
  showLanguages();
}

// --- 1. the starting text ----------------------------------------------------------------

let tokenizeTimer = 0;
async function showPromptTokens() {
  if (!state.engine) return;
  const engine = state.engine;
  const ids = await engine.tokenize($("prompt").value);
  await learnPieces(ids);
  if (engine !== state.engine) return;
  state.promptIds = ids;
  $("tokens").replaceChildren(
    ...ids.map((id) => {
      const piece = state.pieces.get(id);
      const tok = el(
        "span",
        {
          className: `tok${piece?.special ? " special" : ""}${piece?.bytes ? " bytes" : ""}`,
          title: `id ${id}`,
        },
        el("span", { textContent: shown(piece) }),
        el("small", { textContent: String(id) }),
      );
      return tok;
    }),
  );
}

// --- 2. the settings ---------------------------------------------------------------------

function settings() {
  const value = (id) => Number($(id).value);
  return {
    temperature: value("temperature"),
    topK: value("topK"),
    topP: value("topP"),
    minP: value("minP"),
    maxTokens: value("maxTokens"),
    seed: value("seed"),
  };
}

function showSettings() {
  for (const id of ["temperature", "topK", "topP", "minP", "maxTokens"])
    $(id).labels[0].querySelector("output").textContent = num(Number($(id).value), 2);
}

// --- 3. the output -----------------------------------------------------------------------

/** The probability the model gave the token it wrote at step `s`. */
const chosenP = (s) =>
  Math.exp((s.chosen ?? s.top.find((c) => c.token === s.token))?.logprob ?? -Infinity);

function tokenButton(s, i) {
  const piece = state.pieces.get(s.token);
  const text = s.text || (piece?.bytes ? shown(piece) : "");
  const p = chosenP(s);
  const b = el("button", {
    type: "button",
    className: `tok${piece?.bytes && !s.text ? " bytes" : ""}`,
    textContent: written(text),
    title: pct(p),
    onclick: () => showChoices(i),
  });
  b.setAttribute("aria-label", `${text.trim() || written(text)} (${pct(p)})`);
  b.style.setProperty("--hue", String(Math.round(120 * p))); // red: unlikely, green: likely
  b.dataset.index = i;
  b.dataset.token = s.token;
  b.setAttribute("aria-pressed", String(i === state.selected));
  return text.includes("\n") ? [b, el("br")] : [b];
}

/** The whole output: the prompt, each written token, and the end of the text if reached. */
function renderOutput() {
  const prompt = el("span", { className: "prompt", textContent: $("prompt").value });
  const tokens = state.steps.flatMap(tokenButton);
  const end =
    state.finish?.reason === "stop"
      ? [el("span", { className: "eot", textContent: `⟨${t().endOfText}⟩` })]
      : [];
  $("output").replaceChildren(prompt, ...tokens, ...end);
}

/**
 * Once the tokens' pieces are known: a token that held part of a character shows its bytes,
 * and the end of the text its marker. The rest of the output (and focus) stays as it is.
 */
function finishOutput() {
  for (const b of $("output").querySelectorAll("button.tok")) {
    const step = state.steps[Number(b.dataset.index)];
    const piece = state.pieces.get(step.token);
    if (!step.text && piece?.bytes) {
      b.textContent = shown(piece);
      b.classList.add("bytes");
    }
  }
  if (state.finish?.reason === "stop" && !$("output").querySelector(".eot"))
    $("output").append(el("span", { className: "eot", textContent: `⟨${t().endOfText}⟩` }));
}

/** Adds the step just generated, leaving the rest of the output (and focus) as it is. */
function appendStep(i) {
  $("output").append(...tokenButton(state.steps[i], i));
}

function showFinish() {
  const f = state.finish;
  const w = t().finish;
  $("finish").textContent = !f
    ? ""
    : f.reason === "stale"
      ? t().stale
      : f.reason === "stop"
        ? f.count === 0
          ? w.stopAtOnce
          : w.stop
        : f.reason === "length"
          ? w.length(f.count)
          : w.aborted;
}

/** Which of `top` (best first) the settings cut before the draw, and by what. */
function cuts(top, s) {
  const p = top.map((c) => Math.exp(c.logprob));
  if (s.temperature <= 0 || s.topK === 1) return p.map((_, i) => (i === 0 ? null : "greedy"));
  // Top-k first (the draw renormalizes over the k best), then top-p, then min-p.
  const k = s.topK > 0 ? s.topK : Infinity;
  const mass = k === Infinity ? 1 : p.slice(0, k).reduce((a, b) => a + b, 0);
  let acc = 0;
  let inTopP = true;
  return p.map((pi, i) => {
    if (i >= k) return "topK";
    const keep = inTopP;
    acc += pi / mass;
    if (s.topP < 1 && acc >= s.topP) inTopP = false;
    if (!keep) return "topP";
    if (s.minP > 0 && pi < s.minP * p[0]) return "minP";
    return null;
  });
}

function showChoices(i, focus = true) {
  state.selected = i;
  for (const b of $("output").querySelectorAll("button.tok"))
    b.setAttribute("aria-pressed", String(Number(b.dataset.index) === i));
  const step = state.steps[i];
  $("choices").hidden = !step;
  $("choices-empty").hidden = Boolean(step);
  if (!step) return;
  const before =
    state.steps
      .slice(Math.max(0, i - 6), i)
      .map((x) => x.text)
      .join("") || $("prompt").value.slice(-30);
  $("choices-caption").textContent = t().choicesAt(written(before));
  const s = step.settings;
  const why = cuts(step.top, s);
  const used = [...new Set(why.slice(0, TOP).filter(Boolean))].map((c) => t().cut[c]);
  $("choices-rule").textContent =
    s.temperature <= 0 || s.topK === 1
      ? t().greedyRule
      : t().rule(s.temperature, used.join(t().and));
  // Rebuilt, the bars keep keyboard focus on the alternative that had it.
  const focused = document.activeElement?.closest?.("#bars")
    ? document.activeElement.dataset.token
    : null;
  $("bars").replaceChildren(
    ...step.top.slice(0, TOP).map((c, j) => {
      const p = Math.exp(c.logprob);
      const bar = el("span", { className: "bar" });
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      const piece = state.pieces.get(c.token);
      const label = piece ? shown(piece) : visible(c.text);
      const b = el(
        "button",
        { type: "button", onclick: () => branch(i, c) },
        el("span", { className: "mark", textContent: c.token === step.token ? "✓" : "" }),
        el("span", { className: "label", textContent: label }),
        el("span", { className: "track" }, bar),
        el("span", { className: "pct", textContent: pct(p) }),
        // At temperature 0 the rule above says why; each bar need not repeat it.
        el("span", {
          className: "why",
          textContent: why[j] && why[j] !== "greedy" ? t().cut[why[j]] : "",
        }),
      );
      b.dataset.token = c.token;
      b.dataset.p = String(p);
      if (why[j]) b.dataset.cut = why[j];
      b.setAttribute(
        "aria-label",
        `${label} ${pct(p)}${c.token === step.token ? `, ${t().chosen}` : ""}${why[j] ? `, ${t().cut[why[j]]}` : ""}`,
      );
      if (c.token === step.token) b.setAttribute("aria-current", "true");
      return el("li", {}, b);
    }),
  );
  if (focused) $("bars").querySelector(`[data-token="${focused}"]`)?.focus();
  const box = $("choices");
  // Where the alternatives do not fit on screen (below the settings at a projector's size,
  // below the text on a phone), bring them into view.
  const { top, bottom } = box.getBoundingClientRect();
  if (focus && (bottom > innerHeight || top < 0)) box.scrollIntoView({ block: "nearest" });
}

/** Replaces step `i` by the alternative `c` and lets the model write on from there. */
async function branch(i, c) {
  if (state.run) return;
  const step = state.steps[i];
  state.steps = [...state.steps.slice(0, i), { ...step, token: c.token, text: c.text, chosen: c }];
  state.finish = null;
  renderOutput();
  showChoices(i, false);
  // Keyboard focus stays on the alternative chosen, not on the rebuilt page.
  $("bars").querySelector("[aria-current=true]")?.focus();
  await generate(Math.max(8, settings().maxTokens - state.steps.length));
}

async function generate(maxTokens) {
  if (!state.engine || state.run) return;
  // This run is the page's until a new prompt, a new model or a new run supersedes it;
  // after that it touches nothing.
  const engine = state.engine;
  const run = { controller: new AbortController() };
  state.run = run;
  const mine = () => state.run === run && state.engine === engine;
  for (const id of ["generate", "redraw"]) $(id).disabled = true;
  $("stop").hidden = false;
  const fresh = maxTokens === undefined;
  if (fresh) {
    await showPromptTokens();
    if (!mine()) return;
    state.steps = [];
    showChoices(-1);
    renderOutput();
  }
  const s = settings();
  state.finish = null;
  showFinish();
  $("output").dataset.state = "running";
  $("output").setAttribute("aria-busy", "true");
  const wrote = state.steps.length;
  try {
    const ids = [...state.promptIds, ...state.steps.map((x) => x.token)];
    // Enough alternatives to know what top-k keeps (the bars show the first TOP).
    const topLogprobs = Math.min(100, Math.max(TOP, s.topK));
    const pieces = engine.generate(
      { ids },
      { ...s, maxTokens: maxTokens ?? s.maxTokens, topLogprobs, signal: run.controller.signal },
    );
    for await (const piece of pieces) {
      if (!mine()) return;
      state.steps.push({ ...piece, settings: s });
      appendStep(state.steps.length - 1);
    }
    const r = await pieces.result;
    if (!mine()) return;
    state.finish = { reason: r.finishReason, count: state.steps.length - wrote };
    state.lastStats = r.stats;
  } catch (e) {
    if (!mine()) return;
    state.finish = { reason: e.code === "aborted" ? "aborted" : "error" };
    if (e.code !== "aborted") $("finish").textContent = `${e.code} : ${e.message}`;
  } finally {
    if (mine())
      await learnPieces(
        state.steps.flatMap((x) => [x.token, ...x.top.slice(0, TOP).map((c) => c.token)]),
      ).catch(() => {});
    if (mine()) {
      state.run = null;
      $("output").dataset.state = "done";
      $("output").setAttribute("aria-busy", "false");
      finishOutput();
      if (state.finish?.reason !== "error") showFinish();
      showStats();
      showCost();
      if (state.selected >= 0) showChoices(state.selected, false);
      for (const id of ["generate", "redraw"]) $(id).disabled = false;
      $("stop").hidden = true;
    }
  }
}

/** Stops and forgets the run in progress (the prompt or the model changed under it). */
function dropRun() {
  state.run?.controller.abort();
  state.run = null;
  for (const id of ["generate", "redraw"]) $(id).disabled = !state.engine;
  $("stop").hidden = true;
  $("output").dataset.state = "idle";
  $("output").setAttribute("aria-busy", "false");
}

async function showOfflineState() {
  const sw = navigator.serviceWorker?.controller;
  const cached = (await listCachedModels().catch(() => [])).length > 0;
  $("offline-state").textContent = sw && cached ? t().offline : "";
}

// --- the other bundled model, for the chat and languages views -----------------------------

/** An address as the page resolves it, so that "models/x.gguf" and its full URL are one model. */
const absolute = (u) => (typeof u === "string" ? new URL(u, location.href).href : u);

/** The engine for bundled model `m`: the page's own when it is that model, else a second one. */
function engineFor(m) {
  const url = absolute(m.url);
  if (state.model === url && state.engine) return Promise.resolve(state.engine);
  let peer = state.peers.get(url);
  if (!peer) {
    peer = createEngine({ model: m.url, sha256: m.sha256, contextLength: 1024 });
    state.peers.set(url, peer);
    peer.then(
      (engine) => {
        // Its download, if any, and what it fetches later count on the network meter.
        if (engine.info.source === "network") countRequest(url);
        engine.onRequest(countRequest);
        state.peersReady.set(url, engine);
      },
      () => state.peers.delete(url),
    );
  }
  return peer;
}

/** One more request on the network meter. */
function countRequest(url) {
  if (url === undefined) return;
  state.requests = [...state.requests, url];
  $("network").textContent = t().network(state.requests.length);
}

// --- base or instruct --------------------------------------------------------------------

async function askBoth(question) {
  const pair = $("chat-pair");
  $("chat-ask").disabled = true;
  try {
    const columns = BUNDLED.map((m) => {
      const col = el(
        "article",
        { className: "chat-col" },
        el("h3", { textContent: `${m.name} · ${t()[m.kind]}` }),
        el("p", { className: "help", textContent: t().loadingPeer(m.name) }),
      );
      col.dataset.kind = m.kind;
      return col;
    });
    pair.replaceChildren(...columns);
    for (const [j, m] of BUNDLED.entries()) {
      const col = columns[j];
      const engine = await engineFor(m);
      const messages = [{ role: "user", content: question }];
      const ids = await engine.encodeChat(messages);
      const pieces = await engine.tokenPieces(ids);
      const tokens = el(
        "div",
        { className: "tokens chat-prompt" },
        ...ids.map((id, k) =>
          el(
            "span",
            {
              className: `tok${pieces[k].special ? " special" : ""}`,
              title: pieces[k].special ? `${t().special}, id ${id}` : `id ${id}`,
            },
            el("span", { textContent: shown(pieces[k]) }),
          ),
        ),
      );
      const answer = el("p", { className: "chat-answer" });
      col.replaceChildren(
        col.firstChild,
        el("p", {
          className: "help",
          textContent: engine.info.chatTemplate === "file" ? t().chatInstruct : t().chatBase,
        }),
        el("h4", { textContent: `${t().chatReads} (${t().tokens(ids.length)})` }),
        tokens,
        el("h4", { textContent: t().chatAnswer }),
        answer,
      );
      const run = engine.generate(
        { messages },
        { temperature: 0, maxTokens: 48, repeatPenalty: m.kind === "base" ? 1.3 : 1 },
      );
      for await (const piece of run) answer.append(piece.text);
      const r = await run.result;
      answer.append(
        el("small", {
          className: "help",
          textContent: ` ${r.finishReason === "stop" ? `⟨${t().endOfText}⟩` : "…"} ${costSummary(r.stats, state.lang)}`,
        }),
      );
    }
  } catch (e) {
    pair.append(el("p", { className: "detail", textContent: `${e.code} : ${e.message}` }));
  } finally {
    $("chat-ask").disabled = false;
  }
}

// --- how surprised is the model? ---------------------------------------------------------

async function measureSurprise(text) {
  if (!state.engine) return;
  $("surprise-go").disabled = true;
  $("surprise-tokens").replaceChildren();
  $("surprise-detail").textContent = "";
  try {
    const score = await state.engine.score(text, {
      topLogprobs: 5,
      onProgress: ({ done, total }) => {
        $("surprise-status").textContent = t().surpriseReading(done, total);
      },
    });
    await learnPieces(score.tokens.flatMap((x) => [x.id, ...(x.top ?? []).map((c) => c.id)]));
    state.surprise = score;
  } catch (e) {
    state.surprise = null;
    $("surprise-status").textContent = `${e.code} : ${e.message}`;
    return;
  } finally {
    $("surprise-go").disabled = !state.engine;
  }
  showSurprise();
}

/** Surprise in bits of a natural-log probability. */
const bits = (logprob) => -logprob / Math.LN2;

function showSurprise() {
  const score = state.surprise;
  $("surprise-legend").textContent = score ? t().surpriseLegend : "";
  $("surprise-detail").textContent = "";
  if (!score) {
    $("surprise-tokens").replaceChildren();
    return;
  }
  const n = score.tokens.length - 1;
  $("surprise-status").textContent = t().surpriseDone(
    score.perplexity,
    n,
    score.stats.tokensPerSecond,
  );
  const describe = (x) => {
    const piece = state.pieces.get(x.id);
    const text = piece ? shown(piece) : visible(x.text);
    if (x.logprob == null) return t().surpriseFirst(text);
    const alts = (x.top ?? [])
      .map(
        (c) => `${shown(state.pieces.get(c.id) ?? { text: c.text })} ${pct(Math.exp(c.logprob))}`,
      )
      .join(", ");
    return t().surpriseToken(text, bits(x.logprob), pct(Math.exp(x.logprob)), alts);
  };
  $("surprise-tokens").replaceChildren(
    ...score.tokens.map((x, i) => {
      const piece = state.pieces.get(x.id);
      const b = el("button", {
        type: "button",
        className: `tok${piece?.special ? " special" : ""}`,
        textContent: piece?.special ? piece.text : written(piece?.bytes ? shown(piece) : x.text),
      });
      const surprise = x.logprob == null ? 0 : bits(x.logprob);
      // 0 to 12 bits: white to red.
      b.style.setProperty("--heat", String(Math.min(1, Math.max(0, surprise / 12))));
      b.dataset.bits = x.logprob == null ? "" : surprise.toFixed(3);
      b.dataset.index = i;
      b.title = describe(x);
      b.setAttribute("aria-label", describe(x));
      const show = () => {
        $("surprise-detail").textContent = describe(x);
      };
      b.onfocus = show;
      b.onmouseenter = show;
      b.onclick = show;
      return b;
    }),
  );
}

// --- languages and tokens ----------------------------------------------------------------

// The table's rows are built when the list of languages or of models changes; a sentence
// edited updates its own counts, so typing is never interrupted.
let languagesTimer = 0;
let countsAsked = 0;

/** The loaded engines to count with: the page's, then any second one already loaded. */
function countingEngines() {
  if (!state.engine) return [];
  const others = [...state.peersReady].filter(([url]) => url !== state.model);
  return [
    [state.engine.info.name ?? "?", state.engine],
    ...others.map(([, e]) => [e.info.name ?? "?", e]),
  ];
}

function showLanguages() {
  if ($("view-languages").hidden) return;
  const engines = countingEngines();
  $("languages")
    .querySelector("thead tr")
    .replaceChildren(
      el("th", { textContent: t().language }),
      el("th", { textContent: t().sentence }),
      ...engines.map(([name]) => el("th", { textContent: name })),
    );
  const rows = state.rows.map((row) => {
    const lang = el("input", { value: row.language });
    lang.setAttribute("aria-label", t().language);
    lang.oninput = () => {
      row.language = lang.value;
    };
    const sentence = el("textarea", { value: row.sentence, rows: 2 });
    sentence.setAttribute("aria-label", `${t().sentence} (${row.language})`);
    const cells = engines.map(([name]) => el("td", { className: "counted" }, name));
    sentence.oninput = () => {
      row.sentence = sentence.value;
      clearTimeout(languagesTimer);
      languagesTimer = setTimeout(() => countRow(row, cells, engines), 250);
    };
    countRow(row, cells, engines);
    return el("tr", {}, el("td", {}, lang), el("td", {}, sentence), ...cells);
  });
  $("languages")
    .querySelector("tbody")
    .replaceChildren(...rows);
}

/** Fills `cells` with `row`'s token count and pieces under each engine; a later ask wins. */
async function countRow(row, cells, engines) {
  const asked = ++countsAsked;
  row.asked = asked;
  try {
    const counted = await Promise.all(
      engines.map(async ([, engine]) => {
        const pieces = await engine.tokenPieces(await engine.tokenize(row.sentence));
        return pieces.filter((p) => !p.special);
      }),
    );
    if (row.asked !== asked) return;
    for (const [j, real] of counted.entries())
      cells[j].replaceChildren(
        el("small", { className: "model-name", textContent: `${engines[j][0]} · ` }),
        el("strong", { className: "count", textContent: t().tokens(real.length) }),
        el(
          "div",
          { className: "tokens" },
          ...real.map((p) => el("span", { className: "tok", textContent: shown(p) })),
        ),
      );
  } catch (e) {
    if (row.asked === asked) cells[0]?.replaceChildren(`${e.code} : ${e.message}`);
  }
}

// --- tabs --------------------------------------------------------------------------------

const TABS = ["write", "chat", "surprise", "languages"];
function selectTab(name, focus = false) {
  for (const n of TABS) {
    const tab = $(`tab-${n}`);
    tab.setAttribute("aria-selected", String(n === name));
    tab.tabIndex = n === name ? 0 : -1;
    $(`view-${n}`).hidden = n !== name;
  }
  if (focus) $(`tab-${name}`).focus();
  if (name === "languages") {
    // Both bundled models, so the counts compare: the second one joins once loaded.
    for (const m of BUNDLED)
      if (absolute(m.url) !== state.model && !state.peersReady.has(absolute(m.url)))
        engineFor(m).then(showLanguages, () => {});
    showLanguages();
  }
}
for (const [i, n] of TABS.entries()) {
  const tab = $(`tab-${n}`);
  tab.onclick = () => selectTab(n);
  tab.onkeydown = (e) => {
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    selectTab(TABS[(to + TABS.length) % TABS.length], true);
  };
}

// --- wiring ------------------------------------------------------------------------------

for (const b of document.querySelectorAll("[data-lang]")) {
  b.onclick = () => {
    state.lang = b.dataset.lang;
    localStorage.setItem("ouvert-demo-lang", state.lang);
    applyLanguage();
  };
}
for (const id of ["temperature", "topK", "topP", "minP", "maxTokens"]) $(id).oninput = showSettings;
$("prompt").oninput = () => {
  // What was written followed the old text: it no longer belongs to this one.
  if (state.run || state.steps.length > 0) {
    dropRun();
    state.steps = [];
    state.finish = { reason: "stale" };
    showChoices(-1);
    showFinish();
  }
  renderOutput();
  clearTimeout(tokenizeTimer);
  tokenizeTimer = setTimeout(showPromptTokens, 150);
};
$("generate").onclick = () => generate();
$("redraw").onclick = () => {
  $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
  generate();
};
$("stop").onclick = () => state.run?.controller.abort();
$("chat-form").onsubmit = (e) => {
  e.preventDefault();
  askBoth($("chat-question").value.trim() || t().chatDefault);
};
$("surprise-form").onsubmit = (e) => {
  e.preventDefault();
  measureSurprise($("surprise-text").value);
};
$("languages-add").onclick = () => {
  state.rows.push({ language: t().newLanguage, sentence: "" });
  showLanguages();
};
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
