// A conversation's second turn with the KV cache kept against the same prompt read whole:
// the time to first token of each, on the instruct model, in headless Chromium (wasm, one
// thread unless given). Prints one line per round and the medians.
//   ./build.sh build && node benches/turns.mjs [rounds] [threads]
import { startBrowser, INSTRUCT_MODEL } from "../tests/browser/util.mjs";

const rounds = Number(process.argv[2] ?? 3);
const threads = Number(process.argv[3] ?? 1);

const env = await startBrowser();
const page = await env.context.newPage();
await page.goto(`${env.origin}/api.html`);
await page.waitForFunction(() => window.apiReady);
const rows = await page.evaluate(
  async ({ url, rounds, threads }) => {
    const e = await Ouvert.createEngine({ model: url, backend: "wasm", threads });
    const greedy = { maxTokens: 48, temperature: 0 };
    const out = [];
    for (let round = 0; round < rounds; round++) {
      const chat = [
        { role: "user", content: `Round ${round}. Explain in two sentences what a compiler does.` },
      ];
      const first = await e.complete({ messages: chat }, greedy);
      chat.push({ role: "assistant", content: first.text });
      chat.push({ role: "user", content: "Give one example of a compiled language." });
      const second = await e.complete({ messages: chat }, greedy);
      // The same second-turn prompt read whole: another prompt first takes the cache.
      await e.complete("Unrelated text to take the cache.", { maxTokens: 1 });
      const whole = await e.complete({ messages: chat }, greedy);
      out.push({
        turn1: first.stats,
        turn2: second.stats,
        uncached: whole.stats,
      });
    }
    await e.dispose();
    return out;
  },
  { url: `/models/${INSTRUCT_MODEL}`, rounds, threads },
);
await env.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const r of rows) {
  console.log(
    `turn 1: ${r.turn1.promptTokens} tokens, first token ${r.turn1.timeToFirstTokenMs.toFixed(0)} ms | ` +
      `turn 2: ${r.turn2.promptTokens} tokens (${r.turn2.cachedPromptTokens} cached), ${r.turn2.timeToFirstTokenMs.toFixed(0)} ms | ` +
      `turn 2 read whole: ${r.uncached.cachedPromptTokens} cached, ${r.uncached.timeToFirstTokenMs.toFixed(0)} ms`,
  );
}
const m = (k) => median(rows.map((r) => r[k].timeToFirstTokenMs)).toFixed(0);
console.log(
  `median first token (${INSTRUCT_MODEL}, ${threads} thread(s)): turn 1 ${m("turn1")} ms, turn 2 ${m("turn2")} ms, turn 2 without the cache ${m("uncached")} ms`,
);
