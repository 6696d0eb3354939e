// Load and first token through the public API (createEngine, engine in a worker): cold
// (network), cached (OPFS) and from a Blob, with the time each progress phase starts.
//   ./build.sh build && node benches/load.mjs [threads]
import { startBrowser } from "../tests/browser/util.mjs";
const env = await startBrowser();
const page = await env.context.newPage();
await page.goto(`${env.origin}/api.html`);
await page.waitForFunction(() => window.apiReady);
const threads = Number(process.argv[2] ?? 1);
for (const round of ["cold", "cached", "cached", "blob"]) {
  const r = await page.evaluate(async ({ round, threads }) => {
    const marks = {};
    const t0 = performance.now();
    let model = "/models/gemma-3-270m-q4_k_m.gguf";
    if (round === "blob") { const res = await fetch(model); model = await res.blob(); }
    const t1 = performance.now();
    const e = await Ouvert.createEngine({ model, threads, onProgress: (p) => { marks[p.phase] ??= performance.now() - t1; } });
    const ready = performance.now() - t1;
    const out = await e.complete("The quick brown fox jumps over the lazy dog.", { maxTokens: 1, temperature: 0 });
    const first = performance.now() - t1;
    await e.dispose();
    return { threads: e.info.threads, marks, ready, first, ttftEngine: out.stats.timeToFirstTokenMs };
  }, { round, threads });
  console.log(round, JSON.stringify(r, (k, v) => typeof v === "number" ? Math.round(v) : v));
}
await env.close();
