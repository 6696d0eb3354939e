// Every architecture and weight type in the browser's wasm engine, against llama.cpp: the
// tiny random GGUFs of tests/tools/tiny_models.py (written by `./build.sh test` into
// target/tiny-models) and llama.cpp's outputs in tests/tiny/reference.json. Prompt ids
// must be equal; greedy tokens equal up to llama.cpp's first step whose top-2 margin is
// below twice the CPU tolerance of tests/tiny.rs (the wasm kernels are the CPU backend's).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startBrowser, mustMatch, ROOT, openApiPage } from "./util.mjs";

const REF = JSON.parse(readFileSync(join(ROOT, "tests/tiny/reference.json"), "utf8"));
const margin = (type) => (["F32", "F16", "BF16"].includes(type) ? 0.02 : 0.2);

let env, page;
before(async () => {
  env = await startBrowser({ mounts: { "/tiny": join(ROOT, "target/tiny-models") } });
  page = await openApiPage(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

test("Ouvert.SUPPORTED lists exactly the architectures and weight types checked here", async () => {
  const supported = await page.evaluate(() => Ouvert.SUPPORTED);
  assert.deepEqual(
    new Set(supported.architectures),
    new Set(REF.models.map((m) => m.architecture)),
  );
  assert.deepEqual(new Set(supported.quantizations), new Set(REF.models.map((m) => m.type)));
});

test("each architecture and weight type gives llama.cpp's prompt ids and greedy tokens in wasm", {
  timeout: 600_000,
}, async () => {
  const failures = [];
  for (const m of REF.models) {
    const out = await page.evaluate(
      async ({ url, sha256, prompts }) => {
        const engine = await Ouvert.createEngine({
          model: url,
          sha256,
          backend: "wasm",
          contextLength: 512,
        });
        const res = { info: engine.info, runs: [] };
        for (const p of prompts) {
          const ids = await engine.tokenize(p.text);
          const r = await engine.complete(
            { ids },
            { maxTokens: p.n, temperature: 0, stopAtEos: false },
          );
          res.runs.push({ ids, tokens: r.tokens });
        }
        await engine.dispose();
        return res;
      },
      {
        url: `/tiny/${m.name}.gguf`,
        sha256: m.sha256,
        prompts: m.prompts.map((p) => ({ text: p.text, n: p.greedy.length })),
      },
    );
    assert.equal(out.info.architecture, m.architecture);
    const steps = [];
    m.prompts.forEach((p, i) => {
      const { ids, tokens } = out.runs[i];
      if (JSON.stringify(ids) !== JSON.stringify(p.ids))
        failures.push(
          `${m.name}: ${JSON.stringify(p.text)} encodes to ${ids}, llama.cpp to ${p.ids}`,
        );
      const n = mustMatch(p.margins, margin(m.type));
      let same = 0;
      while (same < tokens.length && tokens[same] === p.greedy[same]) same++;
      steps.push(`${same}/${n}`);
      if (same < n)
        failures.push(
          `${m.name}: ${JSON.stringify(p.text)} greedy differs at step ${same} (margin ${p.margins[same]})`,
        );
    });
    console.log(
      `${m.name.padEnd(12)} ${m.type.padEnd(5)} greedy steps equal/required ${steps.join(" ")}`,
    );
  }
  assert.deepEqual(failures, []);
});
