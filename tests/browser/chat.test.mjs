// <ouvert-chat> with the instruct model (Qwen2.5 Coder 0.5B Instruct) in headless Chromium,
// as a blog's visitor meets it: nothing downloads until asked, a conversation whose next
// turn computes only its new tokens, code shown as code, a conversation that outgrows a
// 512-token context and goes on, and regenerate / edit / new conversation.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startBrowser, ROOT, INSTRUCT_MODEL } from "./util.mjs";

const SHOTS = join(ROOT, "target/screenshots");
const MODEL_PATH = `/models/${INSTRUCT_MODEL}`;
let env, page;
// [method, url] of every request for the model file, as the server saw them.
const modelRequests = () => env.methods.filter(([, url]) => url.startsWith(MODEL_PATH));

before(async () => {
  env = await startBrowser();
  page = await env.context.newPage({ viewport: { width: 900, height: 900 } });
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/chat.html`);
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

const q = () => page.locator("#q");
const events = (type) =>
  page.evaluate((type) => events.filter((e) => e.type === type).map((e) => e.detail), type);
const contents = () => q().locator("li[part~=message] [part~=content]").allTextContents();

async function say(text) {
  const before = (await events("ouvert-done")).length;
  const input = q().getByRole("textbox");
  await input.fill(text);
  await input.press("Enter");
  await page.waitForFunction(
    (n) =>
      events.filter((e) => e.type === "ouvert-done").length > n ||
      events.some((e) => e.type === "ouvert-error"),
    before,
    { timeout: 240_000 },
  );
  assert.deepEqual(await events("ouvert-error"), [], "no error");
  return (await events("ouvert-done")).at(-1);
}

test("nothing is downloaded until the visitor asks; a widget without a model says so", {
  timeout: 60_000,
}, async () => {
  const start = q().getByRole("button", { name: /Load the model/ });
  await start.waitFor();
  await page.waitForFunction(() =>
    /\(491\sMB\)/.test(q.shadowRoot.querySelector("[part~=start-button]").textContent),
  );
  assert.match(await start.textContent(), /Load the model \(491\sMB\)/);
  await page.waitForTimeout(500);
  assert.deepEqual(
    modelRequests().filter(([method]) => method !== "HEAD"),
    [],
    "only a HEAD request for the size",
  );
  assert.ok(await q().getByRole("button", { name: "Send" }).isDisabled());
  const notice = page.locator("#none").locator("[part~=notice]");
  assert.ok(await notice.isVisible(), "no model: a visible notice");
  assert.match(await notice.textContent(), /model attribute/);
  await page.screenshot({ path: join(SHOTS, "chat-before-load.png") });
});

test("a three-turn conversation: code as code, turn 2 computes only its new tokens, the oldest turns give way past 512 tokens", {
  timeout: 900_000,
}, async () => {
  await q()
    .getByRole("button", { name: /Load the model/ })
    .click();
  await page.waitForFunction(() => q.engine, null, { timeout: 240_000 });
  assert.ok(
    modelRequests().some(([m]) => m === "GET"),
    "the model downloads after the click",
  );
  assert.ok(await q().locator("[part~=notice]").isHidden(), "an instruct model needs no notice");
  assert.match(await q().locator("[part~=status]").textContent(), /this device's processor/);

  // Turn 1: Qwen's greedy answer opens a Python code block, and 64 tokens cut it short.
  const t1 = await say("Write a Python function that reverses a string.");
  assert.equal(t1.finishReason, "length");
  const code = q().locator("li[part~=assistant] pre[part~=code]");
  assert.equal(await code.count(), 1, "the code block is shown as code");
  assert.match(await code.textContent(), /def \w+\(/);
  assert.doesNotMatch(await code.textContent(), /```/);
  assert.ok(await q().locator("small[part~=cut]").isVisible(), "the cut answer says so");
  const log = q().getByRole("log");
  assert.ok(
    await log.evaluate((l) => l.scrollHeight - l.scrollTop - l.clientHeight < 8),
    "the log followed the answer",
  );
  await page.screenshot({ path: join(SHOTS, "chat-turn-1.png") });

  // Turn 2 extends the conversation: the first prompt and answer are in the KV cache.
  const t2 = await say("Now in one sentence: what does it do?");
  const fresh = t2.stats.promptTokens - t2.stats.cachedPromptTokens;
  console.log(
    `turn 1: ${t1.stats.promptTokens} prompt tokens, first token ${t1.stats.timeToFirstTokenMs.toFixed(0)} ms; ` +
      `turn 2: ${t2.stats.promptTokens} prompt tokens of which ${t2.stats.cachedPromptTokens} cached, ` +
      `first token ${t2.stats.timeToFirstTokenMs.toFixed(0)} ms`,
  );
  assert.ok(
    t2.stats.cachedPromptTokens >= t1.stats.promptTokens + t1.stats.completionTokens - 1,
    "turn 1's prompt and answer come from the cache",
  );
  assert.ok(fresh <= 25, `turn 2 computed ${fresh} prompt tokens`);

  // Turn 3 outgrows the 512-token context: the oldest turn goes, the answer comes.
  const story = Array.from(
    { length: 14 },
    (_, i) =>
      `Paragraph ${i + 1}: the lighthouse keeper climbed the stairs, trimmed the wick and watched the ships.`,
  ).join(" ");
  // While it streams, a reader who scrolled up stays where they are.
  const t3 = say(`${story} Summarise this story in one sentence.`);
  await page.waitForFunction(
    () =>
      events.filter((e) => e.type === "ouvert-token").length > 0 &&
      q.shadowRoot.querySelectorAll("li[part~=assistant]").length >= 3,
    null,
    { timeout: 240_000 },
  );
  await log.evaluate((l) => {
    l.scrollTop = 0;
  });
  const done3 = await t3;
  assert.equal(await log.evaluate((l) => l.scrollTop), 0, "scrolled up: the log stays put");
  const [trim] = await events("ouvert-trim");
  assert.ok(trim?.droppedMessages >= 2, `the trim is reported: ${JSON.stringify(trim)}`);
  assert.equal(done3.droppedMessages, trim.droppedMessages);
  assert.ok(done3.stats.promptTokens + 64 <= 512);
  assert.ok(done3.text.length > 0, "the conversation goes on");
  assert.ok(await q().locator("li[part~=trim]").isVisible(), "the trim is shown in the log");
  await log.evaluate((l) => {
    l.scrollTop = l.scrollHeight;
  });
  await page.screenshot({ path: join(SHOTS, "chat-trimmed.png") });
});

test("regenerate, edit and resend, new conversation", { timeout: 600_000 }, async () => {
  const before = (await contents()).length;
  const last = (await contents()).at(-1);
  await q().getByRole("button", { name: "Regenerate" }).click();
  await page.waitForFunction(
    (n) => events.filter((e) => e.type === "ouvert-done").length >= n,
    (await events("ouvert-done")).length + 1,
    { timeout: 240_000 },
  );
  assert.equal((await contents()).length, before, "the answer is replaced, not added");
  assert.equal((await contents()).at(-1), last, "greedy: the same answer again");

  await q().getByRole("button", { name: "Edit" }).click();
  const input = q().getByRole("textbox");
  assert.match(await input.inputValue(), /Summarise this story/);
  assert.equal((await contents()).length, before - 2, "the message and its answer left the log");
  const done = await say("What is 2 + 2? Answer with a number.");
  assert.match(done.text, /4/);

  // A box further down with load="visible" starts once scrolled to (sharing the engine).
  assert.equal(await page.evaluate(() => v.engine), null, "not loaded out of sight");
  await page.locator("#v").scrollIntoViewIfNeeded();
  await page.waitForFunction(() => v.engine, null, { timeout: 60_000 });
  assert.ok(await page.evaluate(() => v.engine === q.engine), "one engine for one model");
  await page.locator("#q").scrollIntoViewIfNeeded();

  await q().getByRole("button", { name: "New conversation" }).click();
  assert.equal(await q().locator("li").count(), 0);
  const fresh = await say("Say hi.");
  assert.equal(fresh.droppedMessages, 0);
  await page.screenshot({ path: join(SHOTS, "chat-new.png") });
});
