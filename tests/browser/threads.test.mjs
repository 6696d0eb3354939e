// The threaded wasm build in headless Chromium, on the real model: a cross-origin isolated
// page splits every mat-mul over a pool of workers, and gets the one-thread build's tokens
// and log-probabilities to the bit; a page that is not isolated runs one thread.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBrowser, reference, mustMatch, MODEL, openApiPage } from "./util.mjs";

const MARGIN = 0.25; // the rule of tests/reference.rs
const SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

let env;
before(async () => {
  env = await startBrowser();
  // The same page without COOP/COEP headers: not cross-origin isolated.
  await env.context.route(/\/api\.html\?plain$/, async (route) => {
    const response = await route.fetch();
    const headers = { ...response.headers() };
    delete headers["cross-origin-opener-policy"];
    delete headers["cross-origin-embedder-policy"];
    await route.fulfill({ response, headers });
  });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

/** Loads the model with `threads`, runs greedy completions with top-5 log-probabilities. */
async function run(page, prompts, threads) {
  return page.evaluate(
    async ({ url, sha256, prompts, threads }) => {
      const engine = await Ouvert.createEngine({
        model: url,
        sha256,
        backend: "wasm",
        contextLength: 1024,
        threads,
      });
      const out = [];
      for (const text of prompts) {
        const pieces = [];
        const gen = engine.generate(text, {
          maxTokens: 16,
          temperature: 0,
          topLogprobs: 5,
          stopAtEos: false,
        });
        for await (const p of gen) pieces.push(p.top);
        out.push({ result: await gen.result, pieces });
      }
      const info = engine.info;
      await engine.dispose();
      return { info, out, cores: navigator.hardwareConcurrency, isolated: crossOriginIsolated };
    },
    { url: `/models/${MODEL}`, sha256: SHA256, prompts, threads },
  );
}

test("an isolated page runs the threads asked for, with the one-thread build's tokens and log-probabilities exactly", {
  timeout: 600_000,
}, async () => {
  const ref = reference();
  const chosen = ref.prompts.slice(0, 3);
  const page = await openApiPage(env);
  const many = await run(
    page,
    chosen.map((p) => p.text),
    2,
  );
  const one = await run(
    page,
    chosen.map((p) => p.text),
    1,
  );
  const byDefault = await run(page, []);
  await page.close();
  // The threaded build without relaxed SIMD, as a browser that lacks it runs.
  const plainPage = await openApiPage(env, "api.html?simd128");
  const plain = await run(
    plainPage,
    chosen.map((p) => p.text),
    2,
  );
  await plainPage.close();
  assert.ok(many.isolated, "the test server sends COOP and COEP");
  assert.equal(many.info.threads, 2);
  assert.equal(one.info.threads, 1);
  assert.equal(plain.info.threads, 2);
  assert.deepEqual(
    [many.info.simd, one.info.simd, plain.info.simd],
    ["relaxed", "relaxed", "simd128"],
    "Chromium validates relaxed SIMD: its builds run, one thread or two, unless the page says it has none",
  );
  assert.equal(
    byDefault.info.threads,
    Math.max(1, Math.floor(byDefault.cores / 2)),
    "by default, half the logical processors",
  );
  const speed = (r) =>
    r.out
      .map(
        (o) =>
          `prefill ${o.result.stats.prefillTokensPerSecond.toFixed(1)} decode ${o.result.stats.decodeTokensPerSecond.toFixed(1)}`,
      )
      .join("; ");
  console.log(`${many.info.threads} threads: ${speed(many)} tok/s\n1 thread: ${speed(one)} tok/s`);
  [...many.out, ...plain.out].forEach((o, j) => {
    const i = j % chosen.length;
    const want = chosen[i].llama_cpp;
    assert.deepEqual(
      o.result.tokens,
      one.out[i].result.tokens,
      `${chosen[i].id}: tokens differ between the builds`,
    );
    assert.deepEqual(
      o.pieces,
      one.out[i].pieces,
      `${chosen[i].id}: log-probabilities differ between the builds`,
    );
    const n = Math.min(mustMatch(want.step_margin, MARGIN), o.result.tokens.length);
    assert.deepEqual(
      o.result.tokens.slice(0, n),
      want.greedy_ids.slice(0, n),
      `${chosen[i].id}: llama.cpp's greedy tokens`,
    );
  });
});

test("a page that is not cross-origin isolated runs one thread, whatever `threads` asks", {
  timeout: 300_000,
}, async () => {
  const page = await openApiPage(env, "api.html?plain");
  const r = await run(page, ["Bonjour"], 2);
  await page.close();
  assert.equal(r.isolated, false);
  assert.equal(r.info.threads, 1);
  assert.equal(r.out[0].result.tokens.length, 16);
});

test("threads must be a whole number of at least 1", async () => {
  const page = await openApiPage(env);
  const code = await page.evaluate(() =>
    Ouvert.createEngine({ model: "/models/x.gguf", threads: 0 }).then(
      () => "loaded",
      (e) => e.code,
    ),
  );
  await page.close();
  assert.equal(code, "invalid_argument");
});
