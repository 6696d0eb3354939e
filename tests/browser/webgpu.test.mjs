// The WebGPU backend in headless Chromium on SwiftShader (a CPU implementation of Vulkan,
// so slow: a forward pass takes seconds, and only a few reference prompts run here; all
// of them run with ./build.sh quality, and natively on lavapipe in tests/gpu.rs). The same
// rules as engine.test.mjs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startBrowser,
  openHarness,
  openApiPage,
  reference,
  instructReference,
  mustMatch,
  MODEL,
  INSTRUCT_MODEL,
} from "./util.mjs";

const MARGIN = 0.25;
const LOGIT_TOL = 0.75;
// Two reference prompts in `./build.sh test`; `./build.sh quality` runs these three.
const PROMPTS = (process.env.OUVERT_WEBGPU_PROMPTS ?? "one_word,english").split(",");

let env, page;
before(async () => {
  env = await startBrowser({ webgpu: true });
  page = await openHarness(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

test("on a WebGPU adapter: backend webgpu, llama.cpp's greedy tokens; a lost device continues on wasm", {
  timeout: 1_200_000,
}, async () => {
  const ref = reference();
  const prompts = ref.prompts
    .filter((p) => PROMPTS.includes(p.id))
    .map((p) => ({
      id: p.id,
      ids: p.llama_cpp.prompt_ids,
      top5: p.llama_cpp.top5_first.map((t) => t.id),
      n: Math.max(1, mustMatch(p.llama_cpp.step_margin, MARGIN)),
    }));
  const r = await page.evaluate(
    async ({ url, prompts }) => {
      const { load, generate } = window.ouvert;
      const t0 = performance.now();
      const engine = await load(url, 512, "webgpu");
      const out = { loadMs: performance.now() - t0, info: engine.info(), prompts: [] };
      for (const p of prompts) {
        const ids = Uint32Array.from(p.ids);
        const logits = await engine.logits(ids);
        const t1 = performance.now();
        const gen = await generate(engine, ids, {
          maxTokens: p.n,
          temperature: 0,
          stopAtEos: false,
        });
        out.prompts.push({
          id: p.id,
          top5Logits: p.top5.map((t) => logits[t]),
          tokens: gen.tokens,
          ms: performance.now() - t1,
        });
      }
      // A device lost mid-generation: the step fails with webgpu_lost, the engine moves to
      // wasm, and the next request works there.
      const ids = Uint32Array.from(prompts[0].ids);
      engine.start(ids, { maxTokens: 4, temperature: 0, stopAtEos: false });
      out.lost = engine.loseDeviceForTesting();
      try {
        for (;;) if ((await engine.step()).type === "done") break;
        out.lostError = "none";
      } catch (e) {
        out.lostError = e.code;
      }
      out.after = engine.info();
      out.afterTokens = (
        await generate(engine, ids, { maxTokens: prompts[0].n, temperature: 0, stopAtEos: false })
      ).tokens;
      return out;
    },
    { url: `/models/${MODEL}`, prompts },
  );

  console.log(`WebGPU (SwiftShader) load ${r.loadMs.toFixed(0)} ms on ${r.info.adapter}`);
  assert.equal(r.info.backend, "webgpu");
  assert.match(r.info.adapter, /swiftshader/i, "info.adapter names the browser's adapter");
  const failures = [];
  for (const got of r.prompts) {
    const want = ref.prompts.find((p) => p.id === got.id).llama_cpp;
    const n = prompts.find((p) => p.id === got.id).n;
    const worst = Math.max(...want.top5_first.map((t, i) => Math.abs(got.top5Logits[i] - t.logit)));
    console.log(
      `${got.id.padEnd(10)} top-5 logits off llama.cpp by ≤${worst.toFixed(3)}; ${n} greedy tokens in ${got.ms.toFixed(0)} ms`,
    );
    if (worst > LOGIT_TOL)
      failures.push(`${got.id}: first-position logits off by ${worst.toFixed(3)}`);
    if (JSON.stringify(got.tokens.slice(0, n)) !== JSON.stringify(want.greedy_ids.slice(0, n))) {
      failures.push(`${got.id}: greedy ${got.tokens} vs llama.cpp ${want.greedy_ids.slice(0, n)}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.equal(r.lost, true);
  assert.equal(r.lostError, "webgpu_lost");
  assert.equal(r.after.backend, "wasm");
  assert.equal(r.after.fallback.code, "webgpu_lost");
  const first = ref.prompts.find((p) => p.id === prompts[0].id).llama_cpp;
  assert.deepEqual(
    r.afterTokens,
    first.greedy_ids.slice(0, r.afterTokens.length),
    "after the loss, wasm gives llama.cpp's tokens",
  );
});

test("through the API, backend auto: the weights go to the GPU while the file downloads, it gives llama.cpp's tokens, and a regex holds", {
  timeout: 600_000,
}, async () => {
  const want = reference().prompts.find((p) => p.id === "one_word").llama_cpp;
  const n = Math.max(1, Math.min(3, mustMatch(want.step_margin, MARGIN)));
  const api = await openApiPage(env);
  const r = await api.evaluate(
    async ({ url, ids, n }) => {
      const e = await Ouvert.createEngine({ model: url, backend: "auto", contextLength: 256 });
      const out = await e.complete({ ids }, { maxTokens: n, temperature: 0, stopAtEos: false });
      // A constrained step reads back the whole row of logits, through the grammar module.
      const date = await e.complete("La prise de la Bastille a eu lieu en", {
        maxTokens: 8,
        temperature: 0,
        responseFormat: { type: "regex", pattern: " [0-9]{4}" },
      });
      await e.dispose();
      return { info: e.info, tokens: out.tokens, date };
    },
    { url: `/models/${MODEL}`, ids: want.prompt_ids, n },
  );
  await api.close();
  assert.equal(r.info.backend, "webgpu");
  assert.ok(
    r.info.streamedToGpu > 200e6,
    `${r.info.streamedToGpu} bytes of weights went up while the file arrived`,
  );
  assert.deepEqual(r.tokens, want.greedy_ids.slice(0, n));
  console.log(`  constrained on ${r.info.adapter}: ${JSON.stringify(r.date.text)}`);
  assert.match(r.date.text, /^ \d{4}$/);
  assert.equal(r.date.finishReason, "stop");
});

test("the instruct model on WebGPU: a chat answer equal to llama.cpp's, ending at <|im_end|>", {
  timeout: 900_000,
}, async () => {
  // One prompt (a forward pass of this model takes seconds on SwiftShader; every chat
  // prompt runs in wasm in engine.test.mjs, and two on lavapipe in tests/instruct.rs).
  const p = instructReference().prompts.find((x) => x.id === "chat_system");
  const want = p.llama_cpp;
  const end = want.greedy_ids.indexOf(151645);
  assert.ok(
    end >= 0 && end < mustMatch(want.step_margin, MARGIN),
    "the reference answer ends in time",
  );
  const own = await openHarness(env);
  const r = await own.evaluate(
    async ({ url, messages, maxTokens }) => {
      const engine = await window.ouvert.load(url, 256, "webgpu");
      const ids = engine.encodeChat(messages);
      const t0 = performance.now();
      const out = await window.ouvert.generate(engine, ids, { maxTokens, temperature: 0 });
      const info = engine.info();
      engine.free();
      return { info, ids: Array.from(ids), out, ms: performance.now() - t0 };
    },
    { url: `/models/${INSTRUCT_MODEL}`, messages: p.messages, maxTokens: want.greedy_ids.length },
  );
  await own.close();
  console.log(
    `instruct model on ${r.info.adapter}: ${JSON.stringify(r.out.text)} in ${r.ms.toFixed(0)} ms`,
  );
  assert.equal(r.info.backend, "webgpu");
  assert.deepEqual(r.ids, want.prompt_ids);
  assert.deepEqual(r.out.tokens, want.greedy_ids.slice(0, end + 1));
  assert.equal(r.out.finishReason, "stop");
});
