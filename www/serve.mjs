// A static file server for the demo and the browser tests: 127.0.0.1 only, correct
// `application/wasm` type, COOP/COEP headers (cross-origin isolation, for wasm threads).
//   node www/serve.mjs [--port N] [--root DIR] [--mount /models=DIR]...
import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize, resolve } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ts": "text/plain; charset=utf-8",
};

// `onRequest(path, url, res, req)` sees every request; returning false drops the connection, as a
// network failure would (the tests use it to cut the network); returning "answered" means
// it wrote the response itself.
// Cross-origin isolation (COOP and COEP): what a page needs for wasm threads.
export const ISOLATED = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};
// What public CDNs send, so that pages on any origin (isolated or not) can load the files.
export const CDN = {
  "Access-Control-Allow-Origin": "*",
  "Cross-Origin-Resource-Policy": "cross-origin",
};

// `headers` go with every response (default: ISOLATED).
export function serve({ root, mounts = {}, port = 0, onRequest = () => true, headers = ISOLATED }) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const seen = onRequest(path, req.url, res, req);
    if (seen === false) {
      req.socket.destroy();
      return;
    }
    if (seen === "answered") return;
    let base = resolve(root),
      rel = path,
      matched = "";
    for (const [prefix, dir] of Object.entries(mounts)) {
      // the longest matching mount wins
      if (path.startsWith(`${prefix}/`) && prefix.length > matched.length) {
        base = resolve(dir);
        rel = path.slice(prefix.length);
        matched = prefix;
      }
    }
    const file = normalize(join(base, rel.endsWith("/") ? `${rel}index.html` : rel));
    const sent = { ...headers, "Cache-Control": "no-cache" };
    let stat;
    try {
      stat = file.startsWith(base) && statSync(file);
    } catch {
      stat = null;
    }
    if (!stat?.isFile()) {
      res.writeHead(404, sent);
      res.end("not found");
      return;
    }
    res.writeHead(200, {
      ...sent,
      "Content-Type": TYPES[extname(file)] || "application/octet-stream",
      "Content-Length": stat.size,
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    createReadStream(file).pipe(res);
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const opt = (name, d) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : d;
  };
  const mounts = {};
  args.forEach((a, i) => {
    if (a === "--mount") {
      const [p, d] = args[i + 1].split("=");
      mounts[p] = d;
    }
  });
  const server = await serve({
    root: opt("--root", "www"),
    mounts,
    port: Number(opt("--port", 8080)),
  });
  console.log(`serving on http://127.0.0.1:${server.address().port}/`);
}
