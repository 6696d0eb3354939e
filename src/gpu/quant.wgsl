// Dequantizing GGUF blocks inside the shader. Weights are raw file bytes in an array<u32>;
// blocks are not 4-byte aligned (a Q5_0 block is 22 bytes), so values are read byte-wise.
// Every reader is written for the binding named W_, which the host renames per binding
// (WGSL cannot pass storage pointers to functions). Each `dq_*` fills `w` with the 32
// weights of chunk `c` (a 32-value slice of a row) of the row starting at byte `rb`.

fn u8_W_(o: u32) -> u32 { return (W_[o >> 2u] >> ((o & 3u) << 3u)) & 0xffu; }
fn u16_W_(o: u32) -> u32 { return u8_W_(o) | (u8_W_(o + 1u) << 8u); }
fn u32_W_(o: u32) -> u32 { return u16_W_(o) | (u16_W_(o + 2u) << 16u); }
fn f16_W_(o: u32) -> f32 { return unpack2x16float(u16_W_(o)).x; }
fn i8_W_(o: u32) -> f32 { return f32((i32(u8_W_(o)) << 24u) >> 24u); }
// Four bytes at any offset, for the hot loops (one or two loads instead of four).
fn w32_W_(o: u32) -> u32 {
    let i = o >> 2u;
    let s = (o & 3u) * 8u;
    if (s == 0u) { return W_[i]; }
    return (W_[i] >> s) | (W_[i + 1u] << (32u - s));
}

fn dq_f32_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = (rb >> 2u) + c * 32u;
    for (var j = 0u; j < 32u; j++) { (*w)[j] = bitcast<f32>(W_[o + j]); }
}

fn dq_f16_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 64u;
    for (var j = 0u; j < 32u; j++) { (*w)[j] = f16_W_(o + 2u * j); }
}

fn dq_bf16_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 64u;
    for (var j = 0u; j < 32u; j++) { (*w)[j] = bitcast<f32>(u16_W_(o + 2u * j) << 16u); }
}

fn dq_q4_0_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 18u;
    let d = f16_W_(o);
    for (var j = 0u; j < 16u; j++) {
        let b = u8_W_(o + 2u + j);
        (*w)[j] = (f32(b & 15u) - 8.0) * d;
        (*w)[j + 16u] = (f32(b >> 4u) - 8.0) * d;
    }
}

fn dq_q4_1_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 20u;
    let d = f16_W_(o);
    let m = f16_W_(o + 2u);
    for (var j = 0u; j < 16u; j++) {
        let b = u8_W_(o + 4u + j);
        (*w)[j] = f32(b & 15u) * d + m;
        (*w)[j + 16u] = f32(b >> 4u) * d + m;
    }
}

fn dq_q5_0_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 22u;
    let d = f16_W_(o);
    let qh = w32_W_(o + 2u);
    for (var k = 0u; k < 4u; k++) {
        let q4 = w32_W_(o + 6u + 4u * k);
        for (var e = 0u; e < 4u; e++) {
            let j = 4u * k + e;
            let b = (q4 >> (8u * e)) & 0xffu;
            let h0 = ((qh >> j) << 4u) & 16u;
            let h1 = (qh >> (j + 12u)) & 16u;
            (*w)[j] = (f32((b & 15u) | h0) - 16.0) * d;
            (*w)[j + 16u] = (f32((b >> 4u) | h1) - 16.0) * d;
        }
    }
}

fn dq_q5_1_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 24u;
    let d = f16_W_(o);
    let m = f16_W_(o + 2u);
    let qh = u32_W_(o + 4u);
    for (var j = 0u; j < 16u; j++) {
        let b = u8_W_(o + 8u + j);
        let h0 = ((qh >> j) << 4u) & 16u;
        let h1 = (qh >> (j + 12u)) & 16u;
        (*w)[j] = f32((b & 15u) | h0) * d + m;
        (*w)[j + 16u] = f32((b >> 4u) | h1) * d + m;
    }
}

fn dq_q8_0_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + c * 34u;
    let d = f16_W_(o);
    for (var k = 0u; k < 8u; k++) {
        let q4 = w32_W_(o + 2u + 4u * k);
        for (var e = 0u; e < 4u; e++) {
            (*w)[4u * k + e] = f32(bitcast<i32>(q4 << (24u - 8u * e)) >> 24u) * d;
        }
    }
}

// K-quants: super-blocks of 256 values, so chunk c is sub-block c % 8 of block c / 8.

fn dq_q8_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 292u;
    let d = bitcast<f32>(u32_W_(o));
    let q = o + 4u + (c & 7u) * 32u;
    for (var j = 0u; j < 32u; j++) { (*w)[j] = i8_W_(q + j) * d; }
}

fn dq_q2_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 84u;
    let k = c & 7u;
    let h = k >> 2u;
    let s = 2u * (k & 3u);
    let d = f16_W_(o + 80u);
    let dmin = f16_W_(o + 82u);
    for (var l = 0u; l < 32u; l++) {
        let sc = u8_W_(o + h * 8u + s + l / 16u);
        let q = (u8_W_(o + 16u + h * 32u + l) >> s) & 3u;
        (*w)[l] = d * f32(sc & 15u) * f32(q) - dmin * f32(sc >> 4u);
    }
}

fn scale6_q3_W_(o: u32, i: u32) -> f32 {
    let low = select(u8_W_(o + i - 8u) >> 4u, u8_W_(o + i) & 15u, i < 8u);
    let high = (u8_W_(o + 8u + (i & 3u)) >> (2u * (i >> 2u))) & 3u;
    return f32(low | (high << 4u)) - 32.0;
}

fn dq_q3_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 110u;
    let k = c & 7u;
    let h = k >> 2u;
    let j = k & 3u;
    let m = 1u << (h * 4u + j);
    let d = f16_W_(o + 108u);
    for (var l = 0u; l < 32u; l++) {
        let sc = scale6_q3_W_(o + 96u, h * 8u + 2u * j + l / 16u);
        let q = (u8_W_(o + 32u + h * 32u + l) >> (2u * j)) & 3u;
        let hi = select(4.0, 0.0, (u8_W_(o + l) & m) != 0u);
        (*w)[l] = d * sc * (f32(q) - hi);
    }
}

// Q4_K / Q5_K: eight 6-bit scales and mins packed in 12 bytes at `q`.
fn scale_min_k4_W_(q: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(u8_W_(q + j) & 63u), f32(u8_W_(q + j + 4u) & 63u));
    }
    let sc = (u8_W_(q + j + 4u) & 15u) | ((u8_W_(q + j - 4u) >> 6u) << 4u);
    let mn = (u8_W_(q + j + 4u) >> 4u) | ((u8_W_(q + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

fn dq_q4_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 144u;
    let k = c & 7u;
    let sm = scale_min_k4_W_(o + 4u, k);
    let d = f16_W_(o) * sm.x;
    let m = f16_W_(o + 2u) * sm.y;
    let shift = 4u * (k & 1u);
    let q = o + 16u + (k >> 1u) * 32u;
    for (var k4 = 0u; k4 < 8u; k4++) {
        let b = W_[(q >> 2u) + k4] >> shift; // q is 4-byte aligned
        for (var e = 0u; e < 4u; e++) { (*w)[4u * k4 + e] = d * f32((b >> (8u * e)) & 15u) - m; }
    }
}

fn dq_q5_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 176u;
    let k = c & 7u;
    let sm = scale_min_k4_W_(o + 4u, k);
    let d = f16_W_(o) * sm.x;
    let m = f16_W_(o + 2u) * sm.y;
    let shift = 4u * (k & 1u);
    let q = o + 48u + (k >> 1u) * 32u;
    for (var k4 = 0u; k4 < 8u; k4++) {
        let b = W_[(q >> 2u) + k4] >> shift; // q and o + 16 are 4-byte aligned
        let h = W_[((o + 16u) >> 2u) + k4] >> k;
        for (var e = 0u; e < 4u; e++) {
            let hi = ((h >> (8u * e)) & 1u) << 4u;
            (*w)[4u * k4 + e] = d * f32(((b >> (8u * e)) & 15u) | hi) - m;
        }
    }
}

fn dq_q6_k_W_(rb: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    let o = rb + (c >> 3u) * 210u;
    let k = c & 7u;
    let h = k >> 2u;
    let kk = k & 3u;
    let d = f16_W_(o + 208u);
    let ql = o + h * 64u + (kk & 1u) * 32u;
    let shift = 4u * (kk >> 1u);
    let sc0 = i8_W_(o + 192u + h * 8u + 2u * kk);
    let sc1 = i8_W_(o + 193u + h * 8u + 2u * kk);
    for (var k4 = 0u; k4 < 8u; k4++) {
        let lo4 = w32_W_(ql + 4u * k4) >> shift;
        let hi4 = w32_W_(o + 128u + h * 32u + 4u * k4) >> (2u * kk);
        let sc = select(sc0, sc1, k4 >= 4u);
        for (var e = 0u; e < 4u; e++) {
            let lo = (lo4 >> (8u * e)) & 15u;
            let hi = (hi4 >> (8u * e)) & 3u;
            (*w)[4u * k4 + e] = d * sc * (f32(lo | (hi << 4u)) - 32.0);
        }
    }
}
