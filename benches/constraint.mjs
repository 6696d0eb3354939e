// What constrained decoding costs in headless Chromium (wasm, one thread), on both models:
// the first constrained request (the grammar module loaded, the vocabulary read into it)
// against the same request again (its prompt read whole both times), and the mask's time
// per token against a decode step.
//   ./build.sh build && node benches/constraint.mjs
import { startBrowser, MODEL, INSTRUCT_MODEL } from "../tests/browser/util.mjs";

const env = await startBrowser();
const page = await env.context.newPage();
await page.goto(`${env.origin}/api.html`);
await page.waitForFunction(() => window.apiReady);
console.log(
  "| model | first constrained request | the same, again | mask per token | decode step | mask / step |",
);
console.log("|---|---|---|---|---|---|");
for (const [label, file] of [
  ["Gemma 3 270M", MODEL],
  ["Qwen2.5 0.5B", INSTRUCT_MODEL],
]) {
  const r = await page.evaluate(
    async ({ url }) => {
      const e = await Ouvert.createEngine({ model: url, backend: "wasm", threads: 1 });
      const opts = {
        maxTokens: 24,
        temperature: 0,
        responseFormat: {
          type: "json_schema",
          schema: {
            type: "object",
            properties: { ville: { type: "string" }, annee: { type: "integer" } },
            required: ["ville", "annee"],
          },
        },
      };
      const prompt = "La prise de la Bastille, à Paris, en 1789. En JSON :";
      const timed = async () => {
        const t0 = performance.now();
        const out = await e.complete(prompt, opts);
        return { ms: performance.now() - t0, stats: out.stats };
      };
      const first = await timed();
      // Another prompt takes the cache, so the next request reads its prompt whole too.
      await e.complete("Autre chose.", { maxTokens: 1 });
      const again = await timed();
      await e.dispose();
      return { first, again };
    },
    { url: `/models/${file}` },
  );
  const s = r.again.stats;
  const mask = s.constraintMs / s.completionTokens;
  const step = 1000 / s.decodeTokensPerSecond;
  console.log(
    `| ${label} | ${r.first.ms.toFixed(0)} ms | ${r.again.ms.toFixed(0)} ms | ${mask.toFixed(2)} ms | ${step.toFixed(0)} ms | ${((100 * mask) / step).toFixed(1)} % |`,
  );
}
await env.close();
