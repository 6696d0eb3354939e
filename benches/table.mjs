// The decode table of BENCHMARKS.md, from what `./build.sh bench` measured in this run:
// target/bench-bandwidth.json (benches/bandwidth.rs), target/bench-native-<model>.json
// (benches/native_llama.py) and target/bench-vs-wllama-<model>-<t>t.json
// (benches/vs-wllama.mjs). Each decode as a share of the bandwidth bound (weight bytes read
// per token ÷ streaming-read rate) and as a ratio to native llama.cpp. Medians of the rounds.
//   node benches/table.mjs [threads]
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../tests/browser/util.mjs";

const threads = Number(process.argv[2] ?? 2);
const models = [
  ["Gemma 3 270M", "gemma-3-270m-q4_k_m"],
  ["Qwen2.5 Coder 0.5B", "qwen2.5-coder-0.5b-instruct-q4_k_m"],
];
const read = (name) => {
  const path = join(ROOT, "target", name);
  return existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null;
};
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : "—");
const pct = (x) => (Number.isFinite(x) ? `${Math.round(100 * x)} %` : "—");
const times = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "—");

const bw = read("bench-bandwidth.json");
const cols = models.map(([label, file]) => {
  const native = read(`bench-native-${file}.json`)?.median;
  const one = read(`bench-vs-wllama-${file}-1t.json`)?.results;
  const many = read(`bench-vs-wllama-${file}-${threads}t.json`)?.results;
  const bytes = bw?.weightBytesPerToken?.[`${file}.gguf`];
  const bound1 = bw && bytes ? bw.read1 / bytes : NaN;
  const bound2 = bw && bytes ? bw.read2 / bytes : NaN;
  const m = (rounds, key) => median((rounds ?? []).map((r) => r[key]));
  const llama = native?.["llama.cpp"] ?? {};
  const ours = native?.ouvert ?? {};
  const wasm1 = m(one?.ouvert, "decode");
  const wasmN = m(many?.ouvert, "decode");
  const wl1 = m(one?.wllama, "decode");
  const wlN = m(many?.wllama, "decode");
  return {
    label,
    rows: [
      bw ? `${f(bw.read1 / 1e9)} / ${f(bw.read2 / 1e9)} GB/s` : "—",
      bytes ? `${f(bytes / 1e6, 0)} MB` : "—",
      `${f(bound1)} / ${f(bound2)} tok/s`,
      `${f(llama.decode)} / ${f(llama.prefill128, 0)} tok/s (decode ${pct(llama.decode / bound1)} of the bound)`,
      `${f(ours.decode)} / ${f(ours.prefill128, 0)} tok/s (${times(ours.decode / llama.decode)} / ${times(ours.prefill128 / llama.prefill128)})`,
      `${f(wasm1)} tok/s = ${pct(wasm1 / bound1)} of the bound, ${times(wasm1 / llama.decode)} native llama.cpp`,
      `${f(wl1)} tok/s (Ouvert ${times(wasm1 / wl1)})`,
      `${f(wasmN)} tok/s (${times(wasmN / wasm1)} one thread; ${pct(wasmN / bound2)} of the bound) vs wllama ${f(wlN)}`,
      `${f(m(one?.ouvert, "prefill128"), 0)} vs wllama ${f(m(one?.wllama, "prefill128"), 0)} tok/s (${times(m(one?.ouvert, "prefill128") / m(one?.wllama, "prefill128"))})`,
      `${f(m(one?.ouvert, "cachedFirstTokenMs"), 0)} vs wllama ${f(m(one?.wllama, "cachedFirstTokenMs"), 0)} ms`,
    ],
  };
});
const labels = [
  "streaming read, 1 / 2 threads",
  "weights read per decoded token",
  "decode bound, 1 / 2 threads",
  "native llama.cpp, 1 thread: decode / prefill (128 tokens)",
  "native Ouvert, 1 thread: decode / prefill (× llama.cpp)",
  "Ouvert in Chromium (wasm), 1 thread: decode",
  "wllama in the same Chromium, 1 thread: decode",
  `Ouvert (wasm), ${threads} threads: decode`,
  "wasm prefill, 128 tokens, 1 thread",
  "cached load + first token, 1 thread",
];
console.log(`| | ${cols.map((c) => c.label).join(" | ")} |`);
console.log(`|---|${cols.map(() => "---").join("|")}|`);
for (const [i, l] of labels.entries()) {
  console.log(`| ${l} | ${cols.map((c) => c.rows[i]).join(" | ")} |`);
}
