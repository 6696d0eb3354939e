// The JS API (www/ouvert.js) in headless Chromium, on the real model: the engine runs in a
// worker, streams, aborts, caches the model in OPFS, and reports typed errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startBrowser, reference, mustMatch, badFiles, MODEL, ROOT, openApiPage } from "./util.mjs";

const MARGIN = 0.25; // the rule of tests/reference.rs
const URL_ = `/models/${MODEL}`;
const SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

let env, page;
before(async () => {
  env = await startBrowser({ mounts: { "/bad": badFiles() } });
  page = await openApiPage(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

const modelRequests = () => env.requests.filter((p) => p.startsWith("/models/")).length;

test("createEngine: progress per phase is monotonic and ends at the total; info is the model card", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(
    async ({ url, sha256 }) => {
      const events = [];
      const t0 = performance.now();
      window.engine = await Ouvert.createEngine({
        model: url,
        sha256,
        contextLength: 1024,
        onProgress: (p) => events.push(p),
      });
      return {
        events,
        info: engine.info,
        ms: performance.now() - t0,
        cached: await Ouvert.listCachedModels(),
      };
    },
    { url: URL_, sha256: SHA256 },
  );
  console.log(
    `cold load (download + hash + load): ${r.ms.toFixed(0)} ms, ${r.events.length} progress events`,
  );
  assert.deepEqual([...new Set(r.events.map((e) => e.phase))], ["download", "verify", "load"]);
  for (const phase of ["download", "verify", "load"]) {
    const ev = r.events.filter((e) => e.phase === phase);
    for (let i = 1; i < ev.length; i++) {
      assert.ok(ev[i].loaded >= ev[i - 1].loaded, `${phase} progress goes back at ${i - 1}`);
    }
    assert.equal(ev.at(-1).loaded, ev.at(-1).total, `${phase} ends at its total`);
  }
  assert.equal(r.events.find((e) => e.phase === "download").source, "network");
  const { info } = r;
  assert.equal(info.architecture, "gemma3");
  assert.equal(info.backend, "wasm");
  assert.equal(
    info.simd,
    "relaxed",
    "Chromium validates relaxed SIMD: the worker serves that build",
  );
  assert.equal(info.fallback?.code, "webgpu_unavailable", "auto says why it did not pick WebGPU");
  assert.equal(info.sha256, SHA256);
  assert.equal(info.bytes, 253113024);
  assert.equal(info.contextLength, 1024);
  assert.equal(info.vocabSize, 262144);
  assert.equal(info.cached, true);
  assert.ok(
    info.name && info.quantization && info.parameters > 2e8 && info.license,
    JSON.stringify(info),
  );
  assert.deepEqual(
    r.cached.map((c) => [new URL(c.url).pathname, c.sha256, c.bytes]),
    [[URL_, SHA256, 253113024]],
  );
});

test("complete() at temperature 0 gives llama.cpp's greedy tokens on the reference prompts", {
  timeout: 600_000,
}, async () => {
  const ref = reference();
  const out = await page.evaluate(
    async (prompts) => {
      const res = [];
      for (const p of prompts)
        res.push(
          await engine.complete(p.text, { maxTokens: 24, temperature: 0, stopAtEos: false }),
        );
      return res;
    },
    ref.prompts.map((p) => ({ text: p.text })),
  );
  const failures = [];
  out.forEach((r, i) => {
    const want = ref.prompts[i].llama_cpp;
    assert.deepEqual(r.promptTokens, want.prompt_ids, `${ref.prompts[i].id}: prompt ids`);
    const n = Math.min(mustMatch(want.step_margin, MARGIN), r.tokens.length);
    let same = 0;
    while (same < r.tokens.length && r.tokens[same] === want.greedy_ids[same]) same++;
    if (same < n) failures.push(`${ref.prompts[i].id}: greedy differs at step ${same}`);
    assert.equal(r.finishReason, "length");
    assert.equal(r.stats.completionTokens, 24);
  });
  const s = out[0].stats;
  console.log(
    `complete(): ttft ${s.timeToFirstTokenMs.toFixed(0)} ms, prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${s.decodeTokensPerSecond.toFixed(1)} tok/s`,
  );
  assert.deepEqual(failures, []);
});

test("generate() streams pieces in order, their text is the completion, and the page never blocks", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const pieces = [];
    const run = engine.generate("Les trois couleurs du drapeau français sont", {
      maxTokens: 20,
      temperature: 0,
      topLogprobs: 3,
      stopAtEos: false,
    });
    for await (const p of run) pieces.push({ ...p, ticks });
    clearInterval(timer);
    return { pieces, result: await run.result };
  });
  assert.equal(r.pieces.length, 20);
  assert.deepEqual(
    r.pieces.map((p) => p.token),
    r.result.tokens,
  );
  assert.equal(r.pieces.map((p) => p.text).join(""), r.result.text);
  for (const p of r.pieces) {
    assert.equal(p.top.length, 3);
    assert.equal(p.top[0].token, p.token, "greedy picks the most likely token");
    assert.ok(p.top[0].logprob >= p.top[1].logprob && p.top[1].logprob >= p.top[2].logprob);
    assert.equal(typeof p.top[0].text, "string");
  }
  assert.ok(
    r.pieces.at(-1).ticks > r.pieces[0].ticks,
    "the page's timers ran while the worker generated",
  );
});

test("signal.abort() stops within one token, and the engine serves the next request", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(async () => {
    const prompt = "Once upon a time, in a small village by the sea,";
    const first = await engine.complete(prompt, { maxTokens: 12, temperature: 0 });
    const ctl = new AbortController();
    let seen = 0,
      afterAbort = 0,
      code = null;
    try {
      for await (const _ of engine.generate(prompt, {
        maxTokens: 200,
        temperature: 0,
        signal: ctl.signal,
      })) {
        seen++;
        if (ctl.signal.aborted) afterAbort++;
        if (seen === 3) ctl.abort();
      }
    } catch (e) {
      code = e instanceof Ouvert.OuvertError && e instanceof Error && e.code;
    }
    const again = await engine.complete(prompt, { maxTokens: 12, temperature: 0 });
    // Breaking out of the loop stops the generation too.
    for await (const _ of engine.generate(prompt, { maxTokens: 200 })) break;
    const third = await engine.complete(prompt, { maxTokens: 12, temperature: 0 });
    return {
      code,
      seen,
      afterAbort,
      first: first.tokens,
      again: again.tokens,
      third: third.tokens,
    };
  });
  assert.equal(r.code, "aborted");
  assert.ok(r.afterAbort <= 1, `${r.afterAbort} pieces arrived after abort()`);
  assert.deepEqual(r.again, r.first);
  assert.deepEqual(r.third, r.first);
});

test("chat.completions.create: OpenAI-shaped response and stream", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(async () => {
    const messages = [
      { role: "system", content: "Answer in one short sentence." },
      { role: "user", content: "What is the capital of France?" },
    ];
    const full = await engine.chat.completions.create({ messages, max_tokens: 24, temperature: 0 });
    const chunks = [];
    for await (const c of await engine.chat.completions.create({
      messages,
      max_tokens: 24,
      temperature: 0,
      stream: true,
    }))
      chunks.push(c);
    // A stop string inside the answer, a word with the space before it: the token that
    // completes it brings no text, and its log-probability comes with the last chunk.
    const stop = full.choices[0].message.content.trim().match(/\s\S+/g)?.[1];
    const withLogprobs = await engine.chat.completions.create({
      messages,
      max_tokens: 24,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
      stop,
    });
    const streamed = [];
    const streamedChunks = [];
    for await (const c of await engine.chat.completions.create({
      messages,
      max_tokens: 24,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
      stop,
      stream: true,
    })) {
      streamed.push(...(c.choices[0].logprobs?.content ?? []));
      streamedChunks.push(c);
    }
    const sampled = await engine.chat.completions.create({
      messages,
      max_tokens: 12,
      temperature: 1,
      seed: 5,
      logprobs: true,
    });
    return { full, chunks, stop, withLogprobs, streamed, streamedChunks, sampled };
  });
  const { full, chunks } = r;
  assert.equal(full.object, "chat.completion");
  assert.equal(full.choices[0].message.role, "assistant");
  // The default model is Gemma 3 270M base (no chat tuning): the answer's content is not
  // asserted, its shape and its agreement with the stream are.
  assert.ok(full.choices[0].message.content.length > 0);
  assert.ok(["stop", "length"].includes(full.choices[0].finish_reason));
  assert.equal(full.usage.total_tokens, full.usage.prompt_tokens + full.usage.completion_tokens);
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.equal(
    chunks.map((c) => c.choices[0].delta.content ?? "").join(""),
    full.choices[0].message.content,
  );
  assert.equal(chunks.at(-1).choices[0].finish_reason, full.choices[0].finish_reason);
  assert.equal(full.choices[0].logprobs, null, "no logprobs unless asked");
  assert.ok(chunks.every((c) => c.choices[0].logprobs === null));

  // logprobs: an entry per generated token (an end-of-turn token, which has no text, has
  // none); greedy picks its step's most likely token.
  assert.ok(r.stop, `a third word in ${JSON.stringify(full.choices[0].message.content)}`);
  assert.equal(r.streamedChunks.at(-1).choices[0].delta.content, undefined);
  assert.equal(
    r.streamedChunks.at(-1).choices[0].logprobs?.content.length,
    1,
    "the stopping token's entry comes last",
  );
  assert.equal(r.withLogprobs.choices[0].finish_reason, "stop");
  const lp = r.withLogprobs.choices[0].logprobs.content;
  assert.ok(lp.length >= 1 && lp.length === r.withLogprobs.usage.completion_tokens);
  for (const e of lp) {
    assert.equal(e.top_logprobs.length, 3);
    assert.ok(
      e.top_logprobs.every(
        (t, i) => t.logprob <= 0 && (i === 0 || t.logprob <= e.top_logprobs[i - 1].logprob),
      ),
    );
    assert.deepEqual({ token: e.token, logprob: e.logprob, bytes: e.bytes }, e.top_logprobs[0]);
  }
  assert.ok(
    lp
      .map((e) => e.token)
      .join("")
      .startsWith(r.withLogprobs.choices[0].message.content),
  );
  assert.deepEqual(r.streamed, lp, "the stream reports the same entries");
  // Sampled: the chosen token's own log-probability, no alternatives unless asked.
  const sp = r.sampled.choices[0].logprobs.content;
  assert.ok(
    sp.length >= r.sampled.usage.completion_tokens - 1 &&
      sp.length <= r.sampled.usage.completion_tokens,
  );
  assert.ok(sp.every((e) => e.logprob <= 0 && e.top_logprobs.length === 0 && "bytes" in e));
});

test("chat.completions.create in a conversation: the next request reads only its new tokens; one longer than the context drops its oldest turns", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(async () => {
    const messages = [
      { role: "system", content: "Tu réponds en français." },
      { role: "user", content: "Bonjour ! Comment vas-tu ?" },
    ];
    const first = await engine.chat.completions.create({
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    messages.push(first.choices[0].message, { role: "user", content: "Et demain ?" });
    const second = await engine.chat.completions.create({
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    // 1,000 of the 1,024 positions kept for the answer: the first turns must go.
    const long = { messages, max_tokens: 1000, temperature: 0, stop: [" "] };
    const trimmed = await engine.chat.completions.create(long);
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ ...long, stream: true }))
      chunks.push(c);
    let overflow = null;
    try {
      await engine.chat.completions.create({ ...long, truncate: false });
    } catch (e) {
      overflow = e.code;
    }
    return { first, second, trimmed, firstChunk: chunks[0], overflow };
  });
  const u1 = r.first.usage,
    u2 = r.second.usage;
  console.log(
    `turn 2: ${u2.prompt_tokens} prompt tokens, ${u2.prompt_tokens_details.cached_tokens} from the cache`,
  );
  assert.ok(u2.prompt_tokens_details.cached_tokens >= u1.prompt_tokens + u1.completion_tokens - 1);
  assert.ok(u2.prompt_tokens - u2.prompt_tokens_details.cached_tokens <= 16, "only the new turn");
  assert.equal(r.first.dropped_messages, 0);
  assert.equal(r.trimmed.dropped_messages, 2, "the first exchange went, the system prompt stayed");
  assert.ok(r.trimmed.usage.prompt_tokens + 1000 <= 1024);
  assert.equal(r.firstChunk.dropped_messages, 2, "a stream says so in its first chunk");
  assert.equal(r.overflow, "context_overflow");
});

test("tokenize and detokenize", async () => {
  const r = await page.evaluate(async () => {
    const ids = await engine.tokenize("Bonjour « le monde » !");
    return {
      ids,
      text: await engine.detokenize(ids.slice(1)),
      strings: await engine.tokenStrings(ids),
    };
  });
  assert.equal(r.ids[0], 2);
  assert.equal(r.text, "Bonjour « le monde » !");
  assert.equal(r.strings[0], "<bos>");
  assert.equal(r.strings.length, r.ids.length);
});

test("an unknown or misspelt option is invalid_argument naming it; the worker answers an unknown message with an error", async () => {
  const r = await page.evaluate(async () => {
    const attempt = async (options) => {
      try {
        await engine.complete("Bonjour", options);
        return "ok";
      } catch (e) {
        return `${e.code}: ${e.message}`;
      }
    };
    // The worker's protocol is a closed set: anything else gets an error answer.
    const worker = new Worker("/www/worker.js", { type: "module" });
    const answer = (msg) =>
      new Promise((resolve) => {
        worker.addEventListener("message", ({ data }) => data.id === msg.id && resolve(data));
        worker.postMessage(msg);
      });
    const unknown = await answer({ type: "transmogrify", id: 1 });
    const method = await answer({ type: "call", id: 2, method: "free", args: [] });
    worker.terminate();
    return {
      misspelt: await attempt({ maxTokens: 2, temprature: 0 }),
      good: await attempt({ maxTokens: 2, temperature: 0 }),
      unknown,
      method,
    };
  });
  assert.match(
    r.misspelt,
    /^invalid_argument: unknown option temprature; the options are .*temperature/,
  );
  assert.equal(r.good, "ok", "the engine serves the next request");
  assert.equal(r.unknown.type, "error");
  assert.equal(r.unknown.error.code, "invalid_argument");
  assert.match(r.unknown.error.message, /transmogrify/);
  assert.equal(r.method.type, "error");
  assert.match(r.method.error.message, /no method "free"/);
});

test("a second createEngine for the model reads the cache: no request, works with the model's server cut off", {
  timeout: 300_000,
}, async () => {
  await page.evaluate(() => engine.dispose());
  const before = modelRequests();
  env.block = (path) => path.startsWith("/models/");
  try {
    const r = await page.evaluate(
      async ({ url }) => {
        const events = [];
        const t0 = performance.now();
        const e = await Ouvert.createEngine({
          model: url,
          contextLength: 1024,
          onProgress: (p) => events.push(p),
        });
        const ms = performance.now() - t0;
        const out = await e.complete("The sky is", { maxTokens: 4, temperature: 0 });
        const ttft = out.stats.timeToFirstTokenMs;
        await e.dispose();
        return { ms, ttft, source: events[0].source, info: e.info, text: out.text };
      },
      { url: URL_ },
    );
    console.log(
      `cached load: ${r.ms.toFixed(0)} ms to ready, then ${r.ttft.toFixed(0)} ms to the first token`,
    );
    assert.equal(r.source, "cache");
    assert.equal(r.info.source, "cache");
    assert.equal(r.info.sha256, SHA256);
    assert.ok(r.text.length > 0);
  } finally {
    env.block = null;
  }
  assert.equal(modelRequests(), before, "no request for the model");
});

test("a cached model keeps its tokenizer's merge order: used when intact, derived and rewritten when damaged, deleted with the model", {
  timeout: 300_000,
}, async () => {
  const sidecar = (change) =>
    page.evaluate(async (change) => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(
        "ouvert-models",
      );
      const index = JSON.parse(
        await (await (await dir.getFileHandle("index.json")).getFile()).text(),
      );
      try {
        const name = `${Object.values(index)[0].file}.merges`;
        const handle = await dir.getFileHandle(name);
        if (change) {
          const w = await handle.createWritable({ keepExistingData: true });
          await w.write({ type: "write", position: 4096, data: new Uint8Array([1, 2, 3, 4]) });
          await w.close();
        }
        const file = await handle.getFile();
        const bytes = new Uint8Array(await file.arrayBuffer());
        let sum = 0;
        for (const b of bytes) sum = (sum * 31 + b) >>> 0;
        return {
          size: bytes.length,
          sum,
          modified: file.lastModified,
          magic: String.fromCharCode(...bytes.slice(0, 8)),
        };
      } catch {
        return null;
      }
    }, change);
  const load = () =>
    page.evaluate(
      async ({ url }) => {
        const e = await Ouvert.createEngine({ model: url, contextLength: 1024 });
        const out = await e.complete("The capital of France is", { maxTokens: 6, temperature: 0 });
        await e.dispose();
        return { source: e.info.source, tokens: out.tokens };
      },
      { url: URL_ },
    );

  // The earlier loads cached the model and, next to it, the order they derived.
  const kept = await sidecar();
  assert.ok(kept, "a merge order is kept next to the cached model");
  assert.equal(kept.magic, "OUVMRG02");
  assert.ok(kept.size > 24 + 12 * 400_000, `${kept.size} bytes: Gemma 3's half a million merges`);
  const first = await load();
  assert.equal(first.source, "cache");
  assert.equal(
    (await sidecar()).modified,
    kept.modified,
    "an intact order is used, not derived and written again",
  );

  const damaged = await sidecar(true);
  assert.notEqual(damaged.sum, kept.sum);
  const again = await load();
  assert.deepEqual(again.tokens, first.tokens, "a damaged order is set aside: the same tokens");
  const rewritten = await sidecar();
  assert.equal(
    rewritten.sum,
    kept.sum,
    "the order is derived again and rewritten, byte for byte as before",
  );

  assert.equal(
    await page.evaluate(async ({ url }) => Ouvert.deleteCachedModel(url), { url: URL_ }),
    true,
  );
  assert.equal(await sidecar(), null, "deleting the model deletes its merge order");
  // Cached again for the tests that follow (its order with it).
  assert.equal((await load()).source, "network");
  assert.ok(await sidecar());
});

test("typed errors: wrong SHA-256, 404, not a GGUF, truncated file; nothing bad is cached", {
  timeout: 300_000,
}, async () => {
  const r = await page.evaluate(
    async ({ url }) => {
      const attempt = async (opts) => {
        try {
          const e = await Ouvert.createEngine({ contextLength: 256, ...opts });
          await e.dispose();
          return "loaded";
        } catch (e) {
          return `${e instanceof Ouvert.OuvertError}:${e.code}:${e.message.length > 20}`;
        }
      };
      return {
        integrity: await attempt({ model: `${url}?copy`, sha256: "0".repeat(64) }),
        notFound: await attempt({ model: "/models/missing.gguf" }),
        notGguf: await attempt({ model: "/bad/not-a-gguf.gguf" }),
        truncated: await attempt({ model: "/bad/truncated.gguf" }),
        webgpu: await attempt({ model: url, backend: "webgpu" }),
        cached: (await Ouvert.listCachedModels()).map(
          (c) => new URL(c.url).pathname + new URL(c.url).search,
        ),
      };
    },
    { url: URL_ },
  );
  assert.equal(r.integrity, "true:integrity:true");
  assert.equal(r.notFound, "true:network:true");
  assert.equal(r.notGguf, "true:bad_magic:true");
  assert.equal(r.truncated, "true:truncated_file:true");
  assert.equal(r.webgpu, "true:webgpu_unavailable:true");
  assert.deepEqual(r.cached, [URL_], "only the verified model is cached");
});

test("a model larger than a page can hold is refused before its download: model_too_large, the connection closed", {
  timeout: 120_000,
}, async () => {
  // The server announces 5 GiB, sends 64 KiB of a real GGUF header, then holds the connection.
  let sent = 0,
    closed = false;
  env.answer["/huge.gguf"] = (res) => {
    res.writeHead(200, {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(5 * 2 ** 30),
      "Cross-Origin-Embedder-Policy": "require-corp",
    });
    const head = readFileSync(join(ROOT, "models", MODEL)).subarray(0, 65536);
    res.write(head);
    sent = head.length;
    res.on("close", () => {
      closed = true;
    });
  };
  const r = await page.evaluate(async () => {
    const t0 = performance.now();
    try {
      await Ouvert.createEngine({ model: "/huge.gguf" });
      return { code: "loaded" };
    } catch (e) {
      return { code: e.code, message: e.message, ms: performance.now() - t0 };
    }
  });
  delete env.answer["/huge.gguf"];
  assert.equal(r.code, "model_too_large", JSON.stringify(r));
  assert.match(r.message, /MB/);
  for (let i = 0; i < 50 && !closed; i++) await new Promise((ok) => setTimeout(ok, 100));
  assert.ok(closed && sent === 65536, "the download was abandoned at once");
  // The page's other engines are untouched: the cached model still loads and answers.
  const text = await page.evaluate(async (url) => {
    const e = await Ouvert.createEngine({ model: url, backend: "wasm" });
    const out = await e.complete("Paris is", { maxTokens: 4, temperature: 0 });
    await e.dispose();
    return out.text;
  }, URL_);
  assert.ok(text.length > 0);
});
