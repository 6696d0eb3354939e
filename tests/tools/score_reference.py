"""llama.cpp's scores of tests/quality/text.txt, the yardstick of tests/quality.rs.

For each model: llama.cpp's token ids for the text (BOS as the model adds it), and at every
position the 20 most likely next tokens with their log-probabilities (full-vocabulary
log-softmax, flash attention off, as the references), the text token's own log-probability,
and the perplexity. Then the same with flash attention on, compared with the first run the
way the test compares Ouvert (`kl`, `top1`, `ppl`): llama.cpp's own noise, the yardstick.

    python tests/tools/score_reference.py MODEL.gguf... > tests/quality/reference.json

needs llama-cpp-python==0.3.36 and numpy (`./build.sh bench` installs them in
target/llama-venv). One thread, one sequence, the whole text in one context.
"""
import ctypes
import hashlib
import json
import os
import sys

import llama_cpp as L
import numpy as np

TOP = 20
# Kept alive for as long as llama.cpp may call it.
QUIET = L.llama_log_callback(lambda level, text, user_data: None)
HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = os.path.join(HERE, "..", "quality", "text.txt")


def run(path, text, flash):
    L.llama_backend_init()
    L.llama_log_set(QUIET, ctypes.c_void_p(0))
    model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    raw = text.encode()
    buf = (L.llama_token * (len(raw) + 16))()
    n = L.llama_tokenize(vocab, raw, len(raw), buf, len(buf), True, False)
    ids = list(buf[:n])
    cp = L.llama_context_default_params()
    cp.n_ctx = 2048
    cp.n_batch = 2048
    cp.n_ubatch = 512
    cp.n_threads = cp.n_threads_batch = 1
    cp.flash_attn_type = 1 if flash else 0
    ctx = L.llama_init_from_model(model, cp)
    batch = L.llama_batch_init(n, 0, 1)
    for i, t in enumerate(ids):
        batch.token[i] = t
        batch.pos[i] = i
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = 0
        batch.logits[i] = 1
    batch.n_tokens = n
    assert L.llama_decode(ctx, batch) == 0
    rows = []
    for i in range(n - 1):
        p = L.llama_get_logits_ith(ctx, i)
        row = np.ctypeslib.as_array(p, shape=(n_vocab,)).astype(np.float64)
        m = row.max()
        lp = row - (m + np.log(np.exp(row - m).sum()))
        best = np.argsort(-lp, kind="stable")[:TOP]
        rows.append({"lp": lp, "best": best})
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)
    return ids, rows


def kl_top(p_top, p_lp, q_lp_at):
    """KL(p‖q) over p's top tokens and one bucket for the rest of the vocabulary."""
    p = np.exp(p_lp)
    q = np.exp(q_lp_at)
    po, qo = max(1 - p.sum(), 1e-12), max(1 - q.sum(), 1e-12)
    return float((p * (p_lp - q_lp_at)).sum() + po * np.log(po / qo))


def main():
    text = open(TEXT, encoding="utf-8").read()
    out = {
        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "llama_cpp": L.__version__,
        "top": TOP,
        "models": {},
    }
    for path in sys.argv[1:]:
        ids, off = run(path, text, flash=False)
        ids_on, on = run(path, text, flash=True)
        assert ids == ids_on
        own = [float(r["lp"][ids[i + 1]]) for i, r in enumerate(off)]
        own_on = [float(r["lp"][ids[i + 1]]) for i, r in enumerate(on)]
        kls = [kl_top(r["best"], r["lp"][r["best"]], s["lp"][r["best"]]) for r, s in zip(off, on)]
        same = [bool(r["best"][0] == s["best"][0]) for r, s in zip(off, on)]
        top1 = np.mean(same)
        ppl = float(np.exp(-np.mean(own)))
        ppl_on = float(np.exp(-np.mean(own_on)))
        name = os.path.basename(path)
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        out["models"][name] = {
            "sha256": sha,
            "ids": ids,
            # Per position i (predicting ids[i + 1]): the top ids and their log-probabilities.
            "top_ids": [[int(t) for t in r["best"]] for r in off],
            "top_logprobs": [[round(float(r["lp"][t]), 5) for t in r["best"]] for r in off],
            "logprobs": [round(x, 5) for x in own],
            "perplexity": ppl,
            "yardstick": {
                "what": "llama.cpp flash attention on against off, measured as the test measures Ouvert",
                "kl_mean": float(np.mean(kls)),
                "kl_p99": float(np.percentile(kls, 99)),
                "top1": float(top1),
                "perplexity_on": ppl_on,
                "perplexity_ratio": ppl_on / ppl,
                # Per position, so a test over the text's first part compares like with like.
                "kl": [round(k, 7) for k in kls],
                # The text token's log-probability with flash attention on: llama.cpp's own
                # perplexity ratio over the positions a test scores.
                "logprobs_on": [round(x, 5) for x in own_on],
                "same_top1": same,
            },
        }
        print(f"{name}: {len(ids)} tokens, ppl {ppl:.4f} (flash on {ppl_on:.4f}), yardstick KL {np.mean(kls):.5f}, top-1 {top1:.3f}", file=sys.stderr)
    json.dump(out, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()
