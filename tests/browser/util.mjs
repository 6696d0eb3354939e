// Shared by the browser tests: a server on 127.0.0.1 and headless Chromium that can
// reach nothing else.
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { readFileSync } from "node:fs";
import { serve } from "../../www/serve.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const MODEL = "gemma-3-270m-q4_k_m.gguf";

export function reference() {
  const path = process.env.OUVERT_REFERENCE || join(ROOT, "../shared/reference/gemma-3-270m-q4_k_m.reference.json");
  return JSON.parse(readFileSync(path, "utf8"));
}

/** Leading greedy steps that must equal llama.cpp's: up to its first near tie. */
export function mustMatch(margins, minMargin) {
  const i = margins.findIndex((m) => m < minMargin);
  return i < 0 ? margins.length : i;
}

export async function startBrowser({ webgpu = false } = {}) {
  const server = await serve({
    root: join(ROOT, "tests/browser"),
    mounts: { "/pkg": join(ROOT, "www/pkg"), "/models": join(ROOT, "models"), "/www": join(ROOT, "www") },
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan");
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args });
  const context = await browser.newContext();
  const outside = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/")) return route.continue();
    outside.push(url);
    return route.abort();
  });
  return {
    origin, browser, context, outside,
    async close() { await browser.close(); server.close(); },
  };
}
