// Ouvert (wasm) against wllama (llama.cpp in wasm) in the same headless Chromium, same
// GGUF, same server, alternating A B A B: load (network, then cache), time to first token,
// prefill of a 128- and a 512-token prompt, greedy decode of 128 tokens, peak memory, and
// runtime size. Prints a table (per-round Ouvert/wllama ratios and their median) and JSON.
//   ./build.sh bench   (or: ./build.sh build && [BENCH_MODEL=file.gguf] node benches/vs-wllama.mjs [rounds] [threads])
import { startBrowser, ROOT, MODEL, reference } from "../tests/browser/util.mjs";
import { join } from "node:path";
import { writeFileSync, readFileSync, readdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { execFileSync } from "node:child_process";

const rounds = Number(process.argv[2] ?? 3);
const threads = Number(process.argv[3] ?? 1);
// The model: the default one, or BENCH_MODEL (a file name in models/, such as the instruct model).
const model = process.env.BENCH_MODEL ?? MODEL;
const out =
  process.env.BENCH_JSON ??
  join(ROOT, `target/bench-vs-wllama-${model.replace(/\.gguf$/, "")}-${threads}t.json`);

// Prompts of known length: a long French reference text cut to n tokens (BOS included),
// with a per-run number in front so no engine can reuse a cached prefix.
const text = reference().prompts.find((p) => p.id === "french_long").text;
const long = Array(8).fill(text).join("\n\n");

const mounts = {
  "/wllama": join(ROOT, "node_modules/@wllama/wllama/esm"),
  "/bench": join(ROOT, "benches"),
};
async function openPage() {
  // A profile on disk, as a visitor has: each engine caches the model there.
  const env = await startBrowser({ mounts, profile: true });
  const page = await env.context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
  await page.goto(`${env.origin}/bench/compare.html`);
  await page.waitForFunction(() => window.benchReady);
  return { env, page };
}

// Resident memory of this machine's Chromium processes (bytes by pid): wasm memory lives in
// a worker of the renderer, out of reach of the page's own memory API.
function chromiumRss() {
  const out = execFileSync("ps", ["-C", "chromium", "-o", "pid=,rss="], { encoding: "utf8" });
  return new Map(
    out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).map(Number))
      .map(([pid, kb]) => [pid, kb * 1024]),
  );
}

// Cut the text to n tokens with the model's tokenizer (the same vocabulary in both engines).
const cut = await (async () => {
  const { env, page } = await openPage();
  const r = await page.evaluate(
    async ({ url, long }) => {
      const { createEngine } = await import("/www/ouvert.js");
      const e = await createEngine({ model: url, backend: "wasm", contextLength: 2048 });
      const ids = await e.tokenize(long);
      const r = {
        p128: await e.detokenize(ids.slice(0, 120)),
        p512: await e.detokenize(ids.slice(0, 500)),
      };
      await e.dispose();
      return r;
    },
    { url: `/models/${model}`, long },
  );
  await env.close();
  return r;
})();

// Each run in a fresh browser: an empty cache, and memory measured from a clean baseline.
// With threads, Ouvert on one thread too: the threaded build's gain in the same run.
const engines = threads > 1 ? ["ouvert", "wllama", "ouvert1"] : ["ouvert", "wllama"];
const results = Object.fromEntries(engines.map((e) => [e, []]));
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 ? [...engines].reverse() : engines) {
    const tag = `Run ${round}.`;
    const runs = [
      [`${tag} Hello`, 1],
      [`${tag} ${cut.p128}`, 1],
      [`${tag} ${cut.p512}`, 1],
      [`${tag} The weather today`, 128],
    ];
    const others = new Set(chromiumRss().keys());
    const { env, page } = await openPage();
    const args = { name, url: `/models/${model}`, threads, runs };
    const coldMs = await page.evaluate(
      ({ name, url, threads }) => window.coldLoad(name, url, 2048, threads),
      args,
    );
    await new Promise((resolve) => setTimeout(resolve, 2000)); // the disposed worker's memory goes back
    const ours = () =>
      [...chromiumRss()].filter(([pid]) => !others.has(pid)).reduce((a, [, b]) => a + b, 0);
    const base = ours();
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, ours());
    }, 100);
    const r = await page.evaluate(
      ({ name, url, threads, runs }) => window.bench(name, url, 2048, threads, runs),
      args,
    );
    clearInterval(sampler);
    await env.close();
    const row = {
      coldMs,
      cachedMs: r.cachedMs,
      ttftMs: r.runs[0].ttftMs,
      cachedFirstTokenMs: r.cachedMs + r.runs[0].ttftMs,
      prefill128: r.runs[1].prefill,
      prompt128: r.runs[1].promptTokens,
      prefill512: r.runs[2].prefill,
      prompt512: r.runs[2].promptTokens,
      decode: r.runs[3].decode,
      decoded: r.runs[3].tokens,
      peakMB: (peak - base) / 1e6,
    };
    results[name].push(row);
    console.log(
      `round ${round} ${name.padEnd(6)} ${JSON.stringify(row, (_k, v) => (typeof v === "number" ? Math.round(v * 10) / 10 : v))}`,
    );
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const metrics = [
  ["coldMs", "load from the network (ms)", false],
  ["cachedMs", "load from the cache (ms)", false],
  ["ttftMs", "first token, 2-token prompt (ms)", false],
  ["cachedFirstTokenMs", "cached load + first token (ms)", false],
  ["prefill128", "prefill, 128 tokens (tok/s)", true],
  ["prefill512", "prefill, 512 tokens (tok/s)", true],
  ["decode", "decode, 128 tokens (tok/s)", true],
  ["peakMB", "peak memory: the browser's RSS growth over a cached load and the runs (MB)", false],
];
const size = (files) =>
  files.reduce(
    (a, f) => {
      const b = readFileSync(join(ROOT, f));
      return { raw: a.raw + b.length, gz: a.gz + gzipSync(b, { level: 9 }).length };
    },
    { raw: 0, gz: 0 },
  );
const sizes = {
  // With threads, the page loads the threaded build (and its worker-pool snippet) instead;
  // Chromium has relaxed SIMD.
  ouvert: size([
    ...(threads > 1
      ? readdirSync(join(ROOT, "www/wasm-mt-relaxed"), { recursive: true })
          .map((f) => `www/wasm-mt-relaxed/${f}`)
          .filter((f) => /\.(js|wasm)$/.test(f))
      : ["www/wasm-relaxed/ouvert_bg.wasm", "www/wasm-relaxed/ouvert.js"]),
    "www/ouvert.js",
    threads > 1 ? "www/worker-mt-relaxed.js" : "www/worker-relaxed.js",
    "www/worker-core.js",
    "www/store.js",
  ]),
  wllama: size([
    "node_modules/@wllama/wllama/esm/wasm/wllama.wasm",
    "node_modules/@wllama/wllama/esm/index.js",
  ]),
};
const table = [
  `| metric (${threads} thread${threads > 1 ? "s" : ""}) | Ouvert | wllama | Ouvert/wllama per round | median ratio |`,
  "|---|---|---|---|---|",
];
for (const [key, label, higherBetter] of metrics) {
  const ratios = results.ouvert.map((o, i) => o[key] / results.wllama[i][key]);
  const fmt = (rows) => median(rows.map((r) => r[key])).toFixed(1);
  table.push(
    `| ${label} | ${fmt(results.ouvert)} | ${fmt(results.wllama)} | ${ratios.map((r) => r.toFixed(2)).join(" ")} | ${median(ratios).toFixed(2)}${higherBetter ? "" : " (lower is better)"} |`,
  );
}
table.push(
  `| runtime, raw / gzip (bytes) | ${sizes.ouvert.raw} / ${sizes.ouvert.gz} | ${sizes.wllama.raw} / ${sizes.wllama.gz} | | ${(sizes.ouvert.gz / sizes.wllama.gz).toFixed(2)} (gzip) |`,
);
if (threads > 1) {
  table.push(
    "",
    `| Ouvert ${threads} threads / Ouvert 1 thread | per round | median |`,
    "|---|---|---|",
  );
  for (const [key, label] of metrics.filter(([, , higher]) => higher)) {
    const ratios = results.ouvert.map((o, i) => o[key] / results.ouvert1[i][key]);
    table.push(
      `| ${label} | ${ratios.map((r) => r.toFixed(2)).join(" ")} | ${median(ratios).toFixed(2)} |`,
    );
  }
}
console.log(`${model}, ${threads} thread(s):\n${table.join("\n")}`);
writeFileSync(
  out,
  JSON.stringify(
    { date: new Date().toISOString(), model, threads, rounds, results, sizes },
    null,
    2,
  ),
);
console.log(`JSON in ${out}`);
