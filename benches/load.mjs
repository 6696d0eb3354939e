// Load and first token through the public API (createEngine, engine in a worker): cold
// (network), cached (OPFS, several rounds and their median) and from a Blob, with the time
// each progress phase starts. Chromium runs on a profile on disk, as a visitor's does (its
// off-the-record contexts keep the cache in memory, read through another process: twice
// as slow); BENCH_INCOGNITO=1 measures that instead. Cached rounds run in the page that made
// the cold load, as a site's later engines do; BENCH_FRESH_PAGE=1 loads the page again
// before each, as a visitor's next visit does (nothing compiled carried over).
//   ./build.sh build && node benches/load.mjs [threads] [cached rounds]
import { startBrowser } from "../tests/browser/util.mjs";
const env = await startBrowser({ profile: process.env.BENCH_INCOGNITO !== "1" });
const page = await env.context.newPage();
await page.goto(`${env.origin}/api.html`);
await page.waitForFunction(() => window.apiReady);
const threads = Number(process.argv[2] ?? 1);
const cachedRounds = Number(process.argv[3] ?? 2);
const firsts = [];
for (const round of ["cold", ...Array(cachedRounds).fill("cached"), "blob"]) {
  if (round !== "cold" && process.env.BENCH_FRESH_PAGE === "1") {
    await page.reload();
    await page.waitForFunction(() => window.apiReady);
  }
  const r = await page.evaluate(
    async ({ round, threads }) => {
      const marks = {};
      let model = "/models/gemma-3-270m-q4_k_m.gguf";
      if (round === "blob") {
        const res = await fetch(model);
        model = await res.blob();
      }
      const t1 = performance.now();
      const e = await Ouvert.createEngine({
        model,
        threads,
        onProgress: (p) => {
          marks[p.phase] ??= performance.now() - t1;
          if (p.phase === "load" && p.loaded === p.total) marks.loaded = performance.now() - t1;
        },
      });
      const ready = performance.now() - t1;
      const out = await e.complete("The quick brown fox jumps over the lazy dog.", {
        maxTokens: 1,
        temperature: 0,
      });
      const first = performance.now() - t1;
      await e.dispose();
      return {
        threads: e.info.threads,
        marks,
        ready,
        first,
        ttftEngine: out.stats.timeToFirstTokenMs,
      };
    },
    { round, threads },
  );
  if (round === "cached") firsts.push(r.first);
  console.log(
    round,
    JSON.stringify(r, (_k, v) => (typeof v === "number" ? Math.round(v) : v)),
  );
}
firsts.sort((a, b) => a - b);
const median =
  firsts.length % 2
    ? firsts[firsts.length >> 1]
    : (firsts[firsts.length / 2 - 1] + firsts[firsts.length / 2]) / 2;
console.log(
  `cached, load + first token: median ${Math.round(median)} ms over ${firsts.length} rounds (${firsts.map(Math.round).join(", ")})`,
);
await env.close();
