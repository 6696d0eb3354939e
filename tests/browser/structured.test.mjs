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

const grammarRequests = () => env.methods.filter(([, url]) => url.includes("/wasm-grammar/"));
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
