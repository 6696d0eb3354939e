// Structured output in headless Chromium with the instruct model (Qwen2.5 Coder 0.5B
// Instruct, wasm, greedy): a JSON Schema extraction from French prose that a JSON Schema
// validator (Ajv) accepts, regexes, Lark and GBNF grammars, a cut output reported as such,
// and each bad format named before any token, the engine serving the next request.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Ajv from "ajv";
import { startBrowser, openApiPage, INSTRUCT_MODEL } from "./util.mjs";

let env, page;

before(async () => {
  env = await startBrowser();
  page = await openApiPage(env);
  // Only the engine's own wasm and the page's modules until a constraint is asked for.
  await page.evaluate(async (url) => {
    window.engine = await Ouvert.createEngine({ model: url, backend: "wasm", contextLength: 1024 });
  }, `/models/${INSTRUCT_MODEL}`);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

// The grammar module's wasm (its small JS glue comes with the worker).
const grammarRequests = () =>
  env.methods.filter(([, url]) => url.includes("/wasm-grammar/") && url.endsWith(".wasm"));
const complete = (prompt, options) =>
  page.evaluate(
    async ({ prompt, options }) => {
      try {
        const r = await engine.complete(prompt, { temperature: 0, maxTokens: 96, ...options });
        return { text: r.text, finishReason: r.finishReason, stats: r.stats };
      } catch (e) {
        return { error: { code: e.code, message: e.message } };
      }
    },
    { prompt, options },
  );
const ask = (content, options) => complete({ messages: [{ role: "user", content }] }, options);

const PERSON = {
  type: "object",
  properties: {
    nom: { type: "string", minLength: 2 },
    naissance: { type: "integer", minimum: 1000, maximum: 2100 },
    ville: { type: "string" },
    metiers: {
      type: "array",
      items: { enum: ["physicienne", "chimiste", "musicienne"] },
      minItems: 1,
    },
    prix: { $ref: "#/$defs/prix" },
  },
  required: ["nom", "naissance", "ville", "metiers", "prix"],
  additionalProperties: false,
  $defs: { prix: { type: "array", items: { type: "string" }, maxItems: 3 } },
};

test("a JSON Schema extraction from French prose parses and validates; the grammar module loads on first use", {
  timeout: 300_000,
}, async () => {
  assert.deepEqual(grammarRequests(), [], "no grammar module before a constraint");
  assert.deepEqual(await page.evaluate(() => engine.requests), [], "no request since the load");
  const paragraph =
    "Marie Curie, née à Varsovie en 1867, était physicienne et chimiste. Elle a reçu le prix Nobel de physique en 1903 et celui de chimie en 1911.";
  const r = await page.evaluate(
    async ({ paragraph, schema }) => {
      const c = await engine.chat.completions.create({
        messages: [
          { role: "user", content: `Extrais la fiche de cette personne en JSON : ${paragraph}` },
        ],
        temperature: 0,
        max_tokens: 160,
        response_format: {
          type: "json_schema",
          json_schema: { name: "personne", schema, strict: true },
        },
      });
      return { content: c.choices[0].message.content, finish: c.choices[0].finish_reason };
    },
    { paragraph, schema: PERSON },
  );
  console.log(`  JSON: ${r.content}`);
  assert.equal(r.finish, "stop");
  const value = JSON.parse(r.content);
  const validate = new Ajv().compile(PERSON);
  assert.ok(validate(value), JSON.stringify(validate.errors));
  assert.match(value.nom, /Curie/);
  assert.equal(value.naissance, 1867);
  assert.ok(grammarRequests().length > 0, "the grammar module was fetched");
  // The engine's worker reports it: the network meter's half that the page cannot see.
  const requests = await page.evaluate(() => engine.requests);
  assert.ok(
    requests.some((u) => u.includes("/wasm-grammar/") && u.endsWith(".wasm")),
    JSON.stringify(requests),
  );
});

test("regexes hold: an ISO date, a French phone number", { timeout: 300_000 }, async () => {
  const date = await ask(
    "Quelle est la date de la prise de la Bastille ? Réponds par une date ISO.",
    {
      responseFormat: {
        type: "regex",
        pattern: "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
      },
    },
  );
  console.log(`  date: ${date.text}`, date.stats);
  assert.match(date.text, /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
  assert.equal(date.finishReason, "stop");
  const step = 1000 / date.stats.decodeTokensPerSecond;
  const mask = date.stats.constraintMs / date.stats.completionTokens;
  console.log(`  mask ${mask.toFixed(2)} ms per token, decode step ${step.toFixed(1)} ms`);
  const phone = await ask("Donne le numéro de téléphone d'une mairie française.", {
    responseFormat: { type: "regex", pattern: "0[1-9]( [0-9]{2}){4}" },
  });
  assert.match(phone.text, /^0[1-9]( \d{2}){4}$/);
});

test("Lark and GBNF grammars hold", { timeout: 300_000 }, async () => {
  const lark = await ask("Le ciel est-il bleu ? Réponds par oui ou non, puis une raison courte.", {
    responseFormat: {
      type: "grammar",
      lark: 'start: answer ", " reason "."\nanswer: "oui" | "non"\nreason: /[a-zà-ÿ ]{3,40}/',
    },
  });
  console.log(`  lark: ${lark.text}`);
  assert.match(lark.text, /^(oui|non), [a-zà-ÿ ]{3,40}\.$/);
  const gbnf = await ask("Liste trois couleurs, en minuscules, séparées par des virgules.", {
    responseFormat: {
      type: "grammar",
      gbnf: 'root ::= item ("," " " item){2}\nitem ::= [a-z]{3,10} # a lower-case word\n',
    },
  });
  console.log(`  gbnf: ${gbnf.text}`);
  assert.match(gbnf.text, /^[a-z]{3,10}, [a-z]{3,10}, [a-z]{3,10}$/);
  assert.equal(gbnf.finishReason, "stop");
});

test("an output cut by maxTokens says so; bad formats are named before any token, and the engine goes on", {
  timeout: 300_000,
}, async () => {
  const capital = () =>
    ask("Quelle est la capitale de la France ?", {
      maxTokens: 12,
      responseFormat: { type: "regex", pattern: "[A-Z][a-z]+( [a-z]+)*" },
    });
  const first = await capital();
  assert.match(first.text, /^[A-Z][a-z]+( [a-z]+)*$/);
  const cut = await ask("Décris Paris en JSON.", {
    maxTokens: 6,
    responseFormat: { type: "json_object" },
  });
  assert.equal(cut.finishReason, "length");
  assert.throws(() => JSON.parse(cut.text), "six tokens of an object do not close it");
  const bad = [
    [{ type: "json_schema", schema: { type: "strin" } }, /strin/],
    [
      { type: "json_schema", schema: { type: "object", unevaluatedProperties: false } },
      /unevaluatedProperties/,
    ],
    [{ type: "regex", pattern: "(a" }, /unclosed group/],
    [{ type: "grammar", lark: "start: missing_rule" }, /missing_rule/],
    [{ type: "grammar", gbnf: 'root ::= "a' }, /GBNF/],
    [{ type: "xml" }, /unknown variant/],
  ];
  for (const [format, message] of bad) {
    const r = await ask("Bonjour", { responseFormat: format });
    assert.equal(r.error?.code, "invalid_argument", JSON.stringify(format));
    assert.match(r.error.message, message);
  }
  const again = await capital();
  assert.equal(again.text, first.text, "the same answer after the errors");
  assert.equal(again.finishReason, first.finishReason);
});

const METEO = {
  type: "function",
  function: {
    name: "meteo",
    description: "La météo actuelle d'une ville",
    parameters: {
      type: "object",
      properties: { ville: { type: "string" }, unite: { enum: ["celsius", "fahrenheit"] } },
      required: ["ville", "unite"],
    },
  },
};
const HEURE = {
  type: "function",
  function: {
    name: "heure",
    description: "L'heure qu'il est dans un fuseau horaire",
    parameters: {
      type: "object",
      properties: { fuseau: { type: "string" } },
      required: ["fuseau"],
    },
  },
};
const chat = (body) =>
  page.evaluate(async (body) => {
    try {
      const c = await engine.chat.completions.create({ temperature: 0, max_tokens: 64, ...body });
      if (!body.stream) return c;
      const chunks = [];
      for await (const k of c) chunks.push(k);
      return { chunks };
    } catch (e) {
      return { error: { code: e.code, message: e.message } };
    }
  }, body);

test("tool calls: OpenAI tool_calls whose arguments validate, streamed too; the result sent back gives an answer", {
  timeout: 300_000,
}, async () => {
  const validArgs = new Ajv().compile(METEO.function.parameters);
  const user = { role: "user", content: "Quel temps fait-il à Lyon ?" };
  // auto: the model chooses; asked to, it calls (this model writes the call as bare JSON).
  const auto = await chat({
    messages: [{ role: "user", content: "Quel temps fait-il à Lyon ? Appelle l'outil meteo." }],
    tools: [METEO],
  });
  console.log("  auto:", JSON.stringify(auto.choices[0].message));
  assert.equal(auto.choices[0].finish_reason, "tool_calls");
  assert.equal(auto.choices[0].message.tool_calls[0].function.name, "meteo");
  // required, and a named function among two: held to the function's parameters.
  const required = await chat({ messages: [user], tools: [HEURE, METEO], tool_choice: "required" });
  const named = await chat({
    messages: [user],
    tools: [HEURE, METEO],
    tool_choice: { type: "function", function: { name: "meteo" } },
  });
  for (const c of [required, named]) {
    const m = c.choices[0].message;
    console.log("  required:", JSON.stringify(m));
    assert.equal(c.choices[0].finish_reason, "tool_calls");
    assert.equal(m.content, null);
    assert.equal(m.tool_calls.length, 1);
    assert.match(m.tool_calls[0].id, /^call_/);
    const args = JSON.parse(m.tool_calls[0].function.arguments);
    if (m.tool_calls[0].function.name === "meteo")
      assert.ok(validArgs(args), JSON.stringify(validArgs.errors));
    else assert.equal(typeof args.fuseau, "string");
  }
  assert.equal(named.choices[0].message.tool_calls[0].function.name, "meteo");
  // Streamed: the call comes as a tool_calls delta, never as content.
  const { chunks } = await chat({
    messages: [user],
    tools: [METEO],
    tool_choice: "required",
    stream: true,
  });
  const deltas = chunks.map((k) => k.choices[0]?.delta ?? {});
  assert.equal(deltas.map((d) => d.content ?? "").join(""), "");
  assert.deepEqual(
    deltas.flatMap((d) => d.tool_calls ?? []).map((t) => [t.index, t.function.name]),
    [[0, "meteo"]],
  );
  assert.equal(chunks.at(-1).choices[0].finish_reason, "tool_calls");
  // The result back as a tool message. This 0.5B model, offered the tools again, repeats
  // the call: the answer is held to prose (Ouvert's regex form) to show the round trip.
  const call = named.choices[0].message.tool_calls[0];
  const answer = await chat({
    messages: [
      {
        role: "system",
        content:
          "Tu es un assistant météo. Quand un outil te donne son résultat, réponds à l'utilisateur en une phrase.",
      },
      user,
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", tool_call_id: call.id, content: "Lyon : 12 °C, ciel pluvieux." },
    ],
    tools: [METEO],
    response_format: { type: "regex", pattern: "[A-Za-zÀ-ÿ][^<{}`]*" },
  });
  console.log("  answer:", answer.choices[0].message.content);
  assert.equal(answer.choices[0].finish_reason, "stop");
  assert.match(answer.choices[0].message.content, /12/);
});

test("bad tool definitions and choices are named; the engine goes on", {
  timeout: 120_000,
}, async () => {
  const user = { role: "user", content: "Bonjour" };
  const bad = [
    [{ tools: [{ type: "function", function: {} }] }, /tools\[0\]/],
    [{ tools: [{ type: "function", function: { name: "a b" } }] }, /name of letters/],
    [{ tools: [{ type: "function", function: { name: "f", parameters: 3 } }] }, /parameters/],
    [{ tools: [METEO], tool_choice: { type: "function", function: { name: "pluie" } } }, /pluie/],
    [{ tools: [METEO], tool_choice: "sometimes" }, /tool_choice/],
    [
      {
        tools: [
          {
            type: "function",
            function: { name: "f", parameters: { type: "object", unevaluatedProperties: false } },
          },
        ],
        tool_choice: "required",
      },
      /unevaluatedProperties/,
    ],
  ];
  for (const [body, message] of bad) {
    const r = await chat({ messages: [user], ...body });
    assert.equal(r.error?.code, "invalid_argument", JSON.stringify(body));
    assert.match(r.error.message, message);
  }
  const ok = await chat({ messages: [user], max_tokens: 4 });
  assert.ok(ok.choices[0].message.content.length > 0);
});
