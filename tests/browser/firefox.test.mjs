// The API's core cases and the widget's conversation in Firefox (Debian's firefox-esr,
// driven by puppeteer-core over WebDriver BiDi): a script tag on a blog is visited from
// Firefox as much as from Chrome. Load from a URL, greedy tokens as llama.cpp's, abort
// mid-stream, the cache's second load, the runtime and model from a CDN, and a two-turn
// conversation in <ouvert-chat> with the instruct model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { serve, CDN } from "../../www/serve.mjs";
import { ROOT, MODEL, INSTRUCT_MODEL, instructReference, mustMatch } from "./util.mjs";

const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
let server, cdn, origin, cdnOrigin, browser;
const seen = []; // every URL the pages asked for

before(async () => {
  const mounts = {
    "/models": join(ROOT, "models"),
    "/www": join(ROOT, "www"),
    "/pkg": join(ROOT, "pkg"),
  };
  // /cdn-chat.html: the chat page with the widget's script and the model from the CDN.
  const chatPage = readFileSync(join(ROOT, "tests/browser/chat.html"), "utf8");
  server = await serve({
    root: join(ROOT, "tests/browser"),
    mounts,
    onRequest: (path, _url, res) => {
      if (path !== "/cdn-chat.html") return true;
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(
        chatPage
          .replaceAll('"/www/', `"${cdnOrigin}/pkg/`)
          .replaceAll('"/models/', `"${cdnOrigin}/models/`),
      );
      return "answered";
    },
  });
  cdn = await serve({ root: join(ROOT, "pkg"), mounts, headers: CDN });
  origin = `http://127.0.0.1:${server.address().port}`;
  cdnOrigin = `http://localhost:${cdn.address().port}`;
  browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      // Loopback stays loopback; nothing phones home.
      "network.proxy.allow_hijacking_localhost": false,
      "browser.safebrowsing.malware.enabled": false,
      "browser.safebrowsing.phishing.enabled": false,
      "app.update.enabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
    },
  });
});
after(async () => {
  await browser?.close();
  for (const s of [server, cdn]) {
    s?.closeAllConnections();
    s?.close();
  }
  const outside = seen.filter((u) => ![origin, cdnOrigin].some((o) => u.startsWith(`${o}/`)));
  assert.deepEqual(outside, [], "no request may leave the two loopback origins");
});

async function open(path) {
  const page = await browser.newPage();
  page.on("request", (r) => {
    if (/^https?:/.test(r.url())) seen.push(r.url());
  });
  page.on("console", (m) => m.type() === "error" && console.error("[firefox]", m.text()));
  page.on("pageerror", (e) => console.error("[firefox]", e));
  await page.goto(`${origin}${path}`);
  return page;
}

test("Firefox: load from a URL, llama.cpp's greedy tokens, abort mid-stream, the cache's second load", {
  timeout: 600_000,
}, async () => {
  const page = await open("/api.html");
  await page.waitForFunction(() => window.apiReady);
  // The instruct model's code prompt: 28 greedy steps before llama.cpp's first near tie.
  const p = instructReference().prompts.find((x) => x.id === "raw_code");
  const n = mustMatch(p.llama_cpp.step_margin, 0.25);
  const r = await page.evaluate(
    async ({ url, ids, n }) => {
      const { createEngine } = window.Ouvert;
      const engine = await createEngine({ model: url, backend: "wasm" });
      const greedy = await engine.complete(
        { ids },
        { maxTokens: n, temperature: 0, stopAtEos: false },
      );
      // Abort after three pieces: the request ends with "aborted", the next one works.
      const ctl = new AbortController();
      let pieces = 0,
        aborted = null;
      try {
        for await (const _ of engine.generate("Once upon a time", {
          maxTokens: 200,
          signal: ctl.signal,
        })) {
          if (++pieces === 3) ctl.abort();
        }
      } catch (e) {
        aborted = e.code;
      }
      const next = await engine.complete("Bonjour", { maxTokens: 4, temperature: 0 });
      const first = engine.info;
      await engine.dispose();
      const again = await createEngine({ model: url, backend: "wasm" });
      const second = again.info;
      await again.dispose();
      return { tokens: greedy.tokens, pieces, aborted, next: next.text, first, second };
    },
    { url: `/models/${INSTRUCT_MODEL}`, ids: p.llama_cpp.prompt_ids, n },
  );
  await page.close();
  assert.ok(n >= 20);
  assert.deepEqual(r.tokens.slice(0, n), p.llama_cpp.greedy_ids.slice(0, n));
  assert.equal(r.aborted, "aborted");
  assert.ok(r.pieces <= 4, `${r.pieces} pieces after the abort`);
  assert.ok(r.next.length > 0);
  assert.equal(r.first.source, "network");
  assert.equal(r.first.cached, true, JSON.stringify(r.first));
  assert.equal(r.second.source, "cache");
});

test("Firefox: the runtime and the model from a CDN", { timeout: 300_000 }, async () => {
  const page = await open("/api.html");
  const r = await page.evaluate(
    async ({ cdnOrigin, model }) => {
      const { createEngine } = await import(`${cdnOrigin}/pkg/ouvert.js`);
      try {
        const engine = await createEngine({
          model: `${cdnOrigin}/models/${model}`,
          backend: "wasm",
        });
        const out = await engine.complete("The capital of France is", {
          maxTokens: 6,
          temperature: 0,
        });
        await engine.dispose();
        return { text: out.text };
      } catch (e) {
        return { error: `${e.code}: ${e.message}` };
      }
    },
    { cdnOrigin, model: MODEL },
  );
  await page.close();
  assert.equal(r.error, undefined);
  assert.ok(r.text.length > 0);
});

test("Firefox: a two-turn conversation in <ouvert-chat> from a CDN with the instruct model", {
  timeout: 600_000,
}, async () => {
  const page = await open("/cdn-chat.html");
  assert.match(
    await page.evaluate(() => document.querySelector("script[type=module][src]").src),
    /^http:\/\/localhost:/,
    "the widget's script comes from the CDN",
  );
  await page.waitForFunction(
    () =>
      document.getElementById("q")?.shadowRoot?.querySelector("[part~=start-button]")?.offsetParent,
  );
  await page.evaluate(() =>
    document.getElementById("q").shadowRoot.querySelector("[part~=start-button]").click(),
  );
  await page.waitForFunction(() => document.getElementById("q").engine, { timeout: 240_000 });
  const say = async (text) => {
    const before = await page.evaluate(() => events.filter((e) => e.type === "ouvert-done").length);
    await page.evaluate((text) => document.getElementById("q").send(text), text);
    await page.waitForFunction(
      (n) =>
        events.filter((e) => e.type === "ouvert-done").length > n ||
        events.some((e) => e.type === "ouvert-error"),
      { timeout: 240_000 },
      before,
    );
    const errors = await page.evaluate(() => events.filter((e) => e.type === "ouvert-error"));
    assert.deepEqual(errors, []);
    return page.evaluate(() => events.filter((e) => e.type === "ouvert-done").at(-1).detail);
  };
  const t1 = await say("My name is Léa. Say hello to me.");
  const t2 = await say("What is my name?");
  await page.close();
  assert.ok(t1.text.length > 0);
  assert.match(t2.text, /Léa/);
  assert.ok(t2.stats.cachedPromptTokens >= t1.stats.promptTokens, "turn 2 reuses the cache");
});
