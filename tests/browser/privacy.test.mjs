// The privacy promises of the README, in headless Chromium on the real model: the runtime
// works under a strict Content-Security-Policy, makes no request at all while it generates,
// and stores nothing but the model cache.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startBrowser, MODEL, openApiPage } from "./util.mjs";

const SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
// What a careful site would send: only its own origin, wasm compiled but no eval.
const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'";

let env, page;
before(async () => {
  env = await startBrowser();
  // Every page and script from the server carries the policy (a worker has its own).
  await env.context.route(/\/(csp\.html|csp\.js|www\/.*\.js)$/, async (route) => {
    const response = await route.fetch();
    await route.fulfill({
      response,
      headers: { ...response.headers(), "content-security-policy": CSP },
    });
  });
  page = await openApiPage(env, "csp.html");
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

test("under connect-src 'self' the engine loads and generates; generating makes no request", {
  timeout: 300_000,
}, async () => {
  const cspSent = await page.evaluate(async () =>
    (await fetch("/csp.js")).headers.get("content-security-policy"),
  );
  assert.equal(cspSent, CSP, "the page runs under the policy");
  await page.evaluate(
    async ({ url, sha256 }) => {
      window.engine = await window.Ouvert.createEngine({ model: url, sha256, backend: "wasm" });
    },
    { url: `/models/${MODEL}`, sha256: SHA256 },
  );
  const before = env.requests.length;
  const r = await page.evaluate(async () => {
    const out = await window.engine.complete("The capital of France is", {
      maxTokens: 24,
      temperature: 0,
    });
    const chat = await window.engine.chat.completions.create({
      messages: [{ role: "user", content: "Bonjour !" }],
      max_tokens: 8,
    });
    return {
      text: out.text ?? out,
      chat: chat.choices[0].message.content,
      violations: window.violations,
    };
  });
  assert.ok(r.text.length > 0 && r.chat.length > 0, JSON.stringify(r));
  assert.deepEqual(env.requests.slice(before), [], "generation made requests");
  assert.deepEqual(r.violations, []);
});

test("nothing is stored but the model cache: no cookie, local or session storage, IndexedDB or Cache API", async () => {
  const s = await page.evaluate(async () => {
    const opfs = [];
    for await (const name of (await navigator.storage.getDirectory()).keys()) opfs.push(name);
    return {
      cookie: document.cookie,
      local: Object.keys(localStorage),
      session: Object.keys(sessionStorage),
      indexedDB: (await indexedDB.databases()).map((d) => d.name),
      caches: await caches.keys(),
      opfs,
      cached: (await window.Ouvert.listCachedModels()).map((m) =>
        m.url.replace(location.origin, ""),
      ),
    };
  });
  assert.deepEqual(s, {
    cookie: "",
    local: [],
    session: [],
    indexedDB: [],
    caches: [],
    opfs: ["ouvert-models"],
    cached: [`/models/${MODEL}`],
  });
});

const modelRequests = () => env.requests.filter((p) => p.startsWith("/models/")).length;

test("a corrupted cached file, or one whose recorded hash is wrong, is fetched again", {
  timeout: 300_000,
}, async () => {
  const load = (sha256) =>
    page.evaluate(
      async ({ url, sha256 }) => {
        const e = await window.Ouvert.createEngine({ model: url, sha256, backend: "wasm" });
        const out = await e.complete("Paris is", { maxTokens: 4, temperature: 0 });
        await e.dispose();
        return { source: e.info.source, text: out.text };
      },
      { url: `/models/${MODEL}`, sha256 },
    );
  // Overwrite the cached file's first bytes (as a disk fault or another script would).
  await page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("ouvert-models");
    const index = JSON.parse(
      await (await (await dir.getFileHandle("index.json")).getFile()).text(),
    );
    const w = await (await dir.getFileHandle(Object.values(index)[0].file)).createWritable({
      keepExistingData: true,
    });
    await w.write({ type: "write", position: 0, data: new Uint8Array(8) });
    await w.close();
  });
  let n = modelRequests();
  let r = await load(SHA256);
  assert.equal(r.source, "network");
  assert.equal(modelRequests(), n + 1, "the model was fetched again");
  assert.ok(r.text.length > 0);
  // An index entry recording another hash than the one asked for.
  await page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("ouvert-models");
    const index = JSON.parse(
      await (await (await dir.getFileHandle("index.json")).getFile()).text(),
    );
    for (const e of Object.values(index)) e.sha256 = "0".repeat(64);
    const w = await (await dir.getFileHandle("index.json")).createWritable();
    await w.write(JSON.stringify(index));
    await w.close();
  });
  n = modelRequests();
  r = await load(SHA256);
  assert.equal(r.source, "network");
  assert.equal(modelRequests(), n + 1, "the model was fetched again");
  // Now whole and recorded right: the next load reads the cache.
  n = modelRequests();
  r = await load(SHA256);
  assert.equal(r.source, "cache");
  assert.equal(modelRequests(), n);
  const cached = await page.evaluate(() => window.Ouvert.listCachedModels());
  assert.deepEqual(
    cached.map((c) => c.sha256),
    [SHA256],
  );
});

test("storage full: the model runs without being cached, and info says why", {
  timeout: 300_000,
}, async () => {
  const cdp = await env.context.newCDPSession(page);
  await page.evaluate(() =>
    window.Ouvert.deleteCachedModel(`${location.origin}/models/gemma-3-270m-q4_k_m.gguf`),
  );
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: env.origin, quotaSize: 32 * 2 ** 20 });
  try {
    const r = await page.evaluate(async (url) => {
      const e = await window.Ouvert.createEngine({ model: url, backend: "wasm" });
      const out = await e.complete("Paris is", { maxTokens: 4, temperature: 0 });
      await e.dispose();
      return {
        cached: e.info.cached,
        skipped: e.info.cacheSkipped,
        text: out.text,
        list: await window.Ouvert.listCachedModels(),
      };
    }, `/models/${MODEL}`);
    assert.equal(r.cached, false);
    assert.equal(r.skipped, "quota");
    assert.ok(r.text.length > 0);
    assert.deepEqual(r.list, []);
  } finally {
    await cdp.send("Storage.overrideQuotaForOrigin", { origin: env.origin });
  }
});
