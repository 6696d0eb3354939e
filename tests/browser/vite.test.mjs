// The npm package as a front-end developer meets it: a fresh Vite 7 app installs the packed
// tarball (`npm pack pkg/`), builds, and generates llama.cpp's greedy tokens in Chromium.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBrowser, reference, mustMatch, MODEL, ROOT } from "./util.mjs";

const VITE = "7.3.8";
let env;
after(async () => {
  if (env) {
    assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
    await env.close();
  }
});

const APP = {
  "index.html": `<!doctype html>\n<meta charset="utf-8">\n<title>Vite + Ouvert</title>\n<pre id="out">loading…</pre>\n<script type="module" src="/main.js"></script>\n`,
  "main.js": `import { createEngine, OuvertError } from "ouvert";
import { createLanguageModel } from "ouvert/prompt-api";
const out = document.getElementById("out");
try {
  const engine = await createEngine({ model: "/models/${MODEL}", contextLength: 256 });
  const prompt = new URLSearchParams(location.search).get("prompt");
  const r = await engine.complete(prompt, { maxTokens: 8, temperature: 0, stopAtEos: false });
  out.textContent = prompt + r.text;
  // The grammar module's wasm, an asset of the bundled worker, fetched on first use.
  const year = await engine.complete("La prise de la Bastille a eu lieu en", {
    maxTokens: 8,
    temperature: 0,
    responseFormat: { type: "regex", pattern: " [0-9]{4}" },
  });
  // The Prompt API's export resolves and finds the model the engine cached.
  const LanguageModel = createLanguageModel({ model: "/models/${MODEL}" });
  const availability = await LanguageModel.availability();
  window.result = { ...r, backend: engine.info.backend, year: year.text, availability };
} catch (e) {
  window.result = { error: \`\${e instanceof OuvertError}:\${e.code}:\${e.message}\` };
}
`,
};

test("a fresh Vite app installs the packed package, builds, and generates, a regex held too; the Prompt API's export resolves", {
  timeout: 600_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "ouvert-vite-"));
  const run = (cmd, args) =>
    execFileSync(cmd, args, { cwd: dir, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  run("npm", ["pack", join(ROOT, "pkg"), "--pack-destination", dir, "--silent"]);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({
      name: "ouvert-vite-check",
      private: true,
      type: "module",
      dependencies: { ouvert: `file:./${tarball}` },
      devDependencies: { vite: VITE },
    }),
  );
  for (const [name, text] of Object.entries(APP)) writeFileSync(join(dir, name), text);
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]);
  const build = run("npx", ["vite", "build", "--base", "/app/"]);
  console.log(
    build
      .split("\n")
      .filter((l) => l.includes("dist/"))
      .join("\n"),
  );

  const ref = reference().prompts.find((p) => p.id === "english");
  env = await startBrowser({
    mounts: { "/app": join(dir, "dist"), "/app/models": join(ROOT, "models") },
  });
  const page = await env.context.newPage();
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/app/index.html?prompt=${encodeURIComponent(ref.text)}`);
  const result = await (
    await page.waitForFunction(() => window.result, null, { timeout: 300_000 })
  ).jsonValue();
  assert.equal(result.error, undefined, result.error);
  assert.equal(result.backend, "wasm");
  assert.deepEqual(result.promptTokens, ref.llama_cpp.prompt_ids);
  const n = Math.min(mustMatch(ref.llama_cpp.step_margin, 0.25), 8);
  assert.deepEqual(result.tokens.slice(0, n), ref.llama_cpp.greedy_ids.slice(0, n));
  assert.match(result.year, /^ \d{4}$/);
  assert.equal(result.availability, "available");
  console.log(
    `Vite app generated: ${JSON.stringify(result.text)}, then ${JSON.stringify(result.year)}`,
  );
});
