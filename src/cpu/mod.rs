//! The CPU backend: candle-core's quantized dot products plus plain fused loops.
//!
//! Rounding follows llama.cpp's CPU path where it changes results: the KV cache is f16,
//! queries and attention weights are rounded to f16 before their products (ggml's f16
//! mat-mul converts its f32 operand), and GELU goes through ggml's f16 table.

pub mod dot;
pub mod kdot;
pub mod par;
pub mod quant;

use crate::backend::{AttnShape, Backend, Mix, Readback, RopeStyle, Span};
use crate::error::Result;
use crate::gguf::TensorInfo;
use crate::sampler::TopLogits;
use crate::weights::ModelBytes;
use half::f16;
use quant::QMatrix;
use std::sync::Arc;

#[derive(Default)]
pub struct Cpu;

pub struct Act {
    pub data: Vec<f32>,
    pub rows: usize,
    pub width: usize,
}

pub struct Kv {
    k: Vec<f16>,
    v: Vec<f16>,
    width: usize,
}

impl Backend for Cpu {
    const DEVICE: crate::cost::Device = crate::cost::Device::Cpu;
    type Matrix = QMatrix;
    type Vector = Vec<f32>;
    type Act = Act;
    type Kv = Kv;

    /// A decode step's mat-muls are small: the pool's threads spin through the pass
    /// instead of being woken for each one (`par::crew`).
    fn around_pass<R>(rows: usize, pass: impl FnOnce() -> R) -> R {
        if rows == 1 {
            par::crew(pass)
        } else {
            pass()
        }
    }

    fn matrix(
        &mut self,
        file: &Arc<ModelBytes>,
        t: &TensorInfo,
        bias: Option<&[f32]>,
    ) -> Result<QMatrix> {
        let bias = bias.map(<[f32]>::to_vec);
        Ok(QMatrix {
            dtype: t.dtype,
            rows: t.dims[1..].iter().product(),
            cols: t.dims[0],
            file: file.clone(),
            offset: t.offset,
            bias,
        })
    }

    fn vector(&mut self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn act(&mut self, rows: usize, width: usize) -> Act {
        Act {
            data: vec![0.0; rows * width],
            rows,
            width,
        }
    }

    fn kv_cache(&mut self, slots: usize, width: usize) -> Result<Kv> {
        Ok(Kv {
            k: vec![f16::ZERO; slots * width],
            v: vec![f16::ZERO; slots * width],
            width,
        })
    }

    fn embed(&mut self, table: &QMatrix, ids: &[u32], scale: f32, out: &mut Act) {
        for (&id, row) in ids.iter().zip(out.data.chunks_exact_mut(table.cols)) {
            table.dequantize_row(id as usize, row);
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }

    fn norm_matmul(
        &mut self,
        x: &mut Act,
        residual: Option<(&Act, Option<&Vec<f32>>)>,
        norm: &Vec<f32>,
        eps: f32,
        ws: &[&QMatrix],
        mix: Mix,
        outs: &mut [&mut Act],
    ) {
        let mut xn = self.act(x.rows, x.width);
        match residual {
            Some((h, Some(post))) => {
                rms_norm_to(&h.data, post, eps, &mut xn.data);
                x.data.iter_mut().zip(&xn.data).for_each(|(a, &b)| *a += b);
            }
            Some((h, None)) => x.data.iter_mut().zip(&h.data).for_each(|(a, &b)| *a += b),
            None => {}
        }
        rms_norm_to(&x.data, norm, eps, &mut xn.data);
        match mix {
            Mix::Each => ws
                .iter()
                .zip(outs.iter_mut())
                .for_each(|(w, out)| w.matmul(&xn.data, xn.rows, &mut out.data)),
            Mix::GeluGate | Mix::SiluGate => {
                let (gate, up) = (&mut *outs[0], &mut self.act(x.rows, ws[1].rows));
                ws[0].matmul(&xn.data, xn.rows, &mut gate.data);
                ws[1].matmul(&xn.data, xn.rows, &mut up.data);
                let pairs = gate.data.iter_mut().zip(&up.data);
                if mix == Mix::GeluGate {
                    let table = gelu_table();
                    pairs.for_each(|(g, &u)| *g = gelu_f16(table, *g) * u);
                } else {
                    pairs.for_each(|(g, &u)| *g = silu(*g) * u);
                }
            }
        }
    }

    fn matmul(&mut self, w: &QMatrix, x: &Act, out: &mut Act) {
        w.matmul(&x.data, x.rows, &mut out.data);
    }

    fn attention(
        &mut self,
        q: &mut Act,
        k: &Act,
        v: &Act,
        norms: Option<(&Vec<f32>, &Vec<f32>)>,
        eps: f32,
        rope_table: &Vec<f32>,
        kv: &mut Kv,
        pos0: usize,
        s: AttnShape,
        out: &mut Act,
    ) {
        let hd = s.head_dim;
        let mut k = Act {
            data: k.data.clone(),
            rows: k.rows,
            width: k.width,
        };
        if let Some((q_norm, k_norm)) = norms {
            rms_norm_in_place(&mut q.data, q_norm, eps);
            rms_norm_in_place(&mut k.data, k_norm, eps);
        }
        rope(q, hd, pos0, rope_table, s.rope);
        rope(&mut k, hd, pos0, rope_table, s.rope);

        let w = kv.width;
        let n = q.rows;
        let slots = kv.k.len() / w;
        for (i, (kr, vr)) in k
            .data
            .chunks_exact(w)
            .zip(v.data.chunks_exact(w))
            .enumerate()
        {
            let at = (pos0 + i) % slots * w;
            kv.k[at..at + w]
                .iter_mut()
                .zip(kr)
                .for_each(|(d, &x)| *d = f16::from_f32(x));
            kv.v[at..at + w]
                .iter_mut()
                .zip(vr)
                .for_each(|(d, &x)| *d = f16::from_f32(x));
        }

        // Query rows go in blocks, a block to a thread: each cached key and value is widened
        // from f16 once per block rather than again for every row. A block's scores take at
        // most `SCORE_BUDGET` floats.
        const SCORE_BUDGET: usize = 1 << 19;
        const VALUE_CHUNK: usize = 64;
        let kv = &*kv;
        let q = &*q;
        let group = s.n_heads / s.n_kv_heads;
        let work = n * (pos0 + n) * s.n_heads * hd * 2;
        let block = (SCORE_BUDGET / (group * (pos0 + n))).clamp(1, 16);
        let first_key = |p: usize| match s.span {
            Span::Global => 0,
            Span::Window(win) => (p + 1).saturating_sub(win),
        };
        par::each_row(&mut out.data, out.width * block, work, |b, o| {
            let rows = b * block..(b * block + block).min(n);
            // The block reads keys lo..hi; row i reads first_key(pos0 + i)..=pos0 + i.
            let (lo, hi) = (first_key(pos0 + rows.start), pos0 + rows.end);
            let span = hi - lo;
            let keys_of = |i: usize| first_key(pos0 + i) - lo..pos0 + i + 1 - lo;
            let mut scores = vec![0f32; rows.len() * group * span];
            let mut qh = vec![0f32; rows.len() * group * hd];
            let mut keys8 = vec![0f32; 8 * hd];
            let mut rows8 = vec![0f32; 8 * hd];
            let mut values = vec![0f32; VALUE_CHUNK.min(span) * hd];
            for kvh in 0..s.n_kv_heads {
                // The query heads sharing this key/value head, rounded to f16 as ggml does.
                for (r, i) in rows.clone().enumerate() {
                    let qsrc = &q.data[i * q.width + kvh * group * hd..][..group * hd];
                    qh[r * group * hd..][..group * hd]
                        .iter_mut()
                        .zip(qsrc)
                        .for_each(|(d, &x)| *d = f16::from_f32(x).to_f32());
                }
                let key = |j: usize| &kv.k[(lo + j) % slots * w + kvh * hd..][..hd];
                // Eight keys at a time, widened once, side by side (`dot8`) for the rows that
                // read all eight, one by one (`dot_in_order`, the same bits) for the others.
                for j0 in (0..span).step_by(8) {
                    let j1 = (j0 + 8).min(span);
                    for (l, j) in (j0..j1).enumerate() {
                        widen(key(j), &mut rows8[l * hd..(l + 1) * hd]);
                        for d in 0..hd {
                            keys8[d * 8 + l] = rows8[l * hd + d];
                        }
                    }
                    for (r, i) in rows.clone().enumerate() {
                        let reads = keys_of(i);
                        let (a, z) = (j0.max(reads.start), j1.min(reads.end));
                        let q_of = |g: usize| &qh[(r * group + g) * hd..][..hd];
                        let at = |g: usize| (r * group + g) * span;
                        if a == j0 && z == j0 + 8 {
                            let mut put = |g: usize, dots: [f32; 8]| {
                                for (l, dot) in dots.into_iter().enumerate() {
                                    scores[at(g) + j0 + l] = capped(dot * s.scale, s.softcap);
                                }
                            };
                            // Heads g..g + N at once: independent sums hide the adds'
                            // latency. Fours, then the rest together (Qwen's seven: 4 + 3).
                            let mut g = 0;
                            macro_rules! heads {
                                ($n:literal) => {{
                                    let qs: [&[f32]; $n] = std::array::from_fn(|h| q_of(g + h));
                                    for (h, dots) in dot8_heads(qs, &keys8).into_iter().enumerate()
                                    {
                                        put(g + h, dots);
                                    }
                                }};
                            }
                            while g + 4 <= group {
                                heads!(4);
                                g += 4;
                            }
                            match group - g {
                                3 => heads!(3),
                                2 => heads!(2),
                                1 => heads!(1),
                                _ => {}
                            }
                        } else {
                            for g in 0..group {
                                for j in a..z {
                                    let k = &rows8[(j - j0) * hd..][..hd];
                                    scores[at(g) + j] =
                                        capped(dot_in_order(q_of(g), k) * s.scale, s.softcap);
                                }
                            }
                        }
                    }
                }
                for (r, i) in rows.clone().enumerate() {
                    for g in 0..group {
                        softmax_f16(&mut scores[(r * group + g) * span..][keys_of(i)]);
                    }
                }
                for (r, _) in rows.clone().enumerate() {
                    o[r * out.width + kvh * group * hd..][..group * hd].fill(0.0);
                }
                // Values a chunk of keys at a time, widened once into `values`; each output
                // sums its keys in order (`add_weighted`), as one row at a time did.
                for j0 in (0..span).step_by(VALUE_CHUNK) {
                    let j1 = (j0 + VALUE_CHUNK).min(span);
                    for j in j0..j1 {
                        let v = &kv.v[(lo + j) % slots * w + kvh * hd..][..hd];
                        widen(v, &mut values[(j - j0) * hd..][..hd]);
                    }
                    for (r, i) in rows.clone().enumerate() {
                        let reads = keys_of(i);
                        let (a, z) = (j0.max(reads.start), j1.min(reads.end));
                        if a >= z {
                            continue;
                        }
                        for g in 0..group {
                            add_weighted(
                                &mut o[r * out.width + (kvh * group + g) * hd..][..hd],
                                &scores[(r * group + g) * span..][a..z],
                                &values[(a - j0) * hd..(z - j0) * hd],
                            );
                        }
                    }
                }
            }
        });
    }

    fn top_k(&mut self, x: &Act, k: usize, temp: f32, out: &mut Act) {
        out.data = TopLogits::of(&x.data, k, temp).to_row(k, x.width);
    }

    fn softcap(&mut self, x: &mut Act, cap: f32) {
        x.data.iter_mut().for_each(|v| *v = capped(*v, cap));
    }

    fn last_row(&mut self, x: &Act) -> Act {
        Act {
            data: x.data[(x.rows - 1) * x.width..].to_vec(),
            rows: 1,
            width: x.width,
        }
    }

    fn read(&mut self, x: &Act) -> Readback {
        Box::pin(std::future::ready(Ok(x.data.clone())))
    }
}

/// RMS norm over consecutive groups of `w.len()` values (a row, or one head), times `w`.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for g in x.chunks_exact_mut(w.len()) {
        let scale = rms_scale(g, eps);
        g.iter_mut().zip(w).for_each(|(v, &s)| *v = *v * scale * s);
    }
}

/// `out = rms_norm(x) · w`, leaving `x` as it is.
fn rms_norm_to(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (g, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let scale = rms_scale(g, eps);
        o.iter_mut()
            .zip(g.iter().zip(w))
            .for_each(|(o, (&v, &s))| *o = v * scale * s);
    }
}

/// Rotary embedding of every head in `x` at positions `pos0..pos0+rows`.
fn rope(x: &mut Act, head_dim: usize, pos0: usize, table: &[f32], style: RopeStyle) {
    let half = head_dim / 2;
    for (i, row) in x.data.chunks_exact_mut(x.width).enumerate() {
        let t = &table[(pos0 + i) * head_dim..(pos0 + i + 1) * head_dim];
        let (cos, sin) = t.split_at(half);
        for head in row.chunks_exact_mut(head_dim) {
            for j in 0..half {
                let (a, b) = match style {
                    RopeStyle::Halves => (j, j + half),
                    RopeStyle::Adjacent => (2 * j, 2 * j + 1),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[j] - x1 * sin[j];
                head[b] = x0 * sin[j] + x1 * cos[j];
            }
        }
    }
}

/// `cap · tanh(x / cap)`, or `x` when `cap` is 0.
fn capped(x: f32, cap: f32) -> f32 {
    if cap > 0.0 {
        cap * (x / cap).tanh()
    } else {
        x
    }
}

/// Softmax in place, summed in f64 as ggml does, the weights then rounded to f16 (ggml's
/// f16 mat-mul converts them before multiplying with V). The exponentials vectorise, as
/// ggml's do (libm's `expf`, a call per score, was 4 % of a long Qwen prefill).
fn softmax_f16(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut()
        .for_each(|v| *v = crate::fastmath::exp_nonpositive(*v - max));
    let inv = (1.0 / crate::fastmath::sum_f64(x, |v| v)) as f32;
    x.iter_mut()
        .for_each(|v| *v = f16::from_f32(*v * inv).to_f32());
}

/// q·k for eight keys side by side (`kt[d * 8 + l]` is key l's dimension d), for `N`
/// query heads: each key's sum runs over the head in order, as `dot_in_order` sums one
/// key, so the bits are the same, while the eight lanes vectorise and the heads' sums,
/// independent chains, overlap their adds. A one-key loop's sequential f32 sum cannot be
/// vectorised: it was 85 % of attention's time, and attention 18 % of a native prefill.
fn dot8_heads<const N: usize>(q: [&[f32]; N], kt: &[f32]) -> [[f32; 8]; N] {
    let mut acc = [[0f32; 8]; N];
    let hd = q.iter().map(|q| q.len()).min().unwrap_or(0);
    for (d, k) in kt.chunks_exact(8).take(hd).enumerate() {
        for h in 0..N {
            let qd = q[h][d];
            for l in 0..8 {
                acc[h][l] += qd * k[l];
            }
        }
    }
    acc
}

/// `o[c] += Σ_j p[j] · v[j][c]`, the keys `j` in order for every `c` (`v` holds
/// `p.len()` rows of `o.len()`): 64 outputs at a time, so each key's row is read once
/// per 64 and the 64 sums (independent chains) stay in registers.
fn add_weighted(o: &mut [f32], p: &[f32], v: &[f32]) {
    fn part<const C: usize>(o: &mut [f32], p: &[f32], v: &[f32], hd: usize, c: usize) {
        let mut acc: [f32; C] = o[c..c + C].try_into().unwrap();
        for (&pj, row) in p.iter().zip(v.chunks_exact(hd)) {
            let row = &row[c..c + C];
            for l in 0..C {
                acc[l] += pj * row[l];
            }
        }
        o[c..c + C].copy_from_slice(&acc);
    }
    let hd = o.len();
    let mut c = 0;
    while c + 64 <= hd {
        part::<64>(o, p, v, hd, c);
        c += 64;
    }
    while c + 8 <= hd {
        part::<8>(o, p, v, hd, c);
        c += 8;
    }
    while c < hd {
        part::<1>(o, p, v, hd, c);
        c += 1;
    }
}

/// q·k of one key, summed in order from 0.
fn dot_in_order(q: &[f32], k: &[f32]) -> f32 {
    q.iter().zip(k).fold(0.0, |s, (a, b)| s + a * b)
}

/// f16 cache row → f32 (with the branch-free conversion in wasm, where there is no F16C).
fn widen(src: &[f16], dst: &mut [f32]) {
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, &h)| *d = dot::scale(h));
}

/// 1/√(mean(x²) + ε), summed in f64 as ggml does.
fn rms_scale(g: &[f32], eps: f32) -> f32 {
    let sum: f64 = g.iter().map(|&v| (v * v) as f64).sum();
    1.0 / ((sum / g.len() as f64) as f32 + eps).sqrt()
}

/// GELU (tanh form) as ggml computes it on the CPU: input and output rounded to f16, read
/// from `table` (`gelu_table`, as ggml's `ggml_table_gelu_f16`; a tanh per value was ~5 %
/// of a prefill).
pub fn gelu_f16(table: &[f16], x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        dot::scale(table[f16::from_f32(x).to_bits() as usize])
    }
}

/// GELU of every f16 input, rounded to f16: built once, on first use.
pub fn gelu_table() -> &'static [f16] {
    static TABLE: std::sync::OnceLock<Vec<f16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())))
            .collect()
    })
}

/// SiLU as ggml computes it on the CPU, in f32.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    #[test]
    fn eight_keys_side_by_side_give_each_keys_sum_to_the_bit() {
        let (hd, seed) = (256, 0x9e37_79b9u32);
        let r = |i: usize| ((seed.wrapping_mul(i as u32 + 1) >> 9) as f32 / 8e6) - 1.0;
        let q: Vec<f32> = (0..hd).map(r).collect();
        let keys: Vec<Vec<f32>> = (0..8)
            .map(|l| (0..hd).map(|d| r(1000 + l * hd + d)).collect())
            .collect();
        let kt: Vec<f32> = (0..hd * 8).map(|i| keys[i % 8][i / 8]).collect();
        let q2: Vec<f32> = q.iter().map(|x| 0.5 - x).collect();
        let [one] = super::dot8_heads([&q], &kt);
        let four = super::dot8_heads([&q2, &q, &q2, &q], &kt);
        let three = super::dot8_heads([&q2, &q2, &q], &kt); // Qwen's groups of 7: 4 + 3
        for l in 0..8 {
            assert_eq!(three[2][l], one[l], "key {l}, last of three heads");
            let want = super::dot_in_order(&q, &keys[l]).to_bits();
            assert_eq!(one[l].to_bits(), want, "key {l}");
            assert_eq!(four[1][l].to_bits(), want, "key {l}, second of four heads");
            let want2 = super::dot_in_order(&q2, &keys[l]).to_bits();
            assert_eq!(four[2][l].to_bits(), want2, "key {l}, third of four heads");
        }
    }

    /// Values added a chunk of keys at a time sum each output over the keys in order, as
    /// one key at a time does, for a head size with all three parts (64, 8 and 1 wide).
    #[test]
    fn weighted_values_sum_in_key_order() {
        let (hd, keys) = (64 + 16 + 3, 37);
        let r = |i: usize| ((0x9e37_79b9u32.wrapping_mul(i as u32 + 7) >> 9) as f32 / 8e6) - 1.0;
        let p: Vec<f32> = (0..keys).map(|j| r(j) * 0.1).collect();
        let v: Vec<f32> = (0..keys * hd).map(|i| r(500 + i)).collect();
        let mut want = vec![0.25f32; hd];
        for (j, &pj) in p.iter().enumerate() {
            for c in 0..hd {
                want[c] += pj * v[j * hd + c];
            }
        }
        let mut got = vec![0.25f32; hd];
        super::add_weighted(&mut got[..], &p[..20], &v[..20 * hd]);
        super::add_weighted(&mut got[..], &p[20..], &v[20 * hd..]);
        for c in 0..hd {
            assert_eq!(got[c].to_bits(), want[c].to_bits(), "output {c}");
        }
    }
}
