// Where a wasm decode step's time goes, by weight type: every mat-mul of one step (each
// matrix times one activation row), in Node's V8 (Chromium's engine), one thread, on both
// models. Builds the engine with the `kernel-bench` feature into target/kernel-bench;
// with `relaxed`, with relaxed SIMD too (target/kernel-bench-relaxed; not a served build yet).
//   node benches/wasm-kernels.mjs [reps] [relaxed]
import { execFileSync } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../tests/browser/util.mjs";

const reps = Number(process.argv[2] ?? 10);
const relaxed = process.argv[3] === "relaxed";
const target = join(ROOT, relaxed ? "target/kernel-bench-relaxed" : "target/kernel-bench");
const env = {
  ...process.env,
  RUSTFLAGS: `-C target-feature=+simd128${relaxed ? ",+relaxed-simd" : ""} --cfg getrandom_backend="wasm_js"`,
};
const run = (cmd, args) =>
  execFileSync(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
// Node 20's V8 has relaxed SIMD behind a flag (Chromium 156 validates it without one).
if (relaxed) setFlagsFromString("--experimental-wasm-relaxed-simd");
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
const wasm = await import(join(out, "ouvert.js"));
wasm.initSync({ module: readFileSync(join(out, "ouvert_bg.wasm")) });
wasm.kernelSelfCheck(); // throws if this build's kernels differ from scalar code
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
