// The Prompt API (`ouvert/prompt-api`) in headless Chromium on the instruct model (Qwen2.5
// Coder 0.5B Instruct, wasm, greedy): the explainer's own examples
// (github.com/webmachinelearning/prompt-api, README.md) run as written there against the
// installed `LanguageModel`, then what they do not show: tools, a French extraction that a
// JSON Schema validator accepts, the context window's overflow and QuotaExceededError, and
// the spec's exceptions, the session serving the next prompt after each.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Ajv from "ajv";
import { startBrowser, openApiPage } from "./util.mjs";

let env, page;

before(async () => {
  env = await startBrowser();
  page = await openApiPage(env, "prompt-api.html");
  // Chromium has a LanguageModel of its own (its model service does not run here): the
  // examples run against the polyfill, greedy, with short answers (they ask for poems).
  await page.evaluate(() => {
    window.native = globalThis.LanguageModel;
    globalThis.LanguageModel = PromptApi.createLanguageModel({
      sampling: { temperature: 0 },
      maxTokens: 16,
      contextLength: 1024,
      backend: "wasm",
      threads: 2,
    });
    window.stopButton = document.createElement("button");
  });
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

/** A LanguageModel with longer answers, on an engine the page loaded (and keeps). */
const useLong = () =>
  page.evaluate(async () => {
    window.Long ??= PromptApi.createLanguageModel({
      engine: await Ouvert.createEngine({
        model: "/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        backend: "wasm",
        threads: 2,
        contextLength: 1024,
      }),
      sampling: { temperature: 0 },
      maxTokens: 64,
    });
  });

/** Runs `example` in the page with console.log captured: { logs, value } or { error }. */
async function run(example, arg) {
  return page.evaluate(
    async ({ source, arg }) => {
      const logs = [];
      const log = console.log;
      console.log = (...a) => logs.push(a.map(String).join(" "));
      try {
        // biome-ignore lint/security/noGlobalEval: the example's source, as the test wrote it
        const value = await globalThis.eval(`(${source})`)(arg);
        return { logs, value };
      } catch (e) {
        return { logs, error: { name: e?.name, message: e?.message, ...e } };
      } finally {
        console.log = log;
      }
    },
    { source: example.toString(), arg },
  );
}

test("install() keeps the browser's own LanguageModel, and installs the polyfill where there is none", async () => {
  const r = await page.evaluate(() => {
    const polyfill = globalThis.LanguageModel;
    globalThis.LanguageModel = window.native;
    const kept = typeof window.native === "function" && PromptApi.install() === window.native;
    delete globalThis.LanguageModel;
    const installed = PromptApi.install();
    const ours = installed === PromptApi.LanguageModel && globalThis.LanguageModel === installed;
    globalThis.LanguageModel = polyfill;
    let construct = null;
    try {
      new LanguageModel();
    } catch (e) {
      construct = e.name;
    }
    return { kept, ours, construct, name: LanguageModel.name };
  });
  assert.deepEqual(r, { kept: true, ours: true, construct: "TypeError", name: "LanguageModel" });
});

test("availability and download progress (explainer: testing options, download progress)", {
  timeout: 120_000,
}, async () => {
  const r = await run(async () => {
    const before = await LanguageModel.availability();
    const events = [];
    // --- the explainer's code ---
    const session = await LanguageModel.create({
      monitor(m) {
        m.addEventListener("downloadprogress", (e) => {
          console.log(`Downloaded ${e.loaded * 100}%`);
          events.push(e.loaded);
        });
      },
    });
    // ---
    const options = {
      expectedInputs: [
        { type: "text", languages: ["en", "es"] },
        { type: "audio", languages: ["en", "es"] },
      ],
    };
    // --- the explainer's code ---
    const availability = await LanguageModel.availability(options);

    if (availability !== "unavailable") {
      if (availability !== "available") {
        console.log("Sit tight, we need to do some downloading...");
      }

      // biome-ignore lint/correctness/noUnusedVariables: the explainer's code, as written
      const session = await LanguageModel.create(options);
      // ... Use session ...
    } else {
      // Either the API overall, or the expected languages and temperature setting, is not available.
      console.error("No language model for us :(");
    }
    // ---
    let refused = null;
    try {
      await LanguageModel.create(options);
    } catch (e) {
      refused = e.name;
    }
    let badTag = null;
    try {
      await LanguageModel.availability({ expectedInputs: [{ type: "text", languages: ["e n"] }] });
    } catch (e) {
      badTag = e.name;
    }
    session.destroy();
    return {
      before,
      events,
      withAudio: availability,
      french: await LanguageModel.availability({
        expectedOutputs: [{ type: "text", languages: ["fr-CA"] }],
      }),
      klingon: await LanguageModel.availability({
        expectedInputs: [{ type: "text", languages: ["tlh"] }],
      }),
      after: await LanguageModel.availability(),
      refused,
      badTag,
    };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const v = r.value;
  assert.equal(v.before, "downloadable", "nothing cached before the first session");
  assert.equal(v.events[0], 0, "a first event at 0");
  assert.equal(v.events.at(-1), 1, "a last event at 1");
  assert.ok(v.events.length > 3, `progress in between: ${v.events}`);
  assert.ok(
    v.events.every((x, i) => i === 0 || x >= v.events[i - 1]),
    "progress never goes back",
  );
  assert.equal(v.withAudio, "unavailable", "audio input is not read");
  assert.equal(v.refused, "NotSupportedError");
  assert.equal(v.badTag, "RangeError", "a malformed language tag");
  assert.equal(v.french, "available");
  assert.equal(v.klingon, "unavailable");
  assert.equal(v.after, "available", "the model is cached once a session has loaded it");
});

test("zero-shot prompting, streaming, and the conversation's context usage (explainer)", {
  timeout: 120_000,
}, async () => {
  const r = await run(async () => {
    // --- the explainer's code ---
    const session = await LanguageModel.create();

    // Prompt the model and wait for the whole result to come back.
    const result = await session.prompt("Write me a poem.");
    console.log(result);

    // Prompt the model and stream the result:
    const stream = session.promptStreaming("Write me an extra-long poem.");
    for await (const chunk of stream) {
      console.log(chunk);
    }
    // ---
    const usage = session.contextUsage;
    const promptString = "What rhymes with rain?";
    // --- the explainer's code ---
    console.log(
      `${session.contextUsage} tokens used, out of ${session.contextWindow} tokens available.`,
    );
    const stringUsage = await session.measureContextUsage(promptString);
    // ---
    const usageBefore = session.contextUsage;
    await session.prompt(promptString);
    return { result, usage, stringUsage, usageBefore, usageAfter: session.contextUsage };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const { result, usage, stringUsage, usageBefore, usageAfter } = r.value;
  assert.ok(result.length > 10, result);
  assert.equal(r.logs[0], result);
  const chunks = r.logs.slice(1, -1);
  assert.ok(chunks.length >= 8, `the stream comes in pieces: ${JSON.stringify(chunks)}`);
  assert.ok(usage > 40 && usage < 200, `usage ${usage}`);
  assert.equal(r.logs.at(-1), `${usage} tokens used, out of 1024 tokens available.`);
  assert.ok(stringUsage >= 8 && stringUsage <= 20, `measured ${stringUsage}`);
  // The prompt adds what was measured, and the answer's tokens (16 at most).
  const added = usageAfter - usageBefore;
  assert.ok(added >= stringUsage && added <= stringUsage + 16, `added ${added}`);
});

test("system prompts, three ways; N-shot prompting with clone(); roles per prompt (explainer)", {
  timeout: 180_000,
}, async () => {
  const r = await run(async () => {
    // --- the explainer's code ---
    // Option 1: Create a new session with a system prompt as the first message.
    const session1 = await LanguageModel.create({
      initialPrompts: [{ role: "system", content: "Pretend to be an eloquent hamster." }],
    });
    console.log(await session1.prompt("What is your favorite food?"));

    // Option 2: Create a new session and append a system prompt as the first message.
    const session2 = await LanguageModel.create();
    await session2.append([{ role: "system", content: "Pretend to be an eloquent hamster." }]);
    console.log(await session2.prompt("What is your favorite food?"));

    // Option 3: Create a new session and prompt with a system prompt as the first message.
    const session3 = await LanguageModel.create();
    console.log(
      await session3.prompt([
        { role: "system", content: "Pretend to be an eloquent hamster." },
        { role: "user", content: "What is your favorite food?" },
      ]),
    );
    // ---
    // --- the explainer's code ---
    const session = await LanguageModel.create({
      initialPrompts: [
        {
          role: "system",
          content:
            "Predict up to 5 emojis as a response to a comment. Output emojis, comma-separated.",
        },
        { role: "user", content: "This is amazing!" },
        { role: "assistant", content: "❤️, ➕" },
        { role: "user", content: "LGTM" },
        { role: "assistant", content: "👍, 🚢" },
      ],
    });

    // Clone an existing session for efficiency, instead of recreating one each time.
    async function predictEmoji(comment) {
      const freshSession = await session.clone();
      return await freshSession.prompt(comment);
    }

    const result1 = await predictEmoji("Back to the drawing board");

    const result2 = await predictEmoji("This code is so good you should get promoted");
    // ---
    const shotUsage = session.contextUsage;
    // --- the explainer's code ---
    const multiUserSession = await LanguageModel.create({
      initialPrompts: [
        {
          role: "system",
          content: "You are a mediator in a discussion between two departments.",
        },
      ],
    });

    const result = await multiUserSession.prompt([
      { role: "user", content: "Marketing: We need more budget for advertising campaigns." },
      { role: "user", content: "Finance: We need to cut costs and advertising is on the list." },
      {
        role: "assistant",
        content: "Let's explore a compromise that satisfies both departments.",
      },
    ]);
    // ---
    let lateSystem = null;
    try {
      await session1.prompt([{ role: "system", content: "Now be a cat." }]);
    } catch (e) {
      lateSystem = e.name;
    }
    for (const s of [session1, session2, session3, session, multiUserSession]) s.destroy();
    return { result1, result2, result, shotUsage, lateSystem };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const [a1, a2, a3] = r.logs;
  // A system prompt given at creation, appended, or sent first is the same conversation.
  assert.ok(a1.length > 0);
  assert.equal(a2, a1, "append() then prompt() is the same conversation as initialPrompts");
  assert.equal(a3, a1, "a system prompt sent with the first prompt too");
  const emoji = /\p{Extended_Pictographic}/u;
  assert.match(r.value.result1, emoji, r.value.result1);
  assert.match(r.value.result2, emoji, r.value.result2);
  assert.ok(r.value.shotUsage > 50, "the N-shot session's initial prompts are its usage");
  assert.ok(r.value.result.length > 0);
  assert.equal(r.value.lateSystem, "TypeError", "a system prompt after the first message");
});

test("responseConstraint: a JSON Schema and a RegExp; omitResponseConstraintInput (explainer)", {
  timeout: 120_000,
}, async () => {
  await useLong();
  const r = await run(async () => {
    const session = await Long.create();
    const characterName = "Marie Curie";
    // --- the explainer's code ---
    const schema = {
      type: "object",
      required: ["rating"],
      additionalProperties: false,
      properties: {
        rating: {
          type: "number",
          minimum: 0,
          maximum: 5,
        },
      },
    };

    // Prompt the model and wait for the JSON response to come back.
    const result = await session.prompt(
      "Summarize this feedback into a rating between 0-5: " +
        "The food was delicious, service was excellent, will recommend.",
      { responseConstraint: schema },
    );

    const { rating } = JSON.parse(result);
    console.log(rating);
    // ---
    // --- the explainer's code ---
    const emailRegExp =
      // biome-ignore lint/complexity/noUselessEscapeInRegex: the explainer's code, as written
      /^[a-zA-Z0-9.!#$%&'*+\/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

    const emailAddress = await session.prompt(
      `Create a fictional email address for ${characterName}.`,
      { responseConstraint: emailRegExp },
    );

    console.log(emailAddress);
    // ---
    const plain = await session.measureContextUsage("Rate it.");
    const told = await session.measureContextUsage("Rate it.", { responseConstraint: schema });
    const untold = await session.measureContextUsage("Rate it.", {
      responseConstraint: schema,
      omitResponseConstraintInput: true,
    });
    // --- the explainer's code ---
    const result2 = await session.prompt(
      `
  Summarize this feedback into a rating between 0-5, only outputting a JSON
  object { rating }, with a single property whose value is a number:
  The food was delicious, service was excellent, will recommend.
`,
      { responseConstraint: schema, omitResponseConstraintInput: true },
    );
    // ---
    session.destroy();
    return {
      rating,
      result,
      emailAddress,
      emailOk: emailRegExp.test(emailAddress),
      result2,
      plain,
      told,
      untold,
    };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const v = r.value;
  assert.equal(typeof v.rating, "number", v.result);
  assert.ok(v.rating >= 0 && v.rating <= 5, v.result);
  assert.ok(v.emailOk, `the address matches the RegExp: ${v.emailAddress}`);
  assert.deepEqual(Object.keys(JSON.parse(v.result2)), ["rating"], v.result2);
  assert.ok(v.told > v.plain + 20, "the schema is part of the input unless omitted");
  assert.equal(v.untold, v.plain);
});

test("a French extraction under a JSON Schema validates; a prefix; tools run and their result comes back", {
  timeout: 180_000,
}, async () => {
  const schema = {
    type: "object",
    properties: {
      nom: { type: "string", minLength: 2 },
      naissance: { type: "integer", minimum: 1000, maximum: 2100 },
      ville: { type: "string" },
      metiers: { type: "array", items: { enum: ["physicienne", "chimiste", "musicienne"] } },
    },
    required: ["nom", "naissance", "ville", "metiers"],
    additionalProperties: false,
  };
  await useLong();
  const r = await run(async (schema) => {
    const C = Long;
    const session = await C.create({
      expectedInputs: [{ type: "text", languages: ["fr"] }],
      expectedOutputs: [{ type: "text", languages: ["fr"] }],
    });
    const json = await session.prompt(
      "Marie Curie, née à Varsovie en 1867, était physicienne et chimiste. Donne sa fiche.",
      { responseConstraint: schema },
    );
    session.destroy();
    // The explainer's prefix example (its missing comma after "assistant" added).
    const sheet = await LanguageModel.create();
    const characterSheet = await sheet.prompt([
      {
        role: "user",
        content: "Create a TOML character sheet for a gnome barbarian",
      },
      {
        role: "assistant",
        content: "```toml\n",
        prefix: true,
      },
    ]);
    // A prefix that stops mid-sentence: the answer carries it on, it does not start anew.
    const capital = await sheet.prompt([
      { role: "user", content: "What is the capital of France?" },
      { role: "assistant", content: "The capital of France is", prefix: true },
    ]);
    sheet.destroy();
    const calls = [];
    // The explainer's tool example, its fetch replaced by a local answer.
    const tooled = await C.create({
      initialPrompts: [
        {
          role: "system",
          content: `You are a helpful assistant. You can use tools to help the user.`,
        },
      ],
      expectedInputs: [{ type: "text", languages: ["en"] }, { type: "tool-response" }],
      expectedOutputs: [{ type: "text", languages: ["en"] }, { type: "tool-call" }],
      tools: [
        {
          name: "getWeather",
          description: "Get the weather in a location.",
          inputSchema: {
            type: "object",
            properties: {
              location: {
                type: "string",
                description: "The city to check for the weather condition.",
              },
            },
            required: ["location"],
          },
          async execute({ location }) {
            calls.push(location);
            return JSON.stringify({ location, temperature: "12 °C", sky: "rain" });
          },
        },
      ],
    });
    const weather = await tooled.prompt("What is the weather in Seattle?");
    tooled.destroy();
    return { json, characterSheet, capital, calls, weather };
  }, schema);
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const v = r.value;
  const ajv = new Ajv();
  const data = JSON.parse(v.json);
  assert.ok(ajv.validate(schema, data), `${v.json}: ${ajv.errorsText()}`);
  assert.match(data.nom, /Curie/);
  assert.equal(data.naissance, 1867);
  assert.ok(
    !v.characterSheet.startsWith("```"),
    `the answer carries on the prefix: ${v.characterSheet}`,
  );
  assert.match(v.characterSheet, /=/, "TOML keys");
  assert.match(v.capital, /^ Paris/, "the sentence goes on");
  assert.deepEqual(v.calls, ["Seattle"], "the tool ran once, with the model's arguments");
  // The answer after the result is prose (this 0.5B model would call the tool again, and
  // what it then says of the weather is its own affair: "Mark the location as Seattle.").
  assert.match(v.weather, /^[^<{`]+$/, v.weather);
});

test("abort a prompt, abort a clone, destroy a session (explainer); the session goes on after an abort", {
  timeout: 120_000,
}, async () => {
  const r = await run(async () => {
    const session = await LanguageModel.create();
    const names = {};
    {
      // --- the explainer's code ---
      const controller = new AbortController();
      stopButton.onclick = () => controller.abort();
      // ---
      // Well before 16 tokens, on any machine: the prompt is being read.
      setTimeout(() => stopButton.click(), 200);
      try {
        // --- the explainer's code ---
        const result = await session.prompt("Write me a poem", { signal: controller.signal });
        // ---
        names.prompt = `resolved: ${result}`;
      } catch (e) {
        names.prompt = e.name;
      }
    }
    const usageAfterAbort = session.contextUsage;
    const after = await session.prompt("Say hello.");
    {
      // --- the explainer's code ---
      const controller = new AbortController();
      const session2 = await session.clone({ signal: controller.signal });
      // ---
      names.cloneUsage = session2.contextUsage === session.contextUsage;
      controller.abort();
      try {
        await session.clone({ signal: controller.signal });
      } catch (e) {
        names.clone = e.name;
      }
    }
    {
      // --- the explainer's code ---
      const controller = new AbortController();
      stopButton.onclick = () => controller.abort();

      const session = await LanguageModel.create({ signal: controller.signal });
      // ---
      stopButton.click();
      try {
        await session.prompt("Hello");
      } catch (e) {
        names.createSignal = e.name;
      }
    }
    {
      const other = await LanguageModel.create();
      // --- the explainer's code ---
      stopButton.onclick = () => other.destroy();
      // ---
      const streaming = other.promptStreaming("Write me an extra-long poem.");
      try {
        // Destroyed as its first piece arrives: mid-answer.
        for await (const _ of streaming) stopButton.click();
      } catch (e) {
        names.destroyStream = e.name;
      }
      try {
        await other.prompt("Hello");
      } catch (e) {
        names.afterDestroy = e.name;
      }
    }
    session.destroy();
    return { names, usageAfterAbort, after };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const { names, after, usageAfterAbort } = r.value;
  assert.deepEqual(names, {
    prompt: "AbortError",
    cloneUsage: true,
    clone: "AbortError",
    createSignal: "AbortError",
    destroyStream: "AbortError",
    afterDestroy: "AbortError",
  });
  assert.equal(usageAfterAbort, 0, "an aborted prompt leaves nothing in the session");
  assert.ok(after.length > 0);
});

test("the context window: contextoverflow drops the oldest turns, a prompt too long is QuotaExceededError", {
  timeout: 120_000,
}, async () => {
  const r = await run(async () => {
    const Small = PromptApi.createLanguageModel({
      sampling: { temperature: 0 },
      maxTokens: 8,
      contextLength: 160,
      backend: "wasm",
      threads: 2,
    });
    const session = await Small.create({
      initialPrompts: [{ role: "system", content: "Answer in one short sentence." }],
    });
    let overflows = 0;
    // --- the explainer's code ---
    session.addEventListener("contextoverflow", () => {
      console.log("We've gone past the context window, and some inputs will be dropped!");
    });
    // ---
    session.oncontextoverflow = () => overflows++;
    const usages = [];
    for (const q of [
      "Name a red fruit.",
      "Name a blue flower.",
      "Name a green vegetable.",
      "Name a yellow bird.",
      "Name a big city.",
    ]) {
      await session.prompt(q);
      usages.push(session.contextUsage);
    }
    let quota = null;
    try {
      await session.prompt("word ".repeat(200));
    } catch (e) {
      quota = { name: e.name, requested: e.requested, quota: e.quota, message: e.message };
    }
    const still = await session.prompt("Name a small dog.");
    session.destroy();
    return { overflows, usages, quota, still, window: session.contextWindow };
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const v = r.value;
  assert.ok(v.overflows >= 1, `usage ${v.usages}`);
  assert.equal(r.logs.length, v.overflows);
  assert.ok(
    v.usages.every((u) => u <= 160),
    `usage stays in the window: ${v.usages}`,
  );
  assert.equal(v.quota?.name, "QuotaExceededError", JSON.stringify(v.quota));
  assert.ok(v.quota.requested > v.quota.quota && v.quota.quota < 160, JSON.stringify(v.quota));
  assert.ok(v.still.length > 0, "the session answers after the error");
});

test("bad input: each gives the spec's exception, and the session serves the next prompt", {
  timeout: 120_000,
}, async () => {
  const r = await run(async () => {
    const session = await LanguageModel.create();
    const attempts = {
      unsupportedSchema: () =>
        session.prompt("Hi", {
          responseConstraint: { type: "object", unevaluatedProperties: false },
        }),
      lookAround: () => session.prompt("Hi", { responseConstraint: /(?=a)b/ }),
      notAConstraint: () => session.prompt("Hi", { responseConstraint: "json" }),
      omitAlone: () => session.prompt("Hi", { omitResponseConstraintInput: true }),
      prefixFirst: () =>
        session.prompt([
          { role: "assistant", content: "Sure", prefix: true },
          { role: "user", content: "Hi" },
        ]),
      image: () =>
        session.prompt([{ role: "user", content: [{ type: "image", value: new Blob([]) }] }]),
      role: () => session.prompt([{ role: "tool", content: "x" }]),
      badTool: () =>
        LanguageModel.create({ tools: [{ name: "f", description: "d", inputSchema: {} }] }),
      imageSession: () => LanguageModel.create({ expectedInputs: [{ type: "image" }] }),
      bothSamplings: () => LanguageModel.create({ samplingMode: "creative", temperature: 1 }),
    };
    const names = {};
    for (const [k, f] of Object.entries(attempts)) {
      try {
        await f();
        names[k] = "resolved";
      } catch (e) {
        names[k] = e.name;
        if (k === "unsupportedSchema") names.detail = e.message;
      }
    }
    const creative = await LanguageModel.create({ samplingMode: "creative" });
    names.mode = creative.samplingMode;
    creative.destroy();
    names.after = await session.prompt("Say hello.");
    session.destroy();
    return names;
  });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  const { after, detail, ...names } = r.value;
  assert.deepEqual(names, {
    unsupportedSchema: "NotSupportedError",
    lookAround: "NotSupportedError",
    notAConstraint: "TypeError",
    omitAlone: "TypeError",
    prefixFirst: "SyntaxError",
    image: "NotSupportedError",
    role: "TypeError",
    badTool: "TypeError",
    imageSession: "NotSupportedError",
    bothSamplings: "TypeError",
    mode: "creative",
  });
  assert.match(detail, /unevaluatedProperties/, "the unsupported part is named");
  assert.ok(after.length > 0);
});

test("promptStreaming() iterates with for await where streams cannot (Safari), and breaking out cancels", {
  timeout: 60_000,
}, async () => {
  const r = await page.evaluate(async () => {
    const native = ReadableStream.prototype[Symbol.asyncIterator];
    delete ReadableStream.prototype[Symbol.asyncIterator];
    try {
      const session = await LanguageModel.create();
      const hello = await session.clone();
      const whole = await hello.prompt("Say hello.");
      let text = "";
      for await (const chunk of (await session.clone()).promptStreaming("Say hello."))
        text += chunk;
      let first = null;
      const s = await session.clone();
      for await (const chunk of s.promptStreaming("Write me a poem.")) {
        first = chunk;
        break;
      }
      // The cancelled poem never joins the conversation: the next prompt is as in a fresh one.
      await s.prompt("Say hello.");
      const usage = [s.contextUsage, hello.contextUsage];
      session.destroy();
      return { whole, text, first, usage };
    } finally {
      ReadableStream.prototype[Symbol.asyncIterator] = native;
    }
  });
  assert.equal(r.text, r.whole);
  assert.ok(r.first?.length > 0);
  assert.equal(r.usage[0], r.usage[1], "the cancelled answer left nothing in the session");
});
