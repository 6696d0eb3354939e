// Abort and reuse at scale, in headless Chromium on the real model: 100 cycles of create
// (from the cache), generate, abort mid-stream, generate again, dispose, in one page. No
// worker outlives its engine and the browser's memory does not grow after the first cycle.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { startBrowser, MODEL, openApiPage } from "./util.mjs";

const URL_ = `/models/${MODEL}`;
const CYCLES = Number(process.env.OUVERT_CYCLES || 100);

let env, page;
before(async () => {
  env = await startBrowser();
  page = await openApiPage(env);
});
after(async () => {
  assert.deepEqual(env.outside, [], "no request may leave 127.0.0.1");
  await env.close();
});

/** Resident memory of this test's browser: its process and every descendant, in MB. */
function browserRssMB() {
  const rows = execFileSync("ps", ["-e", "-o", "pid=,ppid=,rss=,args="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => {
      const [pid, ppid, rss, ...args] = l.trim().split(/\s+/);
      return [Number(pid), Number(ppid), Number(rss), args.join(" ")];
    });
  // The browser's first process is the one launched with this test's marker flag.
  const ours = new Set(
    rows
      .filter(
        ([, ppid, , args]) =>
          args.includes(env.marker) &&
          !rows.some(([p, , , a]) => p === ppid && a.includes(env.marker)),
      )
      .map(([pid]) => pid),
  );
  assert.equal(ours.size, 1, "the test's browser process");
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of rows)
      if (ours.has(ppid) && !ours.has(pid)) {
        ours.add(pid);
        grew = true;
      }
  }
  return rows.filter(([pid]) => ours.has(pid)).reduce((a, [, , rss]) => a + rss, 0) / 1024;
}

const cycle = () =>
  page.evaluate(async (url) => {
    const engine = await Ouvert.createEngine({ model: url, backend: "wasm", contextLength: 256 });
    const ctl = new AbortController();
    let pieces = 0,
      code = null;
    try {
      for await (const _ of engine.generate("Once upon a time,", {
        maxTokens: 64,
        temperature: 0.8,
        seed: pieces,
        signal: ctl.signal,
      })) {
        if (++pieces === 2) ctl.abort();
      }
    } catch (e) {
      code = e.code;
    }
    const again = await engine.complete("Paris is", { maxTokens: 2, temperature: 0 });
    await engine.dispose();
    let afterDispose = null;
    try {
      await engine.complete("x");
    } catch (e) {
      afterDispose = e.code;
    }
    // abort() lands within one token: at most one piece after it.
    return {
      source: engine.info.source,
      stoppedInTime: pieces <= 3,
      code,
      again: again.tokens.length,
      afterDispose,
    };
  }, URL_);

test(`${CYCLES} cycles of create, generate, abort, dispose: no worker left, no memory growth after the first`, {
  timeout: 1_200_000,
}, async () => {
  await page.evaluate(
    async (url) => (await Ouvert.createEngine({ model: url, backend: "wasm" })).dispose(),
    URL_,
  ); // fills the cache
  const settle = async () => {
    for (let i = 0; i < 50 && page.workers().length > 0; i++)
      await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(page.workers().length, 0, "a disposed engine's worker is gone");
    await page.evaluate(() => new Promise((ok) => setTimeout(ok, 500)));
  };
  const first = await cycle();
  assert.deepEqual(first, {
    source: "cache",
    stoppedInTime: true,
    code: "aborted",
    again: 2,
    afterDispose: "disposed",
  });
  await settle();
  const base = browserRssMB();
  // The probe sees an engine: one alive holds the model (~290 MB) in its worker.
  await page.evaluate(async (url) => {
    window.held = await Ouvert.createEngine({ model: url, backend: "wasm", contextLength: 256 });
  }, URL_);
  const holding = browserRssMB();
  await page.evaluate(() => window.held.dispose());
  await settle();
  assert.ok(holding - base > 200, `a live engine shows as ${(holding - base).toFixed(0)} MB`);
  let peak = base;
  const series = [];
  for (let i = 2; i <= CYCLES; i++) {
    const r = await cycle();
    assert.deepEqual(r, first, `cycle ${i}`);
    if (i % 10 === 0 || i === CYCLES) {
      // the last too, so a short run has a series
      await settle();
      series.push(Math.round(browserRssMB()));
      peak = Math.max(peak, series.at(-1));
    }
  }
  const end = browserRssMB();
  console.log(
    `browser RSS after cycle 1: ${base.toFixed(0)} MB; with an engine alive: ${holding.toFixed(0)} MB; at every tenth cycle: ${series.join(", ")} MB; after cycle ${CYCLES}: ${end.toFixed(0)} MB`,
  );
  // A leaked engine holds its model (+370 MB, as measured above): the growth stays under half
  // of one. Chromium steps its heaps up once, at a cycle that varies (seen: +90 MB near cycle
  // 50, and near 70, flat before and after), so the leak test proper is the second half of
  // the cycles with its largest single step set aside: a steady leak rises at every step.
  assert.ok(
    peak - base < (holding - base) / 2,
    `the browser grew by ${(peak - base).toFixed(0)} MB over ${CYCLES} cycles`,
  );
  const late = series.slice(Math.floor(series.length / 2));
  const rises = late.slice(1).map((v, i) => Math.max(0, v - late[i]));
  const steady = rises.reduce((a, b) => a + b, 0) - Math.max(0, ...rises);
  assert.ok(
    steady < 24,
    `the browser grew by ${steady} MB over the last half of the cycles, besides its largest step`,
  );
});
