// Where a wasm decode step's time goes, by weight type: every mat-mul of one step (each
// matrix times one activation row), in Node's V8 (Chromium's engine), one thread, on both
// models. Builds the engine with the `kernel-bench` feature into target/kernel-bench.
//   node benches/wasm-kernels.mjs [reps]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../tests/browser/util.mjs";

const reps = Number(process.argv[2] ?? 10);
const target = join(ROOT, "target/kernel-bench");
const run = (cmd, args) =>
  execFileSync(cmd, args, { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
run("cargo", [
  "build",
  "--release",
  "--lib",
  "--quiet",
  "--target",
  "wasm32-unknown-unknown",
  "--no-default-features",
  "--features",
  "kernel-bench",
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
const wasm = await import(join(out, "ouvert.js"));
wasm.initSync({ module: readFileSync(join(out, "ouvert_bg.wasm")) });
for (const model of ["gemma-3-270m-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"]) {
  const by = wasm.benchMatmuls(readFileSync(join(ROOT, "models", model)), reps);
  let ms = 0;
  console.log(`\n${model}: one decode step's mat-muls, mean of ${reps}`);
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
