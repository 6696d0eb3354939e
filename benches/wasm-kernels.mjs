// Where a wasm decode step's time goes, by weight type: every mat-mul of one step (each
// matrix times one activation row), in Node's V8 (Chromium's engine), one thread, on both
// models. Builds the engine with the `kernel-bench` feature into target/kernel-bench;
// with `relaxed`, with relaxed SIMD too (target/kernel-bench-relaxed); with `chromium`, or
// `relaxed`, in a page of headless Chromium instead of Node (Node 20's V8 has relaxed SIMD
// only as a prerelease behind a flag, which computes i32x4.relaxed_dot_i8x16_i7x16_add_s
// wrong; Chromium's lowers it to AVX-VNNI where the CPU has it).
//   node benches/wasm-kernels.mjs [reps] [relaxed] [chromium]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startBrowser } from "../tests/browser/util.mjs";

const reps = Number(process.argv[2] ?? 10);
const relaxed = process.argv.includes("relaxed");
const inChromium = relaxed || process.argv.includes("chromium");
const target = join(ROOT, relaxed ? "target/kernel-bench-relaxed" : "target/kernel-bench");
const env = {
  ...process.env,
  RUSTFLAGS: `-C target-feature=+simd128${relaxed ? ",+relaxed-simd" : ""} --cfg getrandom_backend="wasm_js"`,
};
const run = (cmd, args) =>
  execFileSync(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
run("cargo", [
  "build",
  "--release",
  "--lib",
  "--quiet",
  "--target",
  "wasm32-unknown-unknown",
  "--no-default-features",
  "--features",
  "gpu,kernel-bench",
  "--target-dir",
  target,
]);
const out = join(target, "bindgen");
run("wasm-bindgen", [
  "--target",
  "web",
  "--no-typescript",
  "--out-dir",
  out,
  join(target, "wasm32-unknown-unknown/release/ouvert.wasm"),
]);
const models = ["gemma-3-270m-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"];
// Each model's mat-mul timings by weight type, measured in Node or in a Chromium page.
const timings = await (inChromium ? inPage() : inNode());

async function inNode() {
  const wasm = await import(join(out, "ouvert.js"));
  wasm.initSync({ module: readFileSync(join(out, "ouvert_bg.wasm")) });
  wasm.kernelSelfCheck(); // throws if this build's kernels differ from scalar code
  return models.map((m) => wasm.benchMatmuls(readFileSync(join(ROOT, "models", m)), reps));
}

async function inPage() {
  const env = await startBrowser({ mounts: { "/kernel-bench": out } });
  try {
    const page = await env.context.newPage();
    page.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
    await page.goto(`${env.origin}/engine.html`);
    return await page.evaluate(
      async ({ models, reps }) => {
        const wasm = await import("/kernel-bench/ouvert.js");
        await wasm.default({ module_or_path: "/kernel-bench/ouvert_bg.wasm" });
        wasm.kernelSelfCheck();
        const by = [];
        for (const m of models) {
          const bytes = new Uint8Array(await (await fetch(`/models/${m}`)).arrayBuffer());
          by.push(wasm.benchMatmuls(bytes, reps));
        }
        return by;
      },
      { models, reps },
    );
  } finally {
    await env.close();
  }
}

const where = inChromium ? "Chromium" : `Node ${process.version}`;
for (const [i, model] of models.entries()) {
  const by = timings[i];
  let ms = 0;
  console.log(`\n${model}: one decode step's mat-muls in ${where}, mean of ${reps}`);
  console.log("| weights | ms per step | MB per step | GB/s |\n|---|---|---|---|");
  for (const [type, r] of Object.entries(by)) {
    ms += r.ms;
    const gbs = r.bytes / r.ms / 1e6;
    console.log(
      `| ${type} | ${r.ms.toFixed(2)} | ${(r.bytes / 1e6).toFixed(1)} | ${gbs.toFixed(1)} |`,
    );
  }
  console.log(`| all | ${ms.toFixed(1)} | | |`);
}
