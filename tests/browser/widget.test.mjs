// <ouvert-chat> in headless Chromium on the real model: it renders, streams, stops, shares
// one engine between widgets naming the same model, keeps output inert, and shows errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startBrowser, badFiles, ROOT } from "./util.mjs";

const SHOTS = join(ROOT, "target/screenshots");
let env, page;

before(async () => {
  env = await startBrowser({ mounts: { "/bad": badFiles() } });
  page = await env.context.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/widget.html`);
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

const widget = (id) => page.locator(`#${id}`);
const events = (type, id) =>
  page.evaluate(
    ([type, id]) => events.filter((e) => e.type === type && e.id === id).map((e) => e.detail),
    [type, id],
  );

test("two widgets naming one model share one engine; the model card shows", {
  timeout: 300_000,
}, async () => {
  await page.waitForFunction(
    () => ["a", "b"].every((id) => document.getElementById(id).engine),
    null,
    { timeout: 240_000 },
  );
  assert.ok(await page.evaluate(() => a.engine === b.engine), "one engine for both");
  const workers = page.workers().length;
  const modelFetches = env.requests.filter((p) => p === "/models/gemma-3-270m-q4_k_m.gguf").length;
  assert.ok(modelFetches <= 1, `the model was requested ${modelFetches} times`);
  assert.ok(workers <= 2, `${workers} workers (one shared, at most one for the integrity widget)`);
  const card = await widget("a").locator("dl").textContent();
  assert.match(card, /Gemma 3 270m/);
  assert.match(card, /253\sMo/, "French units in a French widget");
  assert.match(card, /gemma/);
  assert.match(card, /a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818/);
  // Provenance as the file states it: Gemma's file names its licence but no author or source.
  assert.match(card, /Par\s*non indiqué dans le fichier/);
  assert.match(card, /Source\s*non indiqué dans le fichier/);
  const licence = widget("a").locator("dl a");
  assert.equal(await licence.textContent(), "gemma");
  assert.equal(await licence.getAttribute("href"), "https://ai.google.dev/gemma/terms");
  assert.equal(await licence.getAttribute("rel"), "noopener noreferrer");
  assert.equal(
    await widget("a").locator("[part~=network]").textContent(),
    "Réseau : aucune requête de cette page depuis le chargement du modèle",
  );
  const progress = await events("ouvert-progress", "a");
  assert.ok(
    progress.length > 0 || (await events("ouvert-progress", "b")).length > 0,
    "progress events",
  );
  // Gemma 3 270M is a base model (no chat template in its file): the box says so.
  assert.match(await widget("a").locator("[part~=notice]").textContent(), /modèle de base/);
  assert.match(await widget("b").locator("[part~=notice]").textContent(), /base model/);
  assert.equal(
    await widget("a").getByRole("textbox", { name: "Votre message" }).count(),
    1,
    "the input has a French label",
  );
  assert.equal(
    await widget("b").getByRole("textbox", { name: "Your message" }).getAttribute("placeholder"),
    "Say hello",
  );
});

test("the widget streams an answer with Enter, and HTML in prompts and output stays text", {
  timeout: 300_000,
}, async () => {
  const payload = `<img src=x onerror="window.pwned=1"><b>bold</b>`;
  const input = widget("a").getByRole("textbox");
  await input.fill(`Répète exactement : ${payload} ${payload} ${payload}`);
  await input.press("Enter");
  await page.waitForFunction(
    () => events.some((e) => e.type === "ouvert-done" && e.id === "a"),
    null,
    { timeout: 120_000 },
  );
  const tokens = await events("ouvert-token", "a");
  const [done] = await events("ouvert-done", "a");
  assert.ok(tokens.length > 1, "tokens streamed one by one");
  assert.equal(tokens.map((t) => t.text).join(""), done.text);
  const bubbles = await widget("a").locator("li [part~=content]").allTextContents();
  assert.equal(bubbles.length, 2);
  assert.ok(bubbles[0].includes(payload), "the prompt shows as typed");
  assert.ok(bubbles[1].endsWith(done.text), "the answer shows as generated");
  console.log(`answer: ${JSON.stringify(done.text)}`);
  assert.equal(
    await page.evaluate(
      () => a.shadowRoot.querySelectorAll("li img, li b:not(:first-child)").length,
    ),
    0,
    "no element made from text",
  );
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.match(await widget("a").locator("[part=status]").textContent(), /jetons\/s/);
  // What the answer cost: every step reads the model's weights (246 MB of its 253 MB) once.
  const { stats } = done;
  assert.ok(stats.cost.weightBytes >= stats.completionTokens * 240e6, JSON.stringify(stats.cost));
  assert.ok(stats.cost.joules[0] > 0 && stats.cost.joules[1] > stats.cost.joules[0]);
  const line = await widget("a").locator("li [part~=cost]").textContent();
  assert.match(
    line,
    new RegExp(
      `^${stats.completionTokens} jetons · [\\d,]+\u00a0s · [\\d,]+\u00a0Go lus · [\\d,]+ à [\\d,]+\u00a0(mJ|J)`,
    ),
    line,
  );
  const method = widget("a").locator("[part~=method]");
  await method.locator("summary").click();
  assert.match(
    await method.textContent(),
    /Comment est-ce calculé.*de 80 à 330 picojoules.*0,24\u00a0Wh.*Horowitz/s,
  );
  // Generating made no request; a request from the page shows at once.
  const meter = widget("a").locator("[part~=network]");
  assert.equal(
    await meter.textContent(),
    "Réseau : aucune requête de cette page depuis le chargement du modèle",
  );
  await page.evaluate(() => fetch("/www/errors.js?meter"));
  await page.waitForFunction(() =>
    /1\u00a0requête/.test(a.shadowRoot.querySelector("[part~=network]").textContent),
  );
  assert.equal(await widget("a").getByRole("log").getAttribute("aria-busy"), "false");
  await page.screenshot({ path: join(SHOTS, "widget-answer.png") });
});

test("the stop button stops the answer within a token; the next message works", {
  timeout: 300_000,
}, async () => {
  const input = widget("b").getByRole("textbox");
  await input.fill("Write a long story about a lighthouse keeper.");
  await widget("b").getByRole("button", { name: "Send" }).click();
  await page.waitForFunction(
    () => events.filter((e) => e.type === "ouvert-token" && e.id === "b").length >= 3,
    null,
    { timeout: 120_000 },
  );
  const stop = widget("b").getByRole("button", { name: "Stop" });
  assert.ok(await stop.isVisible());
  await page.screenshot({ path: join(SHOTS, "widget-streaming.png") });
  // Count the tokens at the moment the click lands, in the page.
  await page.evaluate(() =>
    b.shadowRoot.querySelector("[part~=stop]").addEventListener(
      "click",
      () => {
        window.atStop = events.filter((e) => e.type === "ouvert-token" && e.id === "b").length;
      },
      { once: true },
    ),
  );
  await stop.click();
  const atStop = await page.evaluate(() => window.atStop);
  await page.waitForFunction(() => b.shadowRoot.querySelector("[part~=stop]").hidden);
  const afterStop = (await events("ouvert-token", "b")).length;
  assert.ok(afterStop - atStop <= 1, `${afterStop - atStop} tokens after stop`);
  assert.equal((await events("ouvert-done", "b")).length, 0);
  assert.match(
    (await widget("b").locator("li [part~=content]").allTextContents())[1],
    /\(stopped\)$/,
  );
  await input.fill("Hello!");
  await input.press("Enter");
  await page.waitForFunction(
    () => events.some((e) => e.type === "ouvert-done" && e.id === "b"),
    null,
    { timeout: 120_000 },
  );
  assert.equal(await widget("b").locator("li").count(), 4);
});

test("errors show as readable messages and ouvert-error events", { timeout: 300_000 }, async () => {
  await page.waitForFunction(
    () =>
      ["missing", "corrupt", "integrity"].every((id) =>
        events.some((e) => e.type === "ouvert-error" && e.id === id),
      ),
    null,
    { timeout: 240_000 },
  );
  const expect = {
    missing: ["network", /could not be downloaded/],
    corrupt: ["bad_magic", /pas un modèle/],
    integrity: ["integrity", /SHA-256 differs/],
  };
  for (const [id, [code, sentence]] of Object.entries(expect)) {
    const [err] = await events("ouvert-error", id);
    assert.equal(err.code, code, id);
    const alert = widget(id).getByRole("alert");
    assert.ok(await alert.isVisible(), `${id}: the error is visible`);
    assert.match(await alert.textContent(), sentence);
    assert.ok(
      await widget(id)
        .getByRole("button", { name: /Send|Envoyer/ })
        .isDisabled(),
    );
  }
  await page.screenshot({ path: join(SHOTS, "widget-errors.png"), fullPage: true });
});

test("after a failed load, “Try again” loads again (and fails again, here)", {
  timeout: 120_000,
}, async () => {
  const before = (await events("ouvert-error", "missing")).length;
  await widget("missing").getByRole("button", { name: "Try again" }).click();
  await page.waitForFunction(
    (n) => events.filter((e) => e.type === "ouvert-error" && e.id === "missing").length > n,
    before,
    { timeout: 60_000 },
  );
  assert.ok(await widget("missing").getByRole("alert").isVisible());
  assert.equal(
    env.requests.filter((p) => p.startsWith("/models/missing.gguf")).length >= 2,
    true,
    "the model was requested again",
  );
});
