//! Dot products of the K-quants most files use (Q4_K, Q6_K) against Q8_K activations, four
//! weight rows at a time, for wasm: candle-core's simd128 ones go one row at a time through
//! a scratch buffer and i32 multiplies per eight weights, ~2.5 GB/s in V8 here.
//!
//! Each block's sum is an integer (every scale an integer too), exact in any order, so the
//! SIMD kernels equal the scalar references below to the bit: per block
//! `sum += isum·(d·d_y) − msum·(dmin·d_y)`, in block order.
//!
//! Formats (256 weights a block):
//! - Q4_K: `d`, `dmin` (f16), 12 bytes of 6-bit scales and mins for eight sub-blocks of 32,
//!   128 bytes of nibbles (bytes `32c..32c+32`: low nibbles are sub-block `2c`, high ones
//!   `2c+1`); weight = d·sc·q − dmin·m.
//! - Q6_K: 128 bytes of low nibbles `ql`, 64 bytes of high bit pairs `qh`, 16 signed scales
//!   (one per 16 weights), `d`; weight = d·sc·(q − 32).

use super::dot::scale;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8K};
use half::f16;

#[repr(C)]
pub struct Q4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

#[repr(C)]
pub struct Q6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: f16,
}

#[repr(C)]
pub struct Q8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
}

const _: () = assert!(std::mem::size_of::<Q4K>() == std::mem::size_of::<BlockQ4K>());
const _: () = assert!(std::mem::size_of::<Q6K>() == std::mem::size_of::<BlockQ6K>());
const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

/// A K-quant block: its weights as integers and its integer sums against a Q8_K block.
pub trait KBlock: Sized {
    /// Weight `i` (0..256) as `(q, scale, min)`: the weight is d·scale·q − dmin·min.
    fn weight(&self, i: usize) -> (i32, i32, i32);
    /// `(d, dmin)` in f32 (Q6_K has no dmin).
    fn scales(&self) -> (f32, f32);
}

/// Q4_K's eight 6-bit (scale, min) pairs, as ggml's `get_scale_min_k4`.
fn scale_min(q: &[u8; 12], j: usize) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl Q4K {
    /// The eight 6-bit scales and the eight mins, a byte each, unpacked as candle (and
    /// ggml) do, for the SIMD kernels: `(scales, mins)`, sub-block j in byte j.
    #[inline(always)]
    fn scales_and_mins(&self) -> (u64, u64) {
        let s = |i: usize| u32::from_le_bytes(self.scales[4 * i..4 * i + 4].try_into().unwrap());
        let (u0, u1, u2) = (s(0), s(1), s(2));
        const M1: u32 = 0x3f3f3f3f;
        const M2: u32 = 0x0f0f0f0f;
        const M3: u32 = 0x03030303;
        let high = |lo: u32, top: u32| (top & M2) | (((lo >> 6) & M3) << 4);
        let join = |a: u32, b: u32| (b as u64) << 32 | a as u64;
        (
            join(u0 & M1, high(u0, u2)),
            join(u1 & M1, high(u1, u2 >> 4)),
        )
    }
}

impl KBlock for Q4K {
    fn weight(&self, i: usize) -> (i32, i32, i32) {
        let (j, c) = (i / 32, i / 64);
        let byte = self.qs[32 * c + i % 32];
        let q = if j % 2 == 0 { byte & 0xf } else { byte >> 4 };
        let (sc, m) = scale_min(&self.scales, j);
        (q as i32, sc as i32, m as i32)
    }
    #[inline(always)]
    fn scales(&self) -> (f32, f32) {
        (scale(self.d), scale(self.dmin))
    }
}

impl KBlock for Q6K {
    fn weight(&self, i: usize) -> (i32, i32, i32) {
        let (n, g, l) = (i / 128, i % 128 / 32, i % 32);
        let byte = self.ql[64 * n + l + 32 * (g & 1)];
        let nibble = if g < 2 { byte & 0xf } else { byte >> 4 };
        let high = (self.qh[32 * n + l] >> (2 * g)) & 3;
        let q = (nibble | (high << 4)) as i32 - 32;
        (q, self.scales[i / 16] as i32, 0)
    }
    #[inline(always)]
    fn scales(&self) -> (f32, f32) {
        (scale(self.d), 0.0)
    }
}

/// The reference: per block the integer sums of scale·q·y and of min·y, then scaled and
/// summed in block order.
pub fn scalar<W: KBlock>(xs: &[W], ys: &[Q8K]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in xs.iter().zip(ys) {
        let (mut isum, mut msum) = (0i32, 0i32);
        for i in 0..256 {
            let (q, sc, m) = x.weight(i);
            isum += sc * q * y.qs[i] as i32;
            msum += m * y.qs[i] as i32;
        }
        let (d, dmin) = x.scales();
        sum += isum as f32 * (d * y.d) - msum as f32 * (dmin * y.d);
    }
    sum
}

/// Four rows of weights against `T` rows of Q8_K activations, the rows in `ahead` pulled
/// into cache on the way (as `dot::dot4`).
pub fn dot4<W: Simd, const T: usize>(xs: [&[W]; 4], ys: [&[Q8K]; T], ahead: &[W]) -> [[f32; 4]; T] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return wasm::dot4(xs, ys, ahead);
    #[cfg(target_arch = "x86_64")]
    if super::dot::has_avx2() {
        // SAFETY: the features were just detected.
        return unsafe { x86::dot4(xs, ys, ahead) };
    }
    #[allow(unreachable_code)]
    {
        let _ = ahead;
        std::array::from_fn(|t| xs.map(|x| scalar(x, ys[t])))
    }
}

/// Whether this build has SIMD kernels here (elsewhere the scalar reference stands in,
/// and the mat-mul keeps candle's dots).
pub const SIMD: bool = cfg!(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
));

pub use simd::Simd;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use wasm as simd;
#[cfg(target_arch = "x86_64")]
use x86 as simd;
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod simd {
    pub trait Simd: super::KBlock {}
    impl<T: super::KBlock> Simd for T {}
}

/// AVX2: a block's weights are unpacked once to unsigned bytes for the `T` activation
/// rows; each sub-block's products go through maddubs (pairs, in i16: below 2·63·127)
/// and then madd with its scale (i32), and each (row, activation) pair's block sum is
/// reduced to one integer, so the result is the scalar reference's to the bit.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KBlock, Q4K, Q6K, Q8K};
    use std::arch::x86_64::*;

    /// 256 weights as eight vectors of 32 unsigned bytes, each with its scales as 16 i16
    /// (one scale, or two for Q6_K's halves of 16), and what the row's integer sums need
    /// besides.
    pub struct Unpacked {
        q: [__m256i; 8],
        scales: [__m256i; 8],
        /// Q4_K: each sub-block's min twice, as i16 against the 16 `bsums`; Q6_K: the 16
        /// scales as i16, for the −32 offset.
        per16: __m256i,
    }

    pub trait Simd: KBlock {
        /// # Safety
        /// The CPU must have AVX2 (callers are `#[target_feature(enable = "avx2")]`).
        unsafe fn unpack(&self) -> Unpacked;
        /// The block's integer sums (scale·q·y, min·y) against `y`.
        ///
        /// # Safety
        /// As `unpack`.
        unsafe fn sums(u: &Unpacked, y: &Q8K) -> (i32, i32);
    }

    #[inline(always)]
    unsafe fn load(p: *const i8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }

    /// Σ over the 256 weights of scale·q·y, in eight i32 lanes.
    #[inline(always)]
    unsafe fn scaled(u: &Unpacked, y: &Q8K) -> __m256i {
        let mut acc = _mm256_setzero_si256();
        for (j, (&q, &s)) in u.q.iter().zip(&u.scales).enumerate() {
            let pairs = _mm256_maddubs_epi16(q, load(y.qs[32 * j..].as_ptr()));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, s));
        }
        acc
    }

    #[inline(always)]
    unsafe fn bsums(y: &Q8K) -> __m256i {
        _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i)
    }

    /// The lane sums of `a` and of `b`.
    #[inline(always)]
    unsafe fn hsum2(a: __m256i, b: __m256i) -> (i32, i32) {
        let h = _mm256_hadd_epi32(a, b);
        let h = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        let h = _mm_hadd_epi32(h, h);
        (_mm_cvtsi128_si32(h), _mm_extract_epi32(h, 1))
    }

    impl Simd for Q4K {
        #[inline(always)]
        unsafe fn unpack(&self) -> Unpacked {
            let (sc, mins) = self.scales_and_mins();
            let twice = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
            let per16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_set1_epi64x(mins as i64), twice));
            let nib = _mm256_set1_epi8(0x0f);
            let mut q = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let bytes = load(self.qs[32 * c..].as_ptr() as *const i8);
                q[2 * c] = _mm256_and_si256(bytes, nib);
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), nib);
            }
            let scales = std::array::from_fn(|j| _mm256_set1_epi16((sc >> (8 * j)) as u8 as i16));
            Unpacked { q, scales, per16 }
        }
        #[inline(always)]
        unsafe fn sums(u: &Unpacked, y: &Q8K) -> (i32, i32) {
            hsum2(scaled(u, y), _mm256_madd_epi16(u.per16, bsums(y)))
        }
    }

    impl Simd for Q6K {
        #[inline(always)]
        unsafe fn unpack(&self) -> Unpacked {
            let low = _mm256_set1_epi8(0x0f);
            let two = |m: i8| _mm256_set1_epi8(m);
            let mut q = [_mm256_setzero_si256(); 8];
            for n in 0..2 {
                let l0 = load(self.ql[64 * n..].as_ptr() as *const i8);
                let l1 = load(self.ql[64 * n + 32..].as_ptr() as *const i8);
                let h = load(self.qh[32 * n..].as_ptr() as *const i8);
                // Weights 128n + 32g + 0..32 plus 32, for g = 0..4: a nibble and two high bits.
                q[4 * n] = _mm256_or_si256(
                    _mm256_and_si256(l0, low),
                    _mm256_slli_epi16(_mm256_and_si256(h, two(0x03)), 4),
                );
                q[4 * n + 1] = _mm256_or_si256(
                    _mm256_and_si256(l1, low),
                    _mm256_slli_epi16(_mm256_and_si256(h, two(0x0c)), 2),
                );
                q[4 * n + 2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                    _mm256_and_si256(h, two(0x30)),
                );
                q[4 * n + 3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                    _mm256_and_si256(_mm256_srli_epi16(h, 2), two(0x30)),
                );
            }
            // Weights 32j..32j+32 take scales 2j (first 16) and 2j + 1.
            let raw = _mm_loadu_si128(self.scales.as_ptr() as *const __m128i);
            let scales = std::array::from_fn(|j| {
                let (a, b) = (2 * j as i8, 2 * j as i8 + 1);
                let pick = _mm_set_epi8(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a);
                _mm256_cvtepi8_epi16(_mm_shuffle_epi8(raw, pick))
            });
            Unpacked {
                q,
                scales,
                per16: _mm256_cvtepi8_epi16(raw),
            }
        }
        #[inline(always)]
        unsafe fn sums(u: &Unpacked, y: &Q8K) -> (i32, i32) {
            // q − 32: take 32 · Σ scale·Σy per 16 weights back.
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(u.per16, bsums(y)), 5);
            let (isum, _) = hsum2(
                _mm256_sub_epi32(scaled(u, y), offset),
                _mm256_setzero_si256(),
            );
            (isum, 0)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4<W: Simd, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8K]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        let nb = crate::cpu::dot::common_len(&xs, &ys, &[]);
        let mut acc = [[0f32; 4]; T];
        for b in 0..nb {
            crate::cpu::dot::lines_ahead(ahead, b, |p| _mm_prefetch::<_MM_HINT_T0>(p as *const i8));
            for r in 0..4 {
                let x = xs[r].get_unchecked(b);
                let (d, dmin) = x.scales();
                let u = x.unpack();
                for t in 0..T {
                    let y = ys[t].get_unchecked(b);
                    let (isum, msum) = W::sums(&u, y);
                    acc[t][r] += isum as f32 * (d * y.d) - msum as f32 * (dmin * y.d);
                }
            }
        }
        acc
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{KBlock, Q4K, Q6K, Q8K};
    use crate::cpu::dot::{at4, lanes, sum4, touch};
    use std::arch::wasm32::*;

    /// An activation block widened to 32 vectors of eight i16, once for the four rows, and
    /// its bytes (all that the relaxed-SIMD dots read).
    pub struct Wide([v128; 32], *const i8);

    /// Fills `wide` in place (returned by value, V8's code copied its 512 bytes).
    #[inline(always)]
    fn widen(y: &Q8K, wide: &mut Wide) {
        wide.1 = y.qs.as_ptr();
        #[cfg(target_feature = "relaxed-simd")]
        return;
        #[allow(unreachable_code)]
        for k in 0..16 {
            let v = load(y.qs[16 * k..].as_ptr() as *const u8);
            wide.0[2 * k] = i16x8_extend_low_i8x16(v);
            wide.0[2 * k + 1] = i16x8_extend_high_i8x16(v);
        }
    }

    /// Σ q·y over 16 weights (`q` as 16 unsigned bytes below 128) against activations
    /// `at..at+16`, added to `acc`: one `i32x4.relaxed_dot_i8x16_i7x16_add_s` (see `dot.rs`).
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn dot16_add(q: v128, y: &Wide, at: usize, acc: v128) -> v128 {
        let raw = load(y.1.wrapping_add(at) as *const u8);
        i32x4_relaxed_dot_i8x16_i7x16_add(raw, q, acc)
    }

    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn dot16(q: v128, y: &Wide, at: usize) -> v128 {
        dot16_add(q, y, at, i32x4_splat(0))
    }

    /// Σ q·y over 32 weights, `a` then `b` (each 16 unsigned bytes below 16).
    #[inline(always)]
    fn dot32(a: v128, b: v128, y: &Wide, at: usize) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        return dot16_add(b, y, at + 16, dot16(a, y, at));
        #[cfg(not(target_feature = "relaxed-simd"))]
        i32x4_add(dot16(a, y, at), dot16(b, y, at + 16))
    }

    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn dot16(q: v128, y: &Wide, at: usize) -> v128 {
        i32x4_add(
            i32x4_dot_i16x8(u16x8_extend_low_u8x16(q), y.0[at / 8]),
            i32x4_dot_i16x8(u16x8_extend_high_u8x16(q), y.0[at / 8 + 1]),
        )
    }

    #[inline(always)]
    fn load(p: *const u8) -> v128 {
        // SAFETY: callers pass pointers to 16 readable bytes inside a block.
        unsafe { v128_load(p as *const v128) }
    }

    pub trait Simd: KBlock {
        /// This block against `y`: its integer sums (scale·q·y, min·y), in the lanes of two
        /// vectors.
        fn sums(&self, y: &Q8K, wide: &Wide) -> (v128, v128);
    }

    impl Simd for Q4K {
        #[inline(always)]
        fn sums(&self, y: &Q8K, wide: &Wide) -> (v128, v128) {
            let (sc, mins) = self.scales_and_mins();
            let mins = u64x2(mins, 0);
            let mut acc = i32x4_splat(0);
            for c in 0..4 {
                let lo = load(self.qs[32 * c..].as_ptr());
                let hi = load(self.qs[32 * c + 16..].as_ptr());
                let nib = u8x16_splat(0x0f);
                for (half, (a, b)) in [
                    (v128_and(lo, nib), v128_and(hi, nib)),
                    (u8x16_shr(lo, 4), u8x16_shr(hi, 4)),
                ]
                .into_iter()
                .enumerate()
                {
                    let j = 2 * c + half;
                    let s = dot32(a, b, wide, 32 * j);
                    let scale = (sc >> (8 * j)) & 0xff;
                    acc = i32x4_add(acc, i32x4_mul(s, i32x4_splat(scale as i32)));
                }
            }
            // Σ min_j · (bsums[2j] + bsums[2j+1]): each min twice, against the 16 sums.
            let m = i8x16_swizzle(mins, i8x16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
            let b = y.bsums.as_ptr() as *const u8;
            let msum = i32x4_add(
                i32x4_dot_i16x8(u16x8_extend_low_u8x16(m), load(b)),
                i32x4_dot_i16x8(u16x8_extend_high_u8x16(m), load(b.wrapping_add(16))),
            );
            (acc, msum)
        }
    }

    impl Simd for Q6K {
        #[inline(always)]
        fn sums(&self, y: &Q8K, wide: &Wide) -> (v128, v128) {
            let mut acc = i32x4_splat(0);
            let low = u8x16_splat(0x0f);
            for n in 0..2 {
                for c in 0..2 {
                    let l0 = load(self.ql[64 * n + 16 * c..].as_ptr());
                    let l1 = load(self.ql[64 * n + 32 + 16 * c..].as_ptr());
                    let h = load(self.qh[32 * n + 16 * c..].as_ptr());
                    // Weights 128n + 32g + 16c + 0..16, for g = 0..4: a nibble and two high bits.
                    let qs = [
                        v128_or(
                            v128_and(l0, low),
                            i8x16_shl(v128_and(h, u8x16_splat(0x03)), 4),
                        ),
                        v128_or(
                            v128_and(l1, low),
                            i8x16_shl(v128_and(h, u8x16_splat(0x0c)), 2),
                        ),
                        v128_or(u8x16_shr(l0, 4), v128_and(h, u8x16_splat(0x30))),
                        v128_or(
                            u8x16_shr(l1, 4),
                            v128_and(u8x16_shr(h, 2), u8x16_splat(0x30)),
                        ),
                    ];
                    for (g, q) in qs.into_iter().enumerate() {
                        let at = 128 * n + 32 * g + 16 * c;
                        let scale = self.scales[at / 16] as i32;
                        acc = i32x4_add(acc, i32x4_mul(dot16(q, wide, at), i32x4_splat(scale)));
                    }
                }
            }
            // q − 32: take 32 · Σ scale·Σy per 16 weights back.
            let sc = load(self.scales.as_ptr() as *const u8);
            let b = y.bsums.as_ptr() as *const u8;
            let offset = i32x4_add(
                i32x4_dot_i16x8(i16x8_extend_low_i8x16(sc), load(b)),
                i32x4_dot_i16x8(i16x8_extend_high_i8x16(sc), load(b.wrapping_add(16))),
            );
            (i32x4_sub(acc, i32x4_shl(offset, 5)), i32x4_splat(0))
        }
    }

    pub fn dot4<W: Simd, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8K]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        let nb = crate::cpu::dot::common_len(&xs, &ys, &[]);
        let mut acc = [f32x4_splat(0.0); T];
        let mut wide = Wide([i16x8_splat(0); 32], std::ptr::null());
        for b in 0..nb {
            touch(ahead, b);
            // SAFETY: b < nb, the shortest of the slices.
            let [x0, x1, x2, x3] = unsafe { at4(&xs, b) };
            let (d0, d1, d2, d3) = (x0.scales(), x1.scales(), x2.scales(), x3.scales());
            let d = f32x4(d0.0, d1.0, d2.0, d3.0);
            let dmin = f32x4(d0.1, d1.1, d2.1, d3.1);
            for t in 0..T {
                // SAFETY: as above.
                let y = unsafe { ys[t].get_unchecked(b) };
                widen(y, &mut wide);
                let (s0, m0) = x0.sums(y, &wide);
                let (s1, m1) = x1.sums(y, &wide);
                let (s2, m2) = x2.sums(y, &wide);
                let (s3, m3) = x3.sums(y, &wide);
                let dy = f32x4_splat(y.d);
                let s = f32x4_mul(
                    f32x4_convert_i32x4(sum4([s0, s1, s2, s3])),
                    f32x4_mul(d, dy),
                );
                let m = f32x4_mul(
                    f32x4_convert_i32x4(sum4([m0, m1, m2, m3])),
                    f32x4_mul(dmin, dy),
                );
                acc[t] = f32x4_add(acc[t], f32x4_sub(s, m));
            }
        }
        acc.map(lanes)
    }
}

/// Checks this build's dots against the scalar reference on random blocks (to the bit in
/// wasm), including two activation rows at once. Returns what went wrong.
pub fn self_check() -> Result<(), String> {
    fn check<W: Simd, C: candle_core::quantized::k_quants::GgmlType>(
        name: &str,
        seed: &mut u64,
    ) -> Result<(), String> {
        let mut rng = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % 20001) as f32 / 10000.0 - 1.0
        };
        for nb in 1..6 {
            let w: Vec<f32> = (0..4 * nb * 256).map(|_| rng()).collect();
            let mut blocks = vec![C::zeros(); 4 * nb];
            C::from_float(&w, &mut blocks);
            let w: &[W] = super::dot::view(&blocks);
            let rows: Vec<&[W]> = w.chunks_exact(nb).collect();
            let rows = [rows[0], rows[1], rows[2], rows[3]];
            let acts: Vec<Vec<BlockQ8K>> = (0..2)
                .map(|_| {
                    let a: Vec<f32> = (0..nb * 256).map(|_| rng() * 10.0).collect();
                    let mut q =
                        vec![<BlockQ8K as candle_core::quantized::k_quants::GgmlType>::zeros(); nb];
                    super::dot::quantize_q8_k(&a, &mut q);
                    q
                })
                .collect();
            let (y0, y1): (&[Q8K], &[Q8K]) =
                (super::dot::view(&acts[0]), super::dot::view(&acts[1]));
            let [one] = dot4(rows, [y0], w);
            let two = dot4(rows, [y0, y1], &[]);
            for r in 0..4 {
                let want = [scalar(rows[r], y0), scalar(rows[r], y1)];
                let exact = cfg!(any(target_arch = "wasm32", target_arch = "x86_64"));
                let off = |a: f32, b: f32| {
                    if exact {
                        a.to_bits() != b.to_bits()
                    } else {
                        (a - b).abs() > 1e-4 * b.abs().max(1.0)
                    }
                };
                if off(one[r], want[0]) || off(two[0][r], want[0]) || off(two[1][r], want[1]) {
                    return Err(format!(
                        "{name} dot, row {r} of {nb} blocks: SIMD {} {} {} vs scalar {} {}",
                        one[r], two[0][r], two[1][r], want[0], want[1]
                    ));
                }
            }
        }
        Ok(())
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    check::<Q4K, BlockQ4K>("Q4_K", &mut seed)?;
    check::<Q6K, BlockQ6K>("Q6_K", &mut seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    /// Our scalar reference (and so `KBlock::weight`) agrees with candle's scalar dots.
    #[test]
    fn scalar_reference_matches_candle() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut rng = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 20001) as f32 / 10000.0 - 1.0
        };
        for nb in 1..5 {
            let w: Vec<f32> = (0..nb * 256).map(|_| rng()).collect();
            let a: Vec<f32> = (0..nb * 256).map(|_| rng() * 10.0).collect();
            let mut y = vec![BlockQ8K::zeros(); nb];
            super::super::dot::quantize_q8_k(&a, &mut y);
            let mut q4 = vec![BlockQ4K::zeros(); nb];
            BlockQ4K::from_float(&w, &mut q4);
            let mut q6 = vec![BlockQ6K::zeros(); nb];
            BlockQ6K::from_float(&w, &mut q6);
            let ys: &[Q8K] = super::super::dot::view(&y);
            let pairs = [
                (
                    scalar::<Q4K>(super::super::dot::view(&q4), ys),
                    BlockQ4K::vec_dot_unopt(nb * 256, &q4, &y),
                ),
                (
                    scalar::<Q6K>(super::super::dot::view(&q6), ys),
                    BlockQ6K::vec_dot_unopt(nb * 256, &q6, &y),
                ),
            ];
            for (ours, candle) in pairs {
                assert!(
                    (ours - candle).abs() <= 1e-4 * candle.abs().max(1.0),
                    "{nb} blocks: ours {ours} vs candle {candle}"
                );
            }
        }
    }

    #[test]
    fn self_check_passes() {
        self_check().unwrap();
    }
}
