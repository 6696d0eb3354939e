// What a page tells a visitor about a model and its answers, in French or English: where the
// model comes from (its card, as its file states it), what an answer cost (tokens, time,
// bytes read, the energy range the engine estimated in `stats.cost`, and how that range is
// computed from the figures in `info.energy`: the arithmetic is src/cost.rs's), and the
// network requests made since the model loaded. Shared by the widget and the site.

const WORDS = {
  en: {
    tokens: (n) => `${n} token${n === 1 ? "" : "s"}`,
    read: "read",
    to: "to",
    summary: "How is this computed?",
    method: (m) => [
      `The energy is estimated from what the model did on ${m.device}: every byte it read from memory (its weights, read once per step, and its attention cache) at ${m.perByte} picojoules, plus every multiply-add at ${m.perOp} picojoules.`,
      "Those are published figures; the range is wide because they span hardware generations. The screen, the rest of the device and the model's download are not counted.",
      `For scale: ${m.hosted}.`,
    ],
    cpu: "this device's processor",
    gpu: "this device's graphics card",
    hosted: (h, wh) => `${wh} for ${h.what}, as published by ${h.source}`,
    sources: "Sources:",
    by: "By",
    page: "Page",
    base: "Base model",
    license: "Licence",
    source: "Source",
    datasets: "Training data",
    unstated: "not stated in the file",
  },
  fr: {
    tokens: (n) => `${n} jeton${n > 1 ? "s" : ""}`,
    read: "lus",
    to: "à",
    summary: "Comment est-ce calculé ?",
    method: (m) => [
      `L’énergie est estimée d’après ce que le modèle a fait sur ${m.device} : chaque octet lu en mémoire (ses poids, lus une fois par étape, et son cache d’attention) compte de ${m.perByte} picojoules, et chaque multiplication-addition de ${m.perOp} picojoules.`,
      "Ce sont des chiffres publiés ; la fourchette est large car ils couvrent plusieurs générations de matériel. L’écran, le reste de l’appareil et le téléchargement du modèle ne sont pas comptés.",
      `Pour comparer : ${m.hosted}.`,
    ],
    cpu: "le processeur de cet appareil",
    gpu: "la carte graphique de cet appareil",
    hosted: (h, wh) =>
      `${wh} pour une requête texte médiane à Gemini (mai 2025), selon ${h.source}`,
    sources: "Sources\u00a0:",
    by: "Par",
    page: "Page",
    base: "Modèle de base",
    license: "Licence",
    source: "Source",
    datasets: "Données d’entraînement",
    unstated: "non indiqué dans le fichier",
  },
};

const words = (lang) => WORDS[String(lang).slice(0, 2)] ?? WORDS.en;
const locale = (lang) => (String(lang).startsWith("fr") ? "fr" : "en");

/** `x` with two significant digits, in the language's number format. */
const sig = (x, lang) =>
  x.toLocaleString(locale(lang), { maximumSignificantDigits: 2, useGrouping: true });

/** Bytes in MB or GB (Mo, Go in French), with a no-break space before the unit. */
export function formatBytes(bytes, lang) {
  const fr = locale(lang) === "fr";
  const [value, unit] =
    bytes >= 1e9 ? [bytes / 1e9, fr ? "Go" : "GB"] : [bytes / 1e6, fr ? "Mo" : "MB"];
  return `${sig(value, lang)}\u00a0${unit}`;
}

/** A [low, high] range of joules as "0,3 à 1,4 J (0,000083 à 0,00039 Wh)", in one unit. */
export function formatEnergy([low, high], lang) {
  const w = words(lang);
  const unit = high < 1 ? ["mJ", 1e3] : ["J", 1];
  const range = (a, b, u) => `${sig(a, lang)} ${w.to} ${sig(b, lang)}\u00a0${u}`;
  return `${range(low * unit[1], high * unit[1], unit[0])} (${range(low / 3600, high / 3600, "Wh")})`;
}

/** One line for an answer: "24 tokens · 1.9 s · 6.1 GB read · 18 to 86 mJ (…)". */
export function costSummary(stats, lang = "en") {
  const w = words(lang);
  const seconds =
    stats.timeToFirstTokenMs / 1000 +
    Math.max(0, stats.completionTokens - 1) / (stats.decodeTokensPerSecond || Infinity);
  const { cost } = stats;
  return [
    w.tokens(stats.completionTokens),
    `${sig(seconds, lang)}\u00a0s`,
    `${formatBytes(cost.weightBytes + cost.cacheBytes, lang)} ${w.read}`,
    formatEnergy(cost.joules, lang),
  ].join(" · ");
}

/**
 * How the estimate is computed, for a "how is this computed?" disclosure: paragraphs, and
 * the sources, from `info.energy` (the figures for the backend in use).
 */
export function energyMethod(energy, lang = "en") {
  const w = words(lang);
  const range = ([a, b]) => `${sig(a, lang)} ${w.to} ${sig(b, lang)}`;
  const wh = `${sig(energy.hostedPrompt.wattHours, lang)}\u00a0Wh`;
  return {
    summary: w.summary,
    paragraphs: w.method({
      device: w[energy.device],
      perByte: range(energy.picojoulesPerByte),
      perOp: range(energy.picojoulesPerMultiplyAdd),
      hosted: w.hosted(energy.hostedPrompt, wh),
    }),
    sourcesLabel: w.sources,
    sources: [...energy.sources, energy.hostedPrompt.source],
  };
}

/**
 * Fills a `<details><summary></summary><div></div></details>` with `energyMethod`: the
 * paragraphs, then the sources one per line.
 */
export function showMethod(details, energy, lang = "en") {
  const m = energyMethod(energy, lang);
  details.querySelector("summary").textContent = m.summary;
  const sources = document.createElement("p");
  sources.append(m.sourcesLabel, ...m.sources.flatMap((s) => [document.createElement("br"), s]));
  const paragraphs = m.paragraphs.map((text) => {
    const p = document.createElement("p");
    p.textContent = text;
    return p;
  });
  details.querySelector("div").replaceChildren(...paragraphs, sources);
}

/**
 * The model's provenance as rows `[label, value]` for a card: author, base models,
 * licence, source, datasets, as the file states them ("not stated in the file" otherwise).
 * A value is text, or a link (`{ href, text }`) for an http(s) address.
 */
export function provenanceRows(info, lang = "en") {
  const w = words(lang);
  const origin = (p) => [p.name, p.organization].filter(Boolean).join(", ");
  return [
    [w.by, [info.author, info.organization].filter(Boolean).join(", ") || w.unstated],
    ...(info.baseModels ?? []).map((b) => [w.base, link(b.url, origin(b))]),
    [w.license, link(info.licenseUrl, info.licenseName ?? info.license ?? w.unstated)],
    ...(info.url ? [[w.page, link(info.url, info.url)]] : []),
    [w.source, info.sourceUrl ? link(info.sourceUrl, info.sourceUrl) : w.unstated],
    ...(info.datasets?.length ? [[w.datasets, info.datasets.map((d) => d.name).join(", ")]] : []),
  ];
}

/** `{ href, text }` for an http(s) address from a model file (anything else stays text). */
function link(url, text) {
  try {
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") return { href: u.href, text };
  } catch {}
  return text;
}

/** A card value as a DOM node: a link opens in a new tab on a click and is never fetched before. */
export function valueNode(value) {
  if (typeof value === "string") return document.createTextNode(value);
  const a = document.createElement("a");
  a.textContent = value.text;
  a.href = value.href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

/**
 * The network meter: calls `onChange(urls)` with every request made from now on by this page
 * (its resource timing: fetches, images, scripts, whichever script made them) and by
 * `engine`'s worker. A model answering offline leaves it empty. Returns what stops watching.
 */
export function watchNetwork(engine, onChange) {
  const urls = [];
  const since = performance.now();
  const add = (url) => {
    urls.push(url);
    onChange([...urls]);
  };
  let observer = null;
  try {
    observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.startTime >= since) add(e.name);
    });
    observer.observe({ type: "resource" });
  } catch {
    observer = null; // no resource timing here: the engine's requests only
  }
  const off = engine?.onRequest(add);
  return () => {
    observer?.disconnect();
    off?.();
  };
}
