// The runtime embedded from a CDN: a page on one origin (127.0.0.1) loads ouvert.js or
// ouvert-chat.js, the wasm and the model from another (localhost), which sends the headers
// public CDNs send. With and without cross-origin isolation on the page (threads only with
// it), through the API and the widget; and a page whose CSP forbids the worker gets an
// OuvertError naming the directive to add.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBrowser, ROOT, MODEL, INSTRUCT_MODEL, instructReference } from "./util.mjs";
import { serve, CDN, ISOLATED } from "../../www/serve.mjs";

let env, cdn, cdnOrigin;
before(async () => {
  cdn = await serve({
    root: join(ROOT, "pkg"),
    mounts: { "/pkg": join(ROOT, "pkg"), "/models": join(ROOT, "models") },
    headers: CDN,
  });
  cdnOrigin = `http://localhost:${cdn.address().port}`;
  env = await startBrowser({ allow: [cdnOrigin] });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave the two loopback origins");
  await env.close();
  cdn.closeAllConnections();
  cdn.close();
});

/** A page at `path` on the page's origin: `body` as its HTML, with `headers`. */
function page(path, body, headers = {}) {
  env.answer[path] = (res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", ...headers });
    res.end(`<!doctype html><meta charset="utf-8"><title>CDN test</title>${body}`);
  };
}

async function open(path) {
  const p = await env.context.newPage();
  p.on("pageerror", (e) => console.error("[page]", e));
  p.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
  await p.goto(`${env.origin}${path}`);
  return p;
}

/** createEngine and a greedy completion through `ouvert.js` from the CDN, in the page. */
function complete(p, options) {
  return p.evaluate(
    async ({ cdnOrigin, options }) => {
      const { createEngine } = await import(`${cdnOrigin}/pkg/ouvert.js`);
      try {
        const engine = await createEngine({ ...options, model: `${cdnOrigin}${options.model}` });
        const out = await engine.complete("The capital of France is", {
          maxTokens: 8,
          temperature: 0,
        });
        const info = engine.info;
        await engine.dispose();
        return { text: out.text, threads: info.threads, isolated: crossOriginIsolated };
      } catch (e) {
        return { error: { name: e.name, code: e.code, message: e.message } };
      }
    },
    { cdnOrigin, options },
  );
}

test("the API from a CDN on a page without isolation: one thread", {
  timeout: 300_000,
}, async () => {
  page("/plain.html", "<p>A blog post.</p>");
  const p = await open("/plain.html");
  const r = await complete(p, { model: `/models/${MODEL}`, backend: "wasm" });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.isolated, false);
  assert.equal(r.threads, 1);
  assert.ok(r.text.length > 0, JSON.stringify(r));
  await p.close();
});

test("the API from a CDN on a cross-origin isolated page: the threaded build", {
  timeout: 300_000,
}, async () => {
  page("/isolated.html", "<p>An isolated page.</p>", ISOLATED);
  const p = await open("/isolated.html");
  const r = await complete(p, { model: `/models/${MODEL}`, backend: "wasm", threads: 2 });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.isolated, true);
  assert.equal(r.threads, 2, "the pool of workers started from the CDN's script");
  assert.ok(r.text.length > 0);
  await p.close();
});

test("the widget from a CDN holds a conversation with the instruct model", {
  timeout: 600_000,
}, async () => {
  page(
    "/widget.html",
    `<script type="module" src="${cdnOrigin}/pkg/ouvert-chat.js"></script>
     <ouvert-chat id="w" model="${cdnOrigin}/models/${INSTRUCT_MODEL}" max-tokens="24" temperature="0"
       system="Tu es un assistant concis qui répond en français."></ouvert-chat>`,
  );
  const p = await open("/widget.html");
  const w = p.locator("#w");
  await w.getByRole("button", { name: /Load the model/ }).click();
  await p.waitForFunction(
    () =>
      document.getElementById("w").engine ||
      document.getElementById("w").shadowRoot.querySelector("[part~=error]:not([hidden])"),
    null,
    { timeout: 240_000 },
  );
  const error = w.locator("[part~=error]");
  assert.ok(await error.isHidden(), await error.textContent());
  const input = w.getByRole("textbox");
  await input.fill("Quelle est la capitale du Canada ?");
  await input.press("Enter");
  await p.waitForFunction(
    () => document.getElementById("w").shadowRoot.querySelector("[part~=regenerate]"),
    null,
    { timeout: 240_000 },
  );
  // llama.cpp's greedy answer to the same conversation (the reference's chat_system prompt).
  const want = instructReference().prompts.find((x) => x.id === "chat_system").llama_cpp;
  const answer = await w.locator("li[part~=assistant] [part~=content]").textContent();
  assert.equal(answer, want.greedy_text.slice(0, want.greedy_text.indexOf("<|im_end|>")));
  await p.close();
});

test("a CSP that forbids the worker gives csp_blocked, naming the directive", {
  timeout: 120_000,
}, async () => {
  const csp = `default-src 'none'; script-src 'self' ${cdnOrigin} 'unsafe-inline' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self' ${cdnOrigin}`;
  page("/csp.html", "<p>A strict page.</p>", { "Content-Security-Policy": csp });
  const p = await open("/csp.html");
  const r = await complete(p, { model: `/models/${MODEL}`, backend: "wasm" });
  assert.equal(r.error?.name, "OuvertError", JSON.stringify(r));
  assert.equal(r.error.code, "csp_blocked");
  assert.match(r.error.message, /worker-src/);
  assert.match(r.error.message, /blob:/);
  await p.close();
});

test("a CSP that forbids the model's host or compiling wasm gives csp_blocked, naming the directive", {
  timeout: 120_000,
}, async () => {
  const policies = {
    // The worker may start, but the model's host is not in connect-src.
    "/no-connect.html": `script-src 'self' ${cdnOrigin} 'unsafe-inline' 'wasm-unsafe-eval'; worker-src blob:; connect-src 'self'`,
    // Everything but compiling WebAssembly.
    "/no-wasm.html": `script-src 'self' ${cdnOrigin} 'unsafe-inline'; worker-src blob:; connect-src 'self' ${cdnOrigin}`,
  };
  const errors = {};
  for (const [path, csp] of Object.entries(policies)) {
    page(path, "<p>A strict page.</p>", { "Content-Security-Policy": csp });
    const p = await open(path);
    errors[path] = (await complete(p, { model: `/models/${MODEL}`, backend: "wasm" })).error;
    await p.close();
  }
  const noConnect = errors["/no-connect.html"];
  assert.equal(noConnect?.code, "csp_blocked", JSON.stringify(noConnect));
  assert.match(noConnect.message, /connect-src/);
  const noWasm = errors["/no-wasm.html"];
  assert.equal(noWasm?.code, "csp_blocked", JSON.stringify(noWasm));
  assert.match(noWasm.message, /'wasm-unsafe-eval'/);
});
