// Shared by the browser tests: a server on 127.0.0.1 and headless Chromium that can
// reach nothing else.
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import {
  readFileSync,
  mkdtempSync,
  writeFileSync,
  openSync,
  readSync,
  closeSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { serve } from "../../www/serve.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const MODEL = "gemma-3-270m-q4_k_m.gguf";
/** The instruct model (Qwen2.5 Coder 0.5B Instruct). */
export const INSTRUCT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

export function reference() {
  const path =
    process.env.OUVERT_REFERENCE ||
    join(ROOT, "../shared/reference/gemma-3-270m-q4_k_m.reference.json");
  return JSON.parse(readFileSync(path, "utf8"));
}

/** llama.cpp's outputs on the instruct model. */
export function instructReference() {
  const path = join(ROOT, "../shared/reference/qwen2.5-coder-0.5b-instruct-q4_k_m.reference.json");
  return JSON.parse(readFileSync(path, "utf8"));
}

/** A folder of broken model files (not a GGUF; the model cut after 4 KiB), for /bad. */
export function badFiles() {
  const dir = mkdtempSync(join(tmpdir(), "ouvert-bad-"));
  const head = Buffer.alloc(4096);
  const fd = openSync(join(ROOT, "models", MODEL), "r");
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  writeFileSync(
    join(dir, "not-a-gguf.gguf"),
    Buffer.from("<!doctype html><title>404</title>".repeat(20)),
  );
  writeFileSync(join(dir, "truncated.gguf"), head);
  return dir;
}

/** Leading greedy steps that must equal llama.cpp's: up to its first near tie. */
export function mustMatch(margins, minMargin) {
  const i = margins.findIndex((m) => m < minMargin);
  return i < 0 ? margins.length : i;
}

/**
 * Serves tests/browser with /www, /dist, /pkg and /models mounted, and starts Chromium.
 * `requests` logs every URL (path and query) the server saw, `methods` each as [method, URL]; setting `block` to a predicate on the path
 * (or `() => true`) makes the server drop those connections, as a cut network would;
 * `answer[path] = (res) => …` writes the response for a path itself.
 */
export async function startBrowser({
  webgpu = false,
  mounts = {},
  allow = [],
  profile = false,
} = {}) {
  const env = { requests: [], methods: [], block: null, answer: {} };
  const server = await serve({
    root: join(ROOT, "tests/browser"),
    mounts: {
      "/models": join(ROOT, "models"),
      "/www": join(ROOT, "www"),
      "/dist": join(ROOT, "dist"),
      "/pkg": join(ROOT, "pkg"),
      ...mounts,
    },
    onRequest: (path, url, res, req) => {
      env.requests.push(url);
      env.methods.push([req.method, url]);
      if (env.answer[path]) {
        env.answer[path](res);
        return "answered";
      }
      return !env.block?.(path);
    },
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const marker = `--ouvert-test=${process.pid}-${Date.now()}`; // finds this browser's processes
  const args = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    marker,
  ];
  if (webgpu)
    args.push(
      "--enable-unsafe-webgpu",
      "--use-webgpu-adapter=swiftshader",
      "--enable-features=Vulkan",
    );
  const options = {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
  };
  // A context of its own is off the record, and Chromium keeps such a context's origin
  // private file system in memory, read through the browser process; a visitor's profile
  // keeps it on disk, read in the page's process.
  const profileDir = profile ? mkdtempSync(join(tmpdir(), "ouvert-profile-")) : null;
  const browser = profile ? null : await chromium.launch(options);
  const context = profile
    ? await chromium.launchPersistentContext(profileDir, options)
    : await browser.newContext();
  const outside = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if ([origin, ...allow].some((o) => url.startsWith(`${o}/`))) return route.continue();
    outside.push(url);
    return route.abort();
  });
  return Object.assign(env, {
    origin,
    browser,
    context,
    outside,
    marker,
    async close() {
      await (browser ?? context).close();
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
      server.closeAllConnections();
      server.close();
    },
  });
}

/** A page on an API test page (`api.html`, or `csp.html`) once its module has loaded, page
 * errors echoed to the test output. */
export async function openApiPage(env, path = "api.html") {
  const page = await env.context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
  page.on("pageerror", (e) => console.error("[page]", e));
  await page.goto(`${env.origin}/${path}`);
  await page.waitForFunction(() => window.apiReady);
  return page;
}

/** A page on the engine harness (engine.html), page errors echoed to the test output. */
export async function openHarness(env, build = "wasm") {
  const page = await env.context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error("[page]", m.text()));
  await page.goto(`${env.origin}/engine.html?build=${build}`);
  await page.waitForFunction(() => window.harnessReady);
  return page;
}
