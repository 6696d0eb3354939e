// The wasm engine in headless Chromium on the real model: same tokens as llama.cpp, with
// the same rules as tests/reference.rs (which explains the tolerances).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startBrowser,
  openHarness,
  reference,
  instructReference,
  mustMatch,
  MODEL,
  INSTRUCT_MODEL,
} from "./util.mjs";

const MARGIN = 0.25;
const LOGIT_TOL = 0.75;
const ORDER_GAP = 0.5;

let env, page;
before(async () => {
  env = await startBrowser();
  page = await openHarness(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

test("reference prompts: llama.cpp's prompt ids, first logits and greedy tokens", {
  timeout: 900_000,
}, async () => {
  const ref = reference();
  const prompts = ref.prompts.map((p) => ({
    id: p.id,
    text: p.text,
    top5: p.llama_cpp.top5_first.map((t) => t.id),
  }));
  const results = await page.evaluate(
    async ({ url, prompts }) => {
      const t0 = performance.now();
      const engine = await window.ouvert.load(url, 1024);
      const loadMs = performance.now() - t0;
      const out = [];
      for (const p of prompts) {
        const ids = Array.from(engine.tokenize(p.text, false));
        const logits = await engine.logits(Uint32Array.from(ids));
        const gen = await window.ouvert.generate(engine, Uint32Array.from(ids), {
          maxTokens: 32,
          temperature: 0,
          stopAtEos: false,
        });
        out.push({
          id: p.id,
          ids,
          top5Logits: p.top5.map((t) => logits[t]),
          tokens: gen.tokens,
          stats: gen.stats,
        });
      }
      return { loadMs, out };
    },
    { url: `/models/${MODEL}`, prompts },
  );

  const failures = [];
  for (const r of results.out) {
    const want = ref.prompts.find((p) => p.id === r.id).llama_cpp;
    assert.deepEqual(r.ids, want.prompt_ids, `${r.id}: prompt ids`);
    const worst = Math.max(...want.top5_first.map((t, i) => Math.abs(r.top5Logits[i] - t.logit)));
    const n = mustMatch(want.step_margin, MARGIN);
    let same = 0;
    while (same < r.tokens.length && r.tokens[same] === want.greedy_ids[same]) same++;
    console.log(
      `${r.id.padEnd(18)} top5 worst diff ${worst.toFixed(4)}; greedy equal ${same} (must ${n}); ` +
        `prefill ${r.stats.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${r.stats.decodeTokensPerSecond.toFixed(1)} tok/s`,
    );
    if (same < n)
      failures.push(
        `${r.id}: greedy differs at step ${same} (reference margin ${want.step_margin[same]})`,
      );
    want.top5_first.forEach((a, i) => {
      want.top5_first.slice(i + 1).forEach((b, k) => {
        if (a.logit - b.logit > ORDER_GAP && r.top5Logits[i] <= r.top5Logits[i + 1 + k])
          failures.push(`${r.id}: ${b.id} ranks above ${a.id}`);
      });
    });
    if (worst > LOGIT_TOL)
      failures.push(`${r.id}: first-position logits off by ${worst.toFixed(4)}`);
  }
  console.log(`model load in the page: ${results.loadMs.toFixed(0)} ms`);
  assert.deepEqual(failures, []);
});

test("the instruct model: llama.cpp's prompt ids (plain and chat), greedy tokens, the stop at <|im_end|>", {
  timeout: 900_000,
}, async () => {
  const ref = instructReference();
  const IM_END = 151645;
  // The prompts whose answer ends (at <|im_end|>) within the steps that must match.
  const ends = Object.fromEntries(
    ref.prompts.map((p) => {
      const n = mustMatch(p.llama_cpp.step_margin, MARGIN);
      const at = p.llama_cpp.greedy_ids.slice(0, n).indexOf(IM_END);
      return [p.id, at];
    }),
  );
  const own = await openHarness(env); // a wasm instance of its own, freed with the page
  const results = await own.evaluate(
    async ({ url, prompts, ends }) => {
      const engine = await window.ouvert.load(url, 1024);
      const out = [];
      for (const p of prompts) {
        const ids = Array.from(
          p.messages ? engine.encodeChat(p.messages) : engine.tokenize(p.text, false),
        );
        const greedy = { maxTokens: 32, temperature: 0 };
        const gen = await window.ouvert.generate(engine, Uint32Array.from(ids), {
          ...greedy,
          stopAtEos: false,
        });
        const answer =
          ends[p.id] >= 0
            ? await window.ouvert.generate(engine, Uint32Array.from(ids), greedy)
            : null;
        out.push({ id: p.id, ids, tokens: gen.tokens, stats: gen.stats, answer });
      }
      engine.free();
      return out;
    },
    { url: `/models/${INSTRUCT_MODEL}`, prompts: ref.prompts, ends },
  );
  await own.close();
  const failures = [];
  for (const r of results) {
    const want = ref.prompts.find((p) => p.id === r.id).llama_cpp;
    assert.deepEqual(r.ids, want.prompt_ids, `${r.id}: prompt ids`);
    const n = mustMatch(want.step_margin, MARGIN);
    let same = 0;
    while (same < r.tokens.length && r.tokens[same] === want.greedy_ids[same]) same++;
    console.log(
      `${r.id.padEnd(16)} greedy equal ${same} (must ${n}); prefill ${r.stats.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${r.stats.decodeTokensPerSecond.toFixed(1)} tok/s`,
    );
    if (same < n)
      failures.push(`${r.id}: greedy differs at step ${same} (margin ${want.step_margin[same]})`);
    if (r.answer) {
      const end = ends[r.id];
      assert.equal(r.answer.finishReason, "stop", `${r.id}: the answer ends at <|im_end|>`);
      assert.deepEqual(
        r.answer.tokens,
        want.greedy_ids.slice(0, end + 1),
        `${r.id}: where it ends`,
      );
      assert.equal(
        r.answer.text,
        want.greedy_text.slice(0, want.greedy_text.indexOf("<|im_end|>")),
      );
    }
  }
  assert.ok(
    Object.values(ends).some((at) => at >= 0),
    "some reference answer ends",
  );
  assert.deepEqual(failures, []);
});

test("the simd128 dot products equal scalar code on random blocks", async () => {
  const result = await page.evaluate(async () => {
    await window.ouvert.init();
    try {
      window.ouvert.kernelSelfCheck();
      return "ok";
    } catch (e) {
      return `${e.code}: ${e.message}`;
    }
  });
  assert.equal(result, "ok");
});

test("the relaxed-SIMD build: its dot products equal scalar code, its logits and greedy tokens are the simd128 build's bit for bit", {
  timeout: 300_000,
}, async () => {
  const relaxed = await openHarness(env, "wasm-relaxed");
  // A decode step's logits (hashed in the page: 262,144 floats), and 24 greedy tokens
  // with their log-probabilities.
  const run = (p) =>
    p.evaluate(
      async ({ url, text }) => {
        await window.ouvert.init();
        let check = "ok";
        try {
          window.ouvert.kernelSelfCheck();
        } catch (e) {
          check = `${e.code}: ${e.message}`;
        }
        const engine = await window.ouvert.load(url, 256);
        const ids = Uint32Array.from(engine.tokenize(text, false));
        engine.logits(ids);
        const step = await engine.logits(Uint32Array.from([...ids, 818]));
        let hash = 2166136261;
        for (const w of new Uint32Array(step.buffer)) hash = Math.imul(hash ^ w, 16777619) >>> 0;
        engine.start(ids, { maxTokens: 24, temperature: 0, stopAtEos: false, topLogprobs: 2 });
        const pieces = [];
        for (;;) {
          const event = await engine.step();
          if (event.type === "piece") pieces.push(event);
          if (event.type === "done") break;
        }
        const { simd } = engine.info();
        engine.free();
        return {
          simd,
          check,
          hash,
          tokens: pieces.map((e) => e.token),
          pieces: JSON.stringify(pieces),
        };
      },
      { url: `/models/${MODEL}`, text: reference().prompts[0].text },
    );
  const plain = await run(page);
  const fast = await run(relaxed);
  await relaxed.close();
  assert.deepEqual([plain.simd, fast.simd], ["simd128", "relaxed"], "the two builds");
  assert.equal(fast.check, "ok", "relaxed-SIMD self-check");
  assert.equal(fast.hash, plain.hash, "a decode step's logits, bit for bit");
  assert.deepEqual(fast.tokens, plain.tokens);
  assert.equal(fast.pieces, plain.pieces, "log-probabilities");
});

test("bad files give typed errors in JS, and the page stays usable", async () => {
  const codes = await page.evaluate(async () => {
    const { ModelLoader, WasmEngine } = window.ouvert;
    const attempt = async (bytes, announced = bytes.length) => {
      try {
        const l = new ModelLoader(announced, false);
        l.push(bytes);
        await WasmEngine.load(l, 256, "wasm");
        return "loaded";
      } catch (e) {
        return `${e instanceof Error}:${e.code}`;
      }
    };
    const gguf = new Uint8Array([
      0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    return {
      html: await attempt(new TextEncoder().encode("<!doctype html><title>404</title>")),
      shortDownload: await attempt(new Uint8Array(10), 100),
      version: await attempt(
        new Uint8Array([0x47, 0x47, 0x55, 0x46, 99, 0, 0, 0, ...new Uint8Array(16)]),
      ),
      noArch: await attempt(gguf),
    };
  });
  assert.deepEqual(codes, {
    html: "true:bad_magic",
    shortDownload: "true:truncated_file",
    version: "true:unsupported_version",
    noArch: "true:unsupported_architecture",
  });
});
