// How far llama.cpp's own wasm build (wllama) is from native llama.cpp on the reference
// prompts, beside Ouvert's wasm build: the question tests/reference.rs asks. For each
// prompt and engine, the greedy steps equal to the reference's, and the reference's top-5
// first-position logits against the engine's log-probabilities, both centered on the top
// token (softmax drops a common shift, so log-probabilities give logit differences exactly).
//   ./build.sh build && node benches/wllama-numerics.mjs [threads]
import { startBrowser, ROOT, MODEL, reference } from "../tests/browser/util.mjs";
import { join } from "node:path";

const threads = Number(process.argv[2] ?? 1);
const ref = reference();
const env = await startBrowser({
  mounts: {
    "/wllama": join(ROOT, "node_modules/@wllama/wllama/esm"),
    "/bench": join(ROOT, "benches"),
  },
});
const page = await env.context.newPage();
page.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
await page.goto(`${env.origin}/bench/compare.html`);
await page.waitForFunction(() => window.benchReady);
const prompts = ref.prompts.map((p) => ({
  id: p.id,
  text: p.text,
  ids: p.llama_cpp.prompt_ids,
  greedy: p.llama_cpp.greedy_ids,
}));
const TOP = 20; // enough to hold the reference's top 5
const out = await page.evaluate(
  async ({ url, prompts, threads, top }) => {
    const { Wllama } = await import("/wllama/index.js");
    const w = new Wllama(
      { default: "/wllama/wasm/wllama.wasm" },
      { logger: { debug() {}, log() {}, info() {}, warn() {}, error: console.error } },
    );
    await w.loadModelFromUrl(new URL(url, location.href).href, {
      n_ctx: 1024,
      n_threads: threads,
      n_gpu_layers: 0,
      useCache: true,
    });
    const res = [];
    for (const p of prompts) {
      const r = await w.createCompletion({
        prompt: p.text,
        max_tokens: p.greedy.length,
        temperature: 0,
        logprobs: top,
        ignore_eos: true,
        cache_prompt: false,
      });
      const steps = r.choices[0].logprobs.content;
      res.push({
        engine: "wllama",
        id: p.id,
        promptTokens: r.usage.prompt_tokens,
        tokens: steps.map((s) => s.id),
        first: Object.fromEntries(steps[0].top_logprobs.map((t) => [t.id, t.logprob])),
      });
    }
    await w.exit();
    const { createEngine } = await import("/www/ouvert.js");
    const o = await createEngine({ model: url, backend: "wasm", contextLength: 1024, threads });
    for (const p of prompts) {
      const pieces = [];
      const r = await o.complete(
        { ids: p.ids },
        {
          maxTokens: p.greedy.length,
          temperature: 0,
          topLogprobs: top,
          stopAtEos: false,
          onPiece: (piece) => pieces.push(piece),
        },
      );
      res.push({
        engine: "ouvert",
        id: p.id,
        promptTokens: r.promptTokens.length,
        tokens: r.tokens,
        first: Object.fromEntries(pieces[0].top.map((t) => [t.token, t.logprob])),
      });
    }
    await o.dispose();
    return res;
  },
  { url: `/models/${MODEL}`, prompts, threads, top: TOP },
);
await env.close();

const summary = {};
for (const r of out) {
  const want = ref.prompts.find((p) => p.id === r.id).llama_cpp;
  if (r.promptTokens !== want.n_prompt)
    throw new Error(
      `${r.engine} read ${r.promptTokens} prompt tokens for ${r.id}, llama.cpp ${want.n_prompt}`,
    );
  const same = r.tokens.findIndex((t, i) => t !== want.greedy_ids[i]);
  const steps = same < 0 ? r.tokens.length : same;
  const top = want.top5_first[0].logit;
  const diffs = want.top5_first.map((t) => {
    const lp = r.first[t.id];
    return lp === undefined ? null : lp - r.first[want.top5_first[0].id] - (t.logit - top);
  });
  const worst = Math.max(...diffs.filter((d) => d !== null).map(Math.abs));
  const firstTie = want.step_margin.findIndex((m) => m < 0.1);
  summary[r.engine] ??= { toFirstTie: 0, worst: 0 };
  const s = summary[r.engine];
  s.toFirstTie += steps >= (firstTie < 0 ? want.greedy_ids.length : firstTie);
  s.worst = Math.max(s.worst, worst);
  console.log(
    `${r.engine.padEnd(7)} ${r.id.padEnd(18)} greedy equal for ${String(steps).padStart(2)} steps (reference margin there ${want.step_margin[steps] ?? "-"}; first 0.1 margin at ${firstTie < 0 ? "none" : firstTie}); top-5 centered logits off by ≤${worst.toFixed(3)} [${diffs.map((d) => (d === null ? "absent" : d.toFixed(3))).join(" ")}]`,
  );
}
for (const [engine, s] of Object.entries(summary)) {
  console.log(
    `${engine}: greedy equal up to the first 0.1 margin on ${s.toFirstTie} of ${ref.prompts.length} prompts; centered top-5 logits off by ≤${s.worst.toFixed(3)}`,
  );
}
