#!/usr/bin/env python3
"""llama.cpp's intermediate tensors for one reference prompt, to find where Ouvert's
numerics leave llama.cpp's (by hand; needs `pip install llama-cpp-python==0.3.36 numpy`,
a ~10-minute build on 2 cores).

    python tests/tools/llama_tensors.py PROMPT_ID [--threads 2] [--flash-attn 1] [--out DIR]

Writes DIR/PROMPT_ID.npz: every f32 tensor of the prompt's one-batch forward by its ggml
name (`attn_norm-0`, `kqv_out-0`, `ffn_out-0`, `l_out-0`, ...; rows are tokens) and
`__logits` (the last position). The reference JSON was made with flash attention on
(llama-cpp-python's default): `--flash-attn 1` reproduces its logits to 1e-4, `0` is
0.45 off on "english".

With --compare, Ouvert runs the same ids (`ouvert tensors`, the native binary built by
`cargo build --release`) and, per layer, each intermediate both sides name alike is
compared: relative RMS error ‖ouvert − llama.cpp‖ / ‖llama.cpp‖ and the largest difference.
Where llama.cpp keeps only the last position (its last layer), so does the comparison.

    python tests/tools/llama_tensors.py english --compare [--backend cpu|gpu]
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys

import llama_cpp as L
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class GgmlTensor(ctypes.Structure):
    """The head of ggml.h's `struct ggml_tensor` (ggml as vendored by llama-cpp-python 0.3.36)."""
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4),
                ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10),
                ("view_src", ctypes.c_void_p), ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prompt_id")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--reference", default=os.path.join(ROOT, "..", "shared", "reference", "gemma-3-270m-q4_k_m.reference.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flash-attn", type=int, default=1)
    ap.add_argument("--out", default=".")
    ap.add_argument("--compare", action="store_true", help="compare with Ouvert's intermediates, layer by layer")
    ap.add_argument("--backend", default="cpu", help="Ouvert's backend for --compare")
    a = ap.parse_args()
    prompt = next(p for p in json.load(open(a.reference))["prompts"] if p["id"] == a.prompt_id)
    ids = prompt["llama_cpp"]["prompt_ids"]

    tensors = {}

    @L.ggml_backend_sched_eval_callback
    def observe(t, ask, _user):
        if ask:
            return True  # compute node by node, so each one is seen before its buffer is reused
        t = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
        contiguous = t.nb[0] == 4 and t.nb[1] == 4 * t.ne[0]
        if t.type == 0 and t.data and contiguous:  # f32
            n = t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3]
            tensors[t.name.decode()] = np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)), shape=(n,)).copy()
        return True

    L.llama_backend_init()
    model = L.llama_model_load_from_file(a.model.encode(), L.llama_model_default_params())
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 1024, 512, 512
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.flash_attn_type = a.flash_attn
    cp.cb_eval = observe
    ctx = L.llama_init_from_model(model, cp)
    tokens = (L.llama_token * len(ids))(*ids)
    assert L.llama_decode(ctx, L.llama_batch_get_one(tokens, len(ids))) == 0
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    tensors["__logits"] = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(vocab,)).copy()
    np.savez(os.path.join(a.out, f"{a.prompt_id}.npz"), **tensors)
    top = np.argsort(-tensors["__logits"])[:5]
    print("top-5:", [(int(t), round(float(tensors["__logits"][t]), 4)) for t in top])
    print("reference:", [(t["id"], t["logit"]) for t in prompt["llama_cpp"]["top5_first"]])
    if a.compare:
        compare(a, ids, tensors)


def compare(a, ids, theirs):
    """Prints, layer by layer, how far Ouvert's intermediates are from llama.cpp's."""
    out = os.path.join(a.out, f"{a.prompt_id}-ouvert")
    binary = os.path.join(ROOT, "target", "release", "ouvert")
    run = subprocess.run([binary, "tensors", "--model", a.model, "--ids", ",".join(map(str, ids)),
                          "--out", out, "--backend", a.backend], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"ouvert tensors failed: {run.stdout}{run.stderr}")
    names = json.loads(run.stdout)["tensors"]
    theirs = dict(theirs, result_output=theirs["__logits"])
    print(f"{'tensor':<18}{'rows':>5}{'rel. RMS':>12}{'max |diff|':>12}")
    for name in names:
        if name not in theirs:
            continue
        ours = np.load(os.path.join(out, f"{name}.npy"))
        width, ours, ref = ours.shape[1], ours.ravel(), theirs[name].ravel()
        if ours.size > ref.size and ours.size % ref.size == 0:
            ours = ours[-ref.size:]  # llama.cpp kept the last position only
        if ours.size != ref.size:
            print(f"{name:<18} sizes differ: {ours.size} (Ouvert) vs {ref.size} (llama.cpp)")
            continue
        rel = np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-30)
        print(f"{name:<18}{ref.size // width:>5}{rel:>12.2e}{np.abs(ours - ref).max():>12.3g}")


if __name__ == "__main__":
    main()
