// What the Web Worker that owns the wasm engine does: it fetches (or reads from the cache) the model
// straight into wasm memory, then serves requests one at a time. Generation runs a step
// (one prompt chunk or one token) at a time and yields between steps, so an abort message
// is seen within one token.
import { cspError, FILE_ERRORS } from "./errors.js";
import * as grammar from "./wasm-grammar/ouvert.js";
import {
  beginWrite,
  deleteCachedModel,
  lookup,
  readMergeOrder,
  skipReason,
  writeMergeOrder,
} from "./store.js";

let engine = null;
let wasm = null; // the engine's module: the one-thread build, or the threaded one
let ready = null; // its initialization (and thread pool), once

/**
 * Serves the page's requests with `mod`, the wasm-bindgen module of one of the builds.
 * Each build has its own worker entry (`worker.js`, `worker-relaxed.js`, `worker-mt.js`,
 * `worker-mt-relaxed.js`) that imports it
 * statically: a worker without dynamic imports bundles as one file in every bundler.
 */
export function serve(mod) {
  wasm = mod;
}

// What the page's Content-Security-Policy blocked in this worker (the model's fetch, the
// wasm's compilation), to name the directive when that fails.
let violation = null;
self.addEventListener("securitypolicyviolation", (e) => {
  violation = { effectiveDirective: e.effectiveDirective, blockedURI: e.blockedURI };
});
// The violation event may come a task after the failure it caused: wait that task.
const cspBlocked = async () => {
  await new Promise((resolve) => setTimeout(resolve, 0));
  return violation && cspError(violation);
};

// `ouvert.js` asks for more than one thread only from the threaded build's worker, and
// sends the build's wasm compiled when the page could compile it.
function start(threads, module) {
  ready ??= (async () => {
    try {
      await wasm.default(module ? { module_or_path: module } : undefined);
    } catch (e) {
      ready = null;
      throw (await cspBlocked()) ?? e;
    }
    if (threads > 1) {
      await wasm.initThreadPool(threads);
      wasm.threadsStarted(threads);
    }
  })();
  return ready;
}

// Every request this worker makes once a model is loaded (the grammar module's wasm, say)
// goes to the page: the engine's half of the page's network meter (`watchNetwork`).
let loadedAt = Infinity;
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if (e.startTime >= loadedAt) post({ type: "request", url: e.name });
  }).observe({ type: "resource" });
} catch {
  // No resource timing in this worker: the meter then sees the page's requests only.
}

let queue = Promise.resolve();
const aborted = new Set();

const post = (msg) => postMessage(msg);
const fail = (code, message) => Object.assign(new Error(message), { code });
const errorOf = (e) => ({ code: e?.code ?? "internal", message: e?.message ?? String(e) });

// A zero-delay yield to the event loop (setTimeout would be clamped to 4 ms per token).
const channel = new MessageChannel();
let wake = null;
channel.port1.onmessage = () => wake?.();
const yieldToEvents = () =>
  new Promise((resolve) => {
    wake = resolve;
    channel.port2.postMessage(null);
  });

self.onmessage = ({ data: msg }) => {
  if (msg.type === "abort") {
    aborted.add(msg.id);
    return;
  }
  // Requests run in order, one at a time: the engine has one KV cache.
  queue = queue
    .then(() => handle(msg))
    .catch((e) => {
      // A lost GPU moved the engine to wasm: the page's `info.backend` follows.
      if (engine && e?.code?.startsWith("webgpu")) post({ type: "info", info: engine.info() });
      post({ type: "error", id: msg.id, error: errorOf(e) });
    });
};

// The worker's whole protocol. From the page: `load`, `call` (one of CALLS), `generate`,
// `score`, `abort`. To the page: `progress` and `ready` (a load), `result` (a call),
// `prompt`, `prefill`, `piece` and `done` (a generation), `scoring` and `score` (a
// scoring), `info` (the engine moved to wasm), `request` (this worker fetched something
// after the load), and `error` for any request, an unknown one included.
const CALLS = new Set(["tokenize", "detokenize", "tokenStrings", "tokenPieces", "encodeChat"]);

async function handle(msg) {
  switch (msg.type) {
    case "load":
      return load(msg);
    case "call": {
      if (!CALLS.has(msg.method))
        throw fail(
          "invalid_argument",
          `the engine's worker has no method ${JSON.stringify(msg.method)}; it answers ${[...CALLS].join(", ")}`,
        );
      if (!engine) throw fail("disposed", "the engine is not loaded");
      const value = await engine[msg.method](...msg.args);
      return post({
        type: "result",
        id: msg.id,
        value: ArrayBuffer.isView(value) ? Array.from(value) : value,
      });
    }
    case "generate":
      return generate(msg);
    case "score":
      return score(msg);
    default:
      throw fail(
        "invalid_argument",
        `unknown message ${JSON.stringify(msg?.type)}; the engine's worker answers load, call, generate, score and abort`,
      );
  }
}

// A prompt's ids: text (BOS as the model wants it), ids, or a conversation through the
// chat template.
function promptIds(prompt) {
  if (prompt.messages) return engine.encodeChat(prompt.messages, prompt.tools);
  return prompt.ids ? Uint32Array.from(prompt.ids) : engine.tokenize(prompt.text, false);
}

async function score({ id, prompt, options }) {
  if (!engine) throw fail("disposed", "the engine is not loaded");
  if (aborted.delete(id)) throw fail("aborted", "scoring was aborted before it started");
  engine.startScore(promptIds(prompt), options);
  try {
    for (;;) {
      await yieldToEvents();
      if (aborted.delete(id)) throw fail("aborted", "scoring was aborted");
      const event = await engine.scoreStep();
      if (event.type === "done") return post({ type: "score", id, score: event.score });
      post({ type: "scoring", id, done: event.done, total: event.total });
    }
  } finally {
    engine.cancel();
  }
}

async function generate({ id, prompt, options }) {
  if (!engine) throw fail("disposed", "the engine is not loaded");
  if (aborted.delete(id)) throw fail("aborted", "generation was aborted before it started");
  // A conversation too long for the context loses its oldest turns (unless truncate is
  // false: then the engine answers context_overflow).
  let ids;
  let droppedMessages = 0;
  if (prompt.messages && options.truncate !== false) {
    ({ ids, droppedMessages } = engine.encodeChatFitting(prompt.messages, options, prompt.tools));
  } else {
    ids = promptIds(prompt);
  }
  const constraint = await constraintFor(options.responseFormat);
  post({ type: "prompt", id, ids: Array.from(ids), droppedMessages });
  try {
    engine.start(ids, options, constraint);
    for (;;) {
      await yieldToEvents();
      if (aborted.delete(id)) {
        engine.cancel();
        throw fail("aborted", "generation was aborted");
      }
      const event = await engine.step();
      post({ ...event, id });
      if (event.type === "done") return;
    }
  } finally {
    engine.cancel(); // the engine lets go of the constraint before it is freed
    constraint?.free();
  }
}

// Constrained decoding lives in a wasm module of its own (llguidance, ~0.5 MB gzipped),
// fetched and compiled on the first request with a responseFormat (its small JS glue is
// imported statically: a worker without dynamic imports bundles as one file everywhere);
// it reads the model's vocabulary once.
let grammarReady = null;
let vocabulary = null; // { engine, tokens }: the vocabulary of the engine it was read from

async function constraintFor(format) {
  if (format == null || format.type === "text") return undefined;
  grammarReady ??= grammar.default().catch(async (e) => {
    grammarReady = null;
    throw (
      (await cspBlocked()) ??
      fail("network", `the grammar module could not be loaded (${e.message}); try again`)
    );
  });
  await grammarReady;
  if (vocabulary?.engine !== engine) {
    vocabulary?.tokens.free();
    const { bytes, ends, stopIds } = engine.grammarVocabulary();
    vocabulary = { engine, tokens: new grammar.GrammarVocabulary(bytes, ends, stopIds) };
  }
  return vocabulary.tokens.matcher(JSON.stringify(format));
}

/**
 * A cached file read straight into wasm memory through a synchronous OPFS handle, several
 * times faster than its stream; null when no handle can be had (another load holds one).
 */
async function readCached(handle, size, onChunk, newLoader) {
  let access;
  try {
    access = await handle.createSyncAccessHandle();
  } catch {
    return null;
  }
  try {
    const loader = newLoader(size, false);
    while (loader.loaded < size) {
      const n = access.read(loader.remaining().subarray(0, 16 << 20), { at: loader.loaded });
      if (n === 0)
        throw fail(
          "truncated_file",
          `the cached model ends after ${loader.loaded} of ${size} bytes`,
        );
      loader.advance(n);
      onChunk(null, loader.loaded);
    }
    return loader;
  } finally {
    access.close();
  }
}

/** Reads `stream` into a new ModelLoader of `size` bytes (buffering when size is unknown). */
async function fill(stream, size, { hash, onChunk, newLoader }) {
  const reader = stream.getReader();
  let loader = size != null ? newLoader(size, hash) : null;
  const buffered = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loader) {
      if (loaded + value.byteLength > size)
        throw fail(
          "truncated_file",
          `the server sent more than the announced ${size} bytes; the file changed during the download`,
        );
      loader.push(value);
    } else {
      buffered.push(value);
      try {
        checkFits(loaded + value.byteLength);
      } catch (e) {
        await reader.cancel().catch(() => {});
        throw e;
      }
    }
    loaded += value.byteLength;
    onChunk(value, loaded);
  }
  if (!loader) {
    loader = newLoader(loaded, hash);
    for (const chunk of buffered.splice(0)) loader.push(chunk);
  }
  if (loader.loaded < size)
    throw fail(
      "truncated_file",
      `only ${loader.loaded} of ${size} bytes arrived; the connection was cut, load the model again`,
    );
  return loader;
}

/** The cached copy of `url` with its tokenizer's merge order, or null (none, or another version). */
async function findCached(url, sha256) {
  const cached = await lookup(url, sha256);
  return cached && { ...cached, mergeOrder: await readMergeOrder(cached.name) };
}

/** Where the model's bytes come from: a Blob, the cache (`cached`, a `findCached`), or the network. */
async function open(model, cached) {
  if (typeof model !== "string") {
    const blob = model instanceof Blob ? model : new Blob([model]);
    return { file: blob, size: blob.size, source: "file" };
  }
  const hit = await cached;
  if (hit)
    return {
      file: hit.file,
      handle: hit.handle,
      name: hit.name,
      size: hit.file.size,
      source: "cache",
      sha256: hit.sha256,
      mergeOrder: hit.mergeOrder,
    };
  let res;
  try {
    res = await fetch(model);
  } catch (e) {
    const blocked = await cspBlocked();
    if (blocked) throw blocked;
    throw fail(
      "network",
      `could not download the model from ${model} (${e.message}); check the URL, the network and the server's CORS headers`,
    );
  }
  if (!res.ok)
    throw fail(
      "network",
      `the server answered ${res.status} ${res.statusText} for ${model}; check the model URL`,
    );
  // A compressed transfer's Content-Length is not the file's size.
  const length = res.headers.get("Content-Encoding") ? null : res.headers.get("Content-Length");
  return { stream: res.body, size: length == null ? null : Number(length), source: "network" };
}

// What a page can hold: a wasm32 memory is at most 4 GiB (the engine's own state included),
// and no more than the device's memory when the browser says (navigator.deviceMemory, GiB).
const WASM_LIMIT = 2 ** 32 - 256 * 2 ** 20;
function checkFits(bytes) {
  const device = navigator.deviceMemory ? navigator.deviceMemory * 2 ** 30 : Infinity;
  if (bytes > Math.min(WASM_LIMIT, device)) {
    const mb = (n) => `${Math.round(n / 2 ** 20)} MB`;
    throw fail(
      "model_too_large",
      `the model is ${mb(bytes)}; a page can hold at most ${mb(Math.min(WASM_LIMIT, device))} here${device < WASM_LIMIT ? " (this device's memory)" : " (a browser's wasm memory)"}; pick a smaller model or quantization`,
    );
  }
}

// A cached copy the engine rejects as a file (damaged on disk) is dropped and fetched again;
// other failures (too large for the GPU, an abort) would fail the same way from the network.

async function load(msg) {
  try {
    return await loadFrom(msg, true);
  } catch (e) {
    if (!e.fromCache) throw e;
    await deleteCachedModel(msg.model);
    return loadFrom(msg, false);
  }
}

async function loadFrom(msg, useCache) {
  const sha256 = msg.sha256?.toLowerCase();
  // The cache's lookup runs while the wasm starts (a download waits for it).
  const cached = useCache && typeof msg.model === "string" ? findCached(msg.model, sha256) : null;
  cached?.catch(() => {}); // awaited in open, unless the start fails first
  await start(msg.threads, msg.module);
  // Asked for WebGPU where there is none: say so before downloading anything.
  if (msg.backend === "webgpu" && !(await navigator.gpu?.requestAdapter().catch(() => null))) {
    throw fail(
      "webgpu_unavailable",
      'this browser offers no WebGPU adapter; use backend "auto" (which falls back to wasm) or "wasm"',
    );
  }
  const src = await open(msg.model, cached);
  try {
    return await loadSource(msg, src);
  } catch (e) {
    if (src.source === "cache" && FILE_ERRORS.has(e.code)) e.fromCache = true;
    throw e;
  }
}

async function loadSource({ id, model, sha256, contextLength, backend }, src) {
  const want = sha256?.toLowerCase();
  // Before the download: a server announces the size (a stream without one is checked as it comes).
  if (src.size != null) {
    try {
      checkFits(src.size);
    } catch (e) {
      await src.stream?.cancel().catch(() => {});
      throw e;
    }
  }
  // Only a download is written to the cache; `writer` is null once caching is given up.
  let writer = null,
    cacheSkipped = null;
  if (src.source === "network")
    ({ writer = null, skipped: cacheSkipped = null } = await beginWrite(model, src.size));
  const giveUpCaching = (e) => {
    writer?.abort();
    writer = null;
    cacheSkipped = skipReason(e);
  };
  const total = src.size;
  let lastPost = 0;
  const progress = (phase, loaded, t = total) =>
    post({ type: "progress", id, phase, loaded, total: t, source: src.source });
  progress("download", 0);
  // The GPU opens while the file arrives, and the weights go up to it as they come in.
  let gpu = null,
    current = null;
  const gpuOpened =
    backend !== "wasm" && navigator.gpu
      ? wasm.openGpu().then(
          (g) => {
            gpu = g;
          },
          () => {},
        )
      : null;
  const giveGpu = () => {
    if (gpu && current) {
      current.useGpu(gpu);
      gpu = null;
    }
  };
  const onChunk = (chunk, loaded) => {
    giveGpu();
    if (writer) {
      try {
        writer.write(chunk);
      } catch (e) {
        giveUpCaching(e);
      }
    }
    const now = performance.now();
    if (now - lastPost > 50) {
      // the last event is posted after the loop
      lastPost = now;
      progress("download", loaded, total ?? loaded);
    }
  };
  // Deriving the tokenizer's merge order is a third of building it: a cached model keeps the
  // order its first load derived next to it (read with the lookup), and a load that caches
  // the model keeps one.
  const mergeOrder = src.mergeOrder ?? null;
  const newLoader = (bytes, hash) => {
    const loader = new wasm.ModelLoader(bytes, hash);
    current = loader;
    giveGpu();
    if (mergeOrder) loader.useMergeOrder(mergeOrder); // the engine checks it fits
    if (src.source === "cache" || writer) loader.keepMergeOrder(); // kept only when derived
    return loader;
  };
  let loader;
  try {
    loader =
      (src.handle && (await readCached(src.handle, src.size, onChunk, newLoader))) ??
      (await fill(src.stream ?? src.file.stream(), src.size, {
        // A cached file was hashed when it was stored; hashing it again would cost ~1.5 s a
        // load. Damage on disk shows as a changed size or time, or a file the engine rejects.
        hash: !src.sha256,
        onChunk,
        newLoader,
      }));
  } catch (e) {
    await writer?.abort();
    throw e.code
      ? e
      : fail("network", `the model download was interrupted (${e.message}); load it again`);
  }
  await gpuOpened;
  giveGpu(); // a device that opened after the last chunk takes all the weights now
  const bytes = loader.loaded;
  progress("download", bytes, bytes);
  progress("verify", 0, bytes);
  const actual = src.sha256 ?? loader.sha256();
  if (want && actual !== want) {
    await writer?.abort();
    loader.free();
    throw fail(
      "integrity",
      `the downloaded model's SHA-256 is ${actual}, not the expected ${want}; it was not used or cached`,
    );
  }
  progress("verify", bytes, bytes);
  progress("load", 0, bytes);
  try {
    engine = await wasm.WasmEngine.load(loader, contextLength, backend);
  } catch (e) {
    await writer?.abort(); // a file the engine rejects is not worth keeping
    throw e;
  }
  await writer?.commit(actual).catch(giveUpCaching);
  const order = engine.takeMergeOrder();
  const cachedAs = src.source === "cache" ? src.name : writer?.name;
  if (order && cachedAs) await writeMergeOrder(cachedAs, order);
  progress("load", bytes, bytes);
  const info = engine.info();
  loadedAt = performance.now();
  post({
    type: "ready",
    id,
    info: {
      ...info,
      sha256: actual,
      bytes,
      source: src.source,
      cached: src.source === "cache" || writer !== null,
      cacheSkipped,
    },
  });
}
