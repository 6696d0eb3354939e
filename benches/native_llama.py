#!/usr/bin/env python3
"""Native llama.cpp (llama-cpp-python) against Ouvert's native engine on the same GGUF, one
thread each, alternating: prefill of a 128- and a 512-token prompt, greedy decode of 128
tokens. Run by `./build.sh bench` (which installs llama-cpp-python into target/llama-venv).

    python benches/native_llama.py MODEL OUVERT_CLI [rounds] REFERENCE_JSON

REFERENCE_JSON is ../shared/reference/gemma-3-270m-q4_k_m.reference.json: its long French
prompt, cut to 128 and 512 tokens, is the prefill text. Each engine stays loaded and warm in
one process (Ouvert's `serve`), and each measurement starts from an empty KV cache.

Writes the rounds and medians to target/bench-native-<model>.json (for benches/table.mjs).
"""
import json
import subprocess
import sys
import time

import numpy as np
from llama_cpp import Llama

if len(sys.argv) < 5:
    sys.exit(__doc__)
model, cli = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3])
reference = json.load(open(sys.argv[4]))

llm = Llama(model_path=model, n_ctx=2048, n_batch=512, n_threads=1, n_threads_batch=1, verbose=False)
text = "\n\n".join([next(p["text"] for p in reference["prompts"] if p["id"] == "french_long")] * 8)
ids = llm.tokenize(text.encode(), add_bos=True)
prompts = {n: llm.detokenize(ids[1:n]).decode("utf-8", "ignore") for n in (128, 512)}


def llama(prompt, decode):
    llm.reset()
    toks = llm.tokenize(prompt.encode(), add_bos=True)
    t0 = time.perf_counter()
    llm.eval(toks)
    prefill = len(toks) / (time.perf_counter() - t0)
    if not decode:
        return len(toks), prefill, None
    t0 = time.perf_counter()
    for _ in range(decode):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    return len(toks), prefill, decode / (time.perf_counter() - t0)


server = subprocess.Popen([cli, "serve", "--model", model], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ouvert(prompt, decode):
    server.stdin.write(json.dumps({"prompt": prompt, "max_tokens": max(decode, 1)}) + "\n")
    server.stdin.flush()
    r = json.loads(server.stdout.readline())
    if "error" in r:
        sys.exit(f"ouvert serve: {r['error']}")
    return len(r["prompt_tokens"]), r["stats"]["prefillTokensPerSecond"], r["stats"]["decodeTokensPerSecond"] if decode else None


rows = []
for rnd in range(rounds):
    for name, run in ([("ouvert", ouvert), ("llama.cpp", llama)] if rnd % 2 == 0 else [("llama.cpp", llama), ("ouvert", ouvert)]):
        n128, p128, _ = run(prompts[128], 0)
        n512, p512, _ = run(prompts[512], 0)
        _, _, dec = run("The weather today", 128)
        rows.append({"round": rnd, "engine": name, "prompt128": n128, "prefill128": p128, "prompt512": n512, "prefill512": p512, "decode": dec})
        print(json.dumps(rows[-1]), flush=True)


def med(engine, key):
    return float(np.median([r[key] for r in rows if r["engine"] == engine]))


out = {"model": model.rsplit("/", 1)[-1], "rounds": rounds, "rows": rows,
       "median": {e: {k: med(e, k) for k in ("prefill128", "prefill512", "decode")} for e in ("ouvert", "llama.cpp")}}
json.dump(out, open(f"target/bench-native-{out['model'].removesuffix('.gguf')}.json", "w"))

for key in ("prefill128", "prefill512", "decode"):
    ratios = [o[key] / l[key] for o, l in zip([r for r in rows if r["engine"] == "ouvert"], [r for r in rows if r["engine"] == "llama.cpp"])]
    print(f"{key:11} Ouvert {med('ouvert', key):7.1f}  llama.cpp {med('llama.cpp', key):7.1f}  ratio per round {' '.join(f'{x:.2f}' for x in ratios)}  median {np.median(ratios):.2f}")
server.stdin.close()
server.wait()
