//! Q5_0 × Q8_0 dot product with SIMD: AVX2 natively, simd128 in wasm.
//!
//! candle-core has only a scalar Q5_0 dot, and Q5_0 holds most of Gemma 3 270M's matrices.
//! A Q5_0 block is 32 weights: `d` (f16), the 32 fifth bits in `qh`, and 16 bytes of
//! nibbles (low nibbles are weights 0..16, high nibbles 16..32); weight = d·(q − 16).
//! These follow ggml's kernels for the same formats.

use candle_core::quantized::k_quants::{BlockQ5_0, BlockQ8_0, GgmlType};
use half::f16;

#[repr(C)]
pub(crate) struct Q5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
pub(crate) struct Q8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(std::mem::size_of::<Q5_0>() == std::mem::size_of::<BlockQ5_0>());
const _: () = assert!(std::mem::size_of::<Q8_0>() == std::mem::size_of::<BlockQ8_0>());

fn view<A, B>(xs: &[A]) -> &[B] {
    // SAFETY: same size and layout (checked above), plain data.
    unsafe { std::slice::from_raw_parts(xs.as_ptr() as *const B, xs.len()) }
}

/// The dot product used for Q5_0 matrices.
pub fn vec_dot(n: usize, xs: &[BlockQ5_0], ys: &[BlockQ8_0]) -> f32 {
    let nb = n / 32;
    let (xs, ys): (&[Q5_0], &[Q8_0]) = (&view(xs)[..nb], &view(ys)[..nb]);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected.
        return unsafe { avx2(xs, ys) };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128(xs, ys);
    #[allow(unreachable_code)]
    scalar(xs, ys)
}

/// Quantizes activations to Q8_0 as ggml's x86 code does (scale 127/amax, ties to even),
/// which differs from candle's in the last bit often enough to matter on small models.
pub fn quantize_q8_0(xs: &[f32], ys: &mut [BlockQ8_0]) {
    let ys: &mut [Q8_0] = unsafe { std::slice::from_raw_parts_mut(ys.as_mut_ptr() as *mut Q8_0, ys.len()) };
    for (x, y) in xs.chunks_exact(32).zip(ys) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        y.d = f16::from_f32(amax / 127.0);
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

#[repr(C)]
struct Q8K {
    d: f32,
    qs: [i8; 256],
    bsums: [i16; 16],
}
const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<candle_core::quantized::k_quants::BlockQ8K>());

/// Quantizes activations to Q8_K as ggml does (scale −127/max, ties to even).
pub fn quantize_q8_k(xs: &[f32], ys: &mut [candle_core::quantized::k_quants::BlockQ8K]) {
    let ys: &mut [Q8K] = unsafe { std::slice::from_raw_parts_mut(ys.as_mut_ptr() as *mut Q8K, ys.len()) };
    for (x, y) in xs.chunks_exact(256).zip(ys) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            y.d = 0.0;
            y.qs.fill(0);
            y.bsums.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
        }
        for (s, q) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i16).sum();
        }
        y.d = 1.0 / iscale;
    }
}

/// candle's reference scalar dot, the yardstick for the tests.
pub fn vec_dot_scalar(n: usize, xs: &[BlockQ5_0], ys: &[BlockQ8_0]) -> f32 {
    BlockQ5_0::vec_dot_unopt(n, xs, ys)
}

#[allow(dead_code)]
fn scalar(xs: &[Q5_0], ys: &[Q8_0]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let qh = u32::from_le_bytes(x.qh);
        let mut s = 0i32;
        for j in 0..16 {
            let lo = ((x.qs[j] & 0x0f) as i32 | (((qh >> j) & 1) << 4) as i32) - 16;
            let hi = ((x.qs[j] >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32) - 16;
            s += lo * y.qs[j] as i32 + hi * y.qs[j + 16] as i32;
        }
        sum += s as f32 * x.d.to_f32() * y.d.to_f32();
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(xs: &[Q5_0], ys: &[Q8_0]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    let low_mask = _mm256_set1_epi8(0x0f);
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bit_mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    let ones = _mm256_set1_epi16(1);
    for (x, y) in xs.iter().zip(ys) {
        let d = _mm256_set1_ps(x.d.to_f32() * y.d.to_f32());
        // 32 nibbles → 32 bytes: low nibbles in the first lane, high nibbles in the second.
        let raw = _mm_loadu_si128(x.qs.as_ptr() as *const __m128i);
        let nib = _mm256_and_si256(low_mask, _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw));
        // Byte j is 0xFF when bit j of qh is set; where it is clear, OR in 0xF0 (that is, −16).
        let bits = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(x.qh)), shuf);
        let set = _mm256_cmpeq_epi8(_mm256_or_si256(bits, bit_mask), _mm256_set1_epi64x(-1));
        let qx = _mm256_or_si256(nib, _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)));
        let qy = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        // Signed × signed bytes through maddubs: move x's sign onto y.
        let ax = _mm256_sign_epi8(qx, qx);
        let sy = _mm256_sign_epi8(qy, qx);
        let pairs = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(pairs), acc);
    }
    let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn simd128(xs: &[Q5_0], ys: &[Q8_0]) -> f32 {
    use std::arch::wasm32::*;
    // For each byte value of qh, eight bytes that are 0x10 where the bit is clear: subtracting
    // them turns the nibble into q − 16 without a separate "or the fifth bit" step.
    const fn table() -> [u64; 256] {
        let mut t = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut b = 0;
            while b < 8 {
                if (i >> b) & 1 == 0 {
                    t[i] |= 0x10u64 << (8 * b);
                }
                b += 1;
            }
            i += 1;
        }
        t
    }
    static CLEAR_BITS: [u64; 256] = table();
    let low = u8x16_splat(0x0f);
    let mut acc = f32x4_splat(0.0);
    for (x, y) in xs.iter().zip(ys) {
        let qh = u32::from_le_bytes(x.qh) as usize;
        let hl = u64x2(CLEAR_BITS[qh & 0xff], CLEAR_BITS[(qh >> 8) & 0xff]);
        let hh = u64x2(CLEAR_BITS[(qh >> 16) & 0xff], CLEAR_BITS[qh >> 24]);
        // SAFETY: 16 and 32 bytes are in bounds of the blocks.
        let (v, yl, yh) = unsafe {
            (
                v128_load(x.qs.as_ptr() as *const v128),
                v128_load(y.qs.as_ptr() as *const v128),
                v128_load(y.qs.as_ptr().add(16) as *const v128),
            )
        };
        let xl = i8x16_sub(v128_and(v, low), hl);
        let xh = i8x16_sub(u8x16_shr(v, 4), hh);
        let dot = |a: v128, b: v128| {
            i32x4_add(
                i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b)),
                i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b)),
            )
        };
        let s = i32x4_add(dot(xl, yl), dot(xh, yh));
        acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(s), f32x4_splat(x.d.to_f32() * y.d.to_f32())));
    }
    f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<1>(acc) + f32x4_extract_lane::<2>(acc) + f32x4_extract_lane::<3>(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random Q5_0 rows against random Q8_0 activations: SIMD equals candle's scalar dot.
    #[test]
    fn simd_matches_scalar_on_random_blocks() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for trial in 0..200 {
            let nb = 1 + (trial % 40);
            let w: Vec<f32> = (0..nb * 32).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
            let a: Vec<f32> = (0..nb * 32).map(|_| (next() % 2001) as f32 / 100.0 - 10.0).collect();
            let mut xq = vec![BlockQ5_0::zeros(); nb];
            let mut yq = vec![BlockQ8_0::zeros(); nb];
            BlockQ5_0::from_float(&w, &mut xq);
            BlockQ8_0::from_float(&a, &mut yq);
            let fast = vec_dot(nb * 32, &xq, &yq);
            let slow = vec_dot_scalar(nb * 32, &xq, &yq);
            // Both sum per-block terms in f32, in different orders: allow for reassociation.
            let magnitude: f32 = xq.iter().zip(&yq).map(|(x, y)| vec_dot_scalar(32, std::slice::from_ref(x), std::slice::from_ref(y)).abs()).sum();
            let tol = 1e-6 * magnitude.max(1.0);
            assert!((fast - slow).abs() <= tol, "trial {trial}: simd {fast} vs scalar {slow}");
        }
    }
}
