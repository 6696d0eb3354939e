// engine.score() in headless Chromium (wasm, two threads) on both models: the first 300
// tokens of tests/quality/text.txt against llama.cpp's log-probabilities
// (tests/quality/reference.json), held to llama.cpp's own noise as tests/quality.rs holds
// the native engine (mean KL ≤ 1.5× flash attention on/off, top-1 ≥ 90 %, perplexity
// within 1 % or 1.5× llama.cpp's own on/off ratio over the same positions, whichever is
// wider); progress, abort, and a bad option named.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startBrowser, openApiPage, MODEL, INSTRUCT_MODEL, ROOT } from "./util.mjs";

const PART = 300;
const text = readFileSync(join(ROOT, "tests/quality/text.txt"), "utf8");
const reference = JSON.parse(readFileSync(join(ROOT, "tests/quality/reference.json"), "utf8"));
let env, page;

before(async () => {
  env = await startBrowser();
  page = await openApiPage(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

/** Mean KL over llama.cpp's top 20 and a bucket for the rest, top-1 agreement, perplexity ratio. */
function compare(score, r, n) {
  let kl = 0,
    agree = 0,
    own = 0,
    theirs = 0;
  for (let i = 0; i < n; i++) {
    const ours = score.tokens[i + 1];
    const by = new Map(ours.top.map((t) => [t.id, t.logprob]));
    const floor = ours.top.at(-1).logprob;
    const p = r.top_logprobs[i];
    const q = r.top_ids[i].map((id) => by.get(id) ?? floor);
    const pRest = Math.max(1e-12, 1 - p.reduce((s, l) => s + Math.exp(l), 0));
    const qRest = Math.max(1e-12, 1 - q.reduce((s, l) => s + Math.exp(l), 0));
    kl += p.reduce((s, l, j) => s + Math.exp(l) * (l - q[j]), 0) + pRest * Math.log(pRest / qRest);
    agree += ours.top[0].id === r.top_ids[i][0] ? 1 : 0;
    own -= ours.logprob;
    theirs -= r.logprobs[i];
  }
  const y = r.yardstick;
  const drift = r.logprobs.slice(0, n).reduce((s, l, i) => s + l - y.logprobs_on[i], 0);
  return {
    kl: kl / n,
    top1: agree / n,
    ppl: Math.exp(own / n) / Math.exp(theirs / n),
    yardstick: y.kl.slice(0, n).reduce((s, k) => s + k, 0) / n,
    yardstickPpl: Math.exp(drift / n),
  };
}

/** Scores the first `n` tokens of the quality text with `model` on `backend`, in `on`'s page. */
async function scoreIn(on, model, backend, n, threads) {
  const ids = reference.models[model].ids.slice(0, n);
  return on.evaluate(
    async ({ url, ids, backend, threads }) => {
      const engine = await Ouvert.createEngine({ model: url, backend, threads });
      const progress = [];
      const score = await engine.score(
        { ids },
        { topLogprobs: 100, onProgress: (p) => progress.push(p) },
      );
      const info = engine.info;
      await engine.dispose();
      return { score, progress, backend: info.backend };
    },
    { url: `/models/${model}`, ids, backend, threads },
  );
}

function holdsToReference(model, where, { score }, n) {
  const r = reference.models[model];
  assert.equal(score.tokens.length, n);
  assert.deepEqual(
    score.tokens.map((t) => t.id),
    r.ids.slice(0, n),
  );
  assert.equal(score.tokens[0].logprob, null);
  const q = compare(score, r, n - 1);
  console.log(
    `  ${model} ${where}: KL ${q.kl.toFixed(5)} (${(q.kl / q.yardstick).toFixed(2)}× llama.cpp's flash on/off ${q.yardstick.toFixed(5)}), top-1 ${(q.top1 * 100).toFixed(1)} %, perplexity ×${q.ppl.toFixed(4)} (theirs ×${q.yardstickPpl.toFixed(4)}), ${score.stats.tokensPerSecond.toFixed(1)} tokens/s`,
  );
  assert.ok(q.kl <= 1.5 * q.yardstick, `KL ${q.kl} > 1.5 × ${q.yardstick}`);
  assert.ok(q.top1 >= 0.9, `top-1 ${q.top1}`);
  const pplBound = Math.max(Math.log(1.01), 1.5 * Math.abs(Math.log(q.yardstickPpl)));
  assert.ok(
    Math.abs(Math.log(q.ppl)) <= pplBound,
    `perplexity ×${q.ppl} (llama.cpp against itself ×${q.yardstickPpl})`,
  );
}

for (const model of [MODEL, INSTRUCT_MODEL]) {
  test(`score() in wasm on ${model}: llama.cpp's log-probabilities, within its own noise`, {
    timeout: 300_000,
  }, async () => {
    const out = await scoreIn(page, model, "wasm", PART, 2);
    holdsToReference(model, "in wasm", out, PART);
    const { score, progress } = out;
    assert.ok(progress.length > 3 && progress.at(-1).done < PART, JSON.stringify(progress.at(-1)));
    // Each token comes with its text, and the scoring its cost: every pass read the weights.
    assert.ok(
      score.tokens.some((t) => t.text.trim() === "pain"),
      score.tokens.slice(0, 8).map((t) => t.text),
    );
    assert.ok(score.stats.cost.weightBytes >= progress.length * 200e6, JSON.stringify(score.stats));
  });
}

// WebGPU on SwiftShader (a CPU implementation of Vulkan) reads a few tokens a second: this
// part runs with `./build.sh quality`, not in `./build.sh test`.
const WEBGPU_PART = Number(process.env.OUVERT_QUALITY_WEBGPU_TOKENS ?? 0);
test(`score() on WebGPU (SwiftShader), the first ${WEBGPU_PART} tokens of both models`, {
  timeout: 3_600_000,
  skip: WEBGPU_PART === 0 && "runs with ./build.sh quality (set OUVERT_QUALITY_WEBGPU_TOKENS)",
}, async () => {
  const gpu = await startBrowser({ webgpu: true });
  try {
    const on = await openApiPage(gpu);
    for (const model of [MODEL, INSTRUCT_MODEL]) {
      const out = await scoreIn(on, model, "webgpu", WEBGPU_PART, 1);
      assert.equal(out.backend, "webgpu");
      holdsToReference(model, "on WebGPU (SwiftShader)", out, WEBGPU_PART);
    }
  } finally {
    await gpu.close();
  }
});

test("score(): text in, an abort mid-way, a bad option named; the engine goes on", {
  timeout: 120_000,
}, async () => {
  const r = await page.evaluate(
    async ({ url, text }) => {
      const engine = await Ouvert.createEngine({ model: url, backend: "wasm" });
      const out = {};
      const controller = new AbortController();
      try {
        await engine.score(text, {
          onProgress: ({ done }) => done > 40 && controller.abort(),
          signal: controller.signal,
        });
        out.abort = "resolved";
      } catch (e) {
        out.abort = e.code;
      }
      for (const [k, options] of Object.entries({
        unknown: { topLogprob: 5 },
        tooMany: { topLogprobs: 101 },
        badStride: { stride: 0 },
      })) {
        try {
          await engine.score(text, options);
          out[k] = "resolved";
        } catch (e) {
          out[k] = `${e.code}: ${e.message}`;
        }
      }
      const small = await engine.score("Le pain du samedi.");
      out.after = { n: small.tokens.length, ppl: small.perplexity, first: small.tokens[0] };
      await engine.dispose();
      return out;
    },
    { url: `/models/${MODEL}`, text: text.repeat(2) },
  );
  assert.equal(r.abort, "aborted");
  assert.match(r.unknown, /^invalid_argument: unknown option topLogprob/);
  assert.match(r.tooMany, /^invalid_argument: .*at most 100/);
  assert.match(r.badStride, /^invalid_argument: stride/);
  assert.equal(r.after.first.logprob, null);
  assert.equal(r.after.first.id, 2, "BOS first");
  assert.ok(r.after.n > 4 && r.after.ppl > 1, JSON.stringify(r.after));
});
