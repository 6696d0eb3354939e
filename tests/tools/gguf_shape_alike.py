#!/usr/bin/env python3
"""A model file with a real model's header and random weights of the same types and shapes.

Speed probes on a lent GPU machine need the model's shapes, not its values, and a 253 MB
file does not travel to that machine in one call. So the header (metadata, tokenizer and
tensor table: a few MB) travels, and the weights are made there:

    gguf_shape_alike.py head MODEL.gguf OUT.head   # here: the header only
    gguf_shape_alike.py fill OUT.head OUT.gguf     # there: header + random weights

Quantized blocks get random quants and a small scale (so the activations stay finite);
F32 tensors (norms, biases) are ones; F16/BF16 small random values. Timing is the same as
the real file's (the kernels do not depend on the values); the tokens are noise.
"""

import struct
import sys

import numpy as np

# ggml type: (block values, block bytes, byte offsets of f16 scales set to SCALE, of f16
# offsets set to zero)
TYPES = {
    0: (1, 4, (), ()),  # F32
    1: (1, 2, (), ()),  # F16
    2: (32, 18, (0,), ()),  # Q4_0
    3: (32, 20, (0,), (2,)),  # Q4_1
    6: (32, 22, (0,), ()),  # Q5_0
    7: (32, 24, (0,), (2,)),  # Q5_1
    8: (32, 34, (0,), ()),  # Q8_0
    10: (256, 84, (80,), (82,)),  # Q2_K
    11: (256, 110, (108,), ()),  # Q3_K
    12: (256, 144, (0,), (2,)),  # Q4_K
    13: (256, 176, (0,), (2,)),  # Q5_K
    14: (256, 210, (208,), ()),  # Q6_K
    30: (1, 2, (), ()),  # BF16
}
SCALE = np.array([0.001], np.float16).view(np.uint8)


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = self.data[self.at : self.at + n]
        self.at += n
        return s.decode("utf-8", "replace")

    def value(self, t):
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if t in scalar:
            return self.take(scalar[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown metadata type {t}")


def parse(data):
    """(tensors as (name, type, values, offset), where the data starts)."""
    r = Reader(data)
    magic, version = r.take("4s"), r.take("I")
    assert magic == b"GGUF" and version >= 2, "not a GGUF v2+ file"
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    alignment = 32
    for _ in range(n_kv):
        key, t = r.string(), r.take("I")
        v = r.value(t)
        if key == "general.alignment":
            alignment = v
    tensors = []
    for _ in range(n_tensors):
        name, nd = r.string(), r.take("I")
        dims = [r.take("Q") for _ in range(nd)]
        t, off = r.take("I"), r.take("Q")
        tensors.append((name, t, int(np.prod(dims)), off))
    start = -(-r.at // alignment) * alignment
    return tensors, start


def nbytes(t, values):
    block, size = TYPES[t][:2]
    return values // block * size


def weights(t, values, rng):
    block, size, scales, zeros = TYPES[t]
    if t == 0:
        return np.ones(values, np.float32).tobytes()
    if t == 1:
        return (rng.standard_normal(values) * 0.02).astype(np.float16).tobytes()
    if t == 30:
        return ((rng.standard_normal(values) * 0.02).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    b = rng.integers(0, 256, (values // block, size), dtype=np.uint8)
    for o in scales:
        b[:, o : o + 2] = SCALE
    for o in zeros:
        b[:, o : o + 2] = 0
    return b.tobytes()


def main():
    mode, src, dst = sys.argv[1:4]
    if mode == "head":
        with open(src, "rb") as f:
            data = f.read(64 << 20)
        tensors, start = parse(data)
        unknown = {t for _, t, _, _ in tensors} - TYPES.keys()
        assert not unknown, f"types {unknown} not handled"
        with open(dst, "wb") as f:
            f.write(data[:start])
        print(f"{dst}: {start} bytes of header, {len(tensors)} tensors")
    elif mode == "fill":
        head = open(src, "rb").read()
        tensors, start = parse(head)
        assert start == len(head)
        rng = np.random.default_rng(0)
        with open(dst, "wb") as f:
            f.write(head)
            at = 0
            for _, t, values, off in sorted(tensors, key=lambda x: x[3]):
                f.write(bytes(off - at))
                w = weights(t, values, rng)
                assert len(w) == nbytes(t, values)
                f.write(w)
                at = off + len(w)
        print(f"{dst}: {start + at} bytes, {len(tensors)} tensors of random weights")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
