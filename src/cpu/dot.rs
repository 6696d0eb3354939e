//! Our own dot products for the weights whose activations are Q8_0 (Q5_0 and Q8_0 — most
//! of Gemma 3 270M, tied output projection included), with AVX2 natively and simd128 in
//! wasm, and the activation quantizers rounded exactly as ggml rounds them.
//!
//! candle-core has no SIMD Q5_0 dot at all, and its Q8_0 dot converts both f16 scales in
//! every block; in wasm that is a software conversion, 10 million per token for the output
//! projection alone. Here the activation scales are converted once per matmul.
//!
//! Formats: a Q8_0 block is `d` (f16) and 32 signed bytes, weight = d·q. A Q5_0 block is
//! `d`, the 32 fifth bits in `qh` and 16 bytes of nibbles (low nibbles are weights 0..16,
//! high nibbles 16..32), weight = d·(q − 16).

use candle_core::quantized::k_quants::{BlockQ5_0, BlockQ8K, BlockQ8_0};
use half::f16;

#[repr(C)]
pub struct Q5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

#[repr(C)]
pub struct Q8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

#[repr(C)]
struct Q8K {
    d: f32,
    qs: [i8; 256],
    bsums: [i16; 16],
}

/// A block of 32 weights dotted against Q8_0 activations: its scale, and (per SIMD
/// flavour, in `x86` and `wasm`) its weights unpacked to 32 signed bytes.
pub trait Block: Sized {
    fn scale(&self) -> f16;
    /// Weight `j` (0..32) as a signed integer, for the scalar reference.
    fn weight(&self, j: usize) -> i32;
}

impl Block for Q8_0 {
    #[inline(always)]
    fn scale(&self) -> f16 {
        self.d
    }
    fn weight(&self, j: usize) -> i32 {
        self.qs[j] as i32
    }
}

impl Block for Q5_0 {
    #[inline(always)]
    fn scale(&self) -> f16 {
        self.d
    }
    fn weight(&self, j: usize) -> i32 {
        let qh = u32::from_le_bytes(self.qh);
        let nibble = if j < 16 {
            self.qs[j] & 0x0f
        } else {
            self.qs[j - 16] >> 4
        };
        (nibble as i32 | (((qh >> j) & 1) << 4) as i32) - 16
    }
}

const _: () = assert!(std::mem::size_of::<Q5_0>() == std::mem::size_of::<BlockQ5_0>());
const _: () = assert!(std::mem::size_of::<Q8_0>() == std::mem::size_of::<BlockQ8_0>());
const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

/// Views candle's block slices as ours (same repr(C) layout, checked above).
pub fn view<A, B>(xs: &[A]) -> &[B] {
    assert_eq!(std::mem::size_of::<A>(), std::mem::size_of::<B>());
    // SAFETY: same size and layout, plain data valid for any bit pattern.
    unsafe { std::slice::from_raw_parts(xs.as_ptr() as *const B, xs.len()) }
}

fn view_mut<A, B>(xs: &mut [A]) -> &mut [B] {
    assert_eq!(std::mem::size_of::<A>(), std::mem::size_of::<B>());
    // SAFETY: as `view`, and we hold the only reference.
    unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr() as *mut B, xs.len()) }
}

/// f16 → f32 for block scales and the KV cache. In wasm there is no hardware conversion:
/// rebias the exponent by one multiply (exact for every finite value; inf/NaN, which
/// scales never are, become large finite numbers).
#[inline(always)]
pub fn scale(h: f16) -> f32 {
    #[cfg(target_arch = "wasm32")]
    return f16_to_f32_finite(h);
    #[cfg(not(target_arch = "wasm32"))]
    h.to_f32()
}

#[inline(always)]
pub fn f16_to_f32_finite(h: f16) -> f32 {
    let h = h.to_bits() as u32;
    let mag = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000); // × 2^112
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

/// Activations quantized to Q8_0, with their scales already in f32.
pub struct Q8Act {
    pub blocks: Vec<BlockQ8_0>,
    pub scales: Vec<f32>,
}

/// Quantizes rows of activations to Q8_0 as ggml's x86 code does (scale 127/amax, ties to
/// even), which differs from candle's in the last bit often enough to matter.
pub fn quantize_q8_0(xs: &[f32]) -> Q8Act {
    let n = xs.len() / 32;
    let mut blocks: Vec<BlockQ8_0> = (0..n)
        .map(|_| <BlockQ8_0 as candle_core::quantized::k_quants::GgmlType>::zeros())
        .collect();
    let mut scales = Vec::with_capacity(n);
    for (x, y) in xs.chunks_exact(32).zip(view_mut::<_, Q8_0>(&mut blocks)) {
        let amax = abs_max(x);
        y.d = f16::from_f32(amax / 127.0);
        scales.push(y.d.to_f32());
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
    Q8Act { blocks, scales }
}

/// The largest |v|, as integers: the sign bit cleared, a non-negative float's bits order
/// as the float does, and an integer maximum vectorises where `f32::max` (NaN-aware) does
/// not. (A NaN activation, which would win here, spoils the row either way.)
fn abs_max(x: &[f32]) -> f32 {
    f32::from_bits(
        x.iter()
            .map(|v| v.to_bits() & 0x7fff_ffff)
            .max()
            .unwrap_or(0),
    )
}

/// Quantizes activations to Q8_K as ggml does (scale −127/max, ties to even).
pub fn quantize_q8_k(xs: &[f32], ys: &mut [BlockQ8K]) {
    for (x, y) in xs.chunks_exact(256).zip(view_mut::<_, Q8K>(ys)) {
        // The first value of the largest magnitude, with its sign.
        let amax = abs_max(x);
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
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

#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

/// AVX-VNNI (Alder Lake, Sapphire Rapids and later; Zen 5).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_vnni() -> bool {
    has_avx2() && std::is_x86_feature_detected!("avxvnni")
}

/// AVX-512 with VNNI (Ice Lake, Sapphire Rapids and later; Zen 4).
#[cfg(target_arch = "x86_64")]
fn has_avx512_vnni() -> bool {
    has_avx2()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
}

/// Σ over blocks of d_x·d_y·(x·y) for four rows of weights against `T` rows of Q8_0
/// activations (`ys[t]` with scales `yd[t]`): each weight block unpacked once for all `T`,
/// each activation block loaded once for the four rows. Each (row, activation) pair sums
/// in its own accumulator, in block order, so its result depends on neither its
/// companions nor `T`.
///
/// `ahead` is the weights the caller works on next (the four rows after the next four):
/// they are pulled into cache a slice per block step, so that memory works while the
/// kernel computes. The hardware prefetcher alone does not keep up with four interleaved
/// rows: on the 178 MB output projection this made native x86 ~1.6× faster (prefetch
/// instructions) and wasm ~3× (plain loads; wasm has no prefetch).
pub fn dot4<W: Unpack, const T: usize>(
    xs: [&[W]; 4],
    ys: [&[Q8_0]; T],
    yd: [&[f32]; T],
    ahead: &[W],
) -> [[f32; 4]; T] {
    #[cfg(target_arch = "x86_64")]
    if has_avx512_vnni() {
        // SAFETY: the features were just detected.
        return unsafe { x86::dot4_512(xs, ys, yd, ahead) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_vnni() {
        // SAFETY: as above.
        return unsafe { x86::dot4_vnni(xs, ys, yd, ahead) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as above.
        return unsafe { x86::dot4(xs, ys, yd, ahead) };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return wasm::dot4(xs, ys, yd, ahead);
    #[allow(unreachable_code)]
    std::array::from_fn(|t| xs.map(|x| scalar(x, ys[t], yd[t])))
}

/// The blocks a kernel can walk: the shortest of its weight rows, activation rows and
/// activation scales.
pub(super) fn common_len<W, Y, const T: usize>(
    xs: &[&[W]; 4],
    ys: &[&[Y]; T],
    yd: &[&[f32]],
) -> usize {
    let lens = xs.iter().map(|x| x.len()).chain(ys.iter().map(|y| y.len()));
    lens.chain(yd.iter().map(|d| d.len())).min().unwrap_or(0)
}

/// Calls `at` with one address in each 64-byte cache line of block step `b`'s share of
/// `ahead` (the same fraction of it as `b` is of the row), so every line is reached at
/// least once over a row.
#[inline(always)]
pub(super) fn lines_ahead<W>(ahead: &[W], b: usize, mut at: impl FnMut(*const u8)) {
    let share = 4 * std::mem::size_of::<W>();
    let bytes = std::mem::size_of_val(ahead);
    let mut off = b * share;
    while off < ((b + 1) * share).min(bytes) {
        at((ahead.as_ptr() as *const u8).wrapping_add(off));
        off += 64;
    }
}

/// The reference: integer dot per block, scaled, summed in order.
pub fn scalar<W: Block>(xs: &[W], ys: &[Q8_0], yd: &[f32]) -> f32 {
    let mut sum = 0f32;
    for ((x, y), &d) in xs.iter().zip(ys).zip(yd) {
        let s: i32 = (0..32).map(|j| x.weight(j) * y.qs[j] as i32).sum();
        sum += s as f32 * scale(x.scale()) * d;
    }
    sum
}

// What `kdot.rs` shares.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use wasm::{at4, lanes, sum4, touch};

// The SIMD flavour of this build: each says how a block unpacks to 32 signed bytes.
pub use simd::Unpack;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use wasm as simd;
#[cfg(target_arch = "x86_64")]
use x86 as simd;
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod simd {
    pub trait Unpack: super::Block {}
    impl<T: super::Block> Unpack for T {}
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Block, Q5_0, Q8_0};
    use std::arch::x86_64::*;

    pub trait Unpack: Block {
        /// What `unsigned_bytes` adds to every weight.
        const OFFSET: u8;
        /// The 32 weights as signed bytes.
        ///
        /// # Safety
        /// The CPU must have AVX2 (callers are `#[target_feature(enable = "avx2")]`).
        unsafe fn bytes(&self) -> __m256i;
        /// The 32 weights plus `OFFSET`, as unsigned bytes (VNNI multiplies unsigned by
        /// signed bytes).
        ///
        /// # Safety
        /// As `bytes`.
        unsafe fn unsigned_bytes(&self) -> __m256i;
        /// Blocks `a` and `b` as `unsigned_bytes` in one vector, in `pair`'s order.
        ///
        /// # Safety
        /// The CPU must have AVX-512 F and BW.
        unsafe fn unsigned_pair(a: &Self, b: &Self) -> __m512i;
    }

    /// The 64 bytes of two blocks of 32, `a` and `b`, ordered as weights 0..16 of `a`, of
    /// `b`, then 16..32 of `a`, of `b` (Q5_0's nibbles fall so); i32 lanes 0..4 and 8..12
    /// then sum `a`'s products, 4..8 and 12..16 `b`'s.
    #[inline(always)]
    unsafe fn pair(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
        let (a, b) = (
            _mm512_castsi256_si512(_mm256_loadu_si256(a.as_ptr() as *const __m256i)),
            _mm512_castsi256_si512(_mm256_loadu_si256(b.as_ptr() as *const __m256i)),
        );
        _mm512_permutex2var_epi64(a, _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), b)
    }

    impl Unpack for Q8_0 {
        const OFFSET: u8 = 128;
        #[inline(always)]
        unsafe fn bytes(&self) -> __m256i {
            _mm256_loadu_si256(self.qs.as_ptr() as *const __m256i)
        }
        #[inline(always)]
        unsafe fn unsigned_bytes(&self) -> __m256i {
            // q + 128 is q with its top bit flipped.
            _mm256_xor_si256(self.bytes(), _mm256_set1_epi8(-128))
        }
        #[inline(always)]
        unsafe fn unsigned_pair(a: &Self, b: &Self) -> __m512i {
            _mm512_xor_si512(pair(&a.qs, &b.qs), _mm512_set1_epi8(-128))
        }
    }

    impl Q5_0 {
        /// The nibbles as 32 bytes (low nibbles first, then high ones) and a mask that is
        /// 0xFF in byte j where bit j of `qh` is set.
        #[inline(always)]
        unsafe fn nibbles_and_fifth_bits(&self) -> (__m256i, __m256i) {
            let raw = _mm_loadu_si128(self.qs.as_ptr() as *const __m128i);
            let nib = _mm256_and_si256(
                _mm256_set1_epi8(0x0f),
                _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw),
            );
            let shuf = _mm256_set_epi64x(
                0x0303030303030303,
                0x0202020202020202,
                0x0101010101010101,
                0,
            );
            let bits = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(self.qh)), shuf);
            let set = _mm256_cmpeq_epi8(
                _mm256_or_si256(bits, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                _mm256_set1_epi64x(-1),
            );
            (nib, set)
        }
    }

    impl Unpack for Q5_0 {
        const OFFSET: u8 = 16;
        #[inline(always)]
        unsafe fn bytes(&self) -> __m256i {
            // Where the fifth bit is clear, OR in 0xF0 (that is, −16).
            let (nib, set) = self.nibbles_and_fifth_bits();
            _mm256_or_si256(
                nib,
                _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)),
            )
        }
        #[inline(always)]
        unsafe fn unsigned_bytes(&self) -> __m256i {
            // q + 16 is the stored five bits.
            let (nib, set) = self.nibbles_and_fifth_bits();
            _mm256_or_si256(nib, _mm256_and_si256(set, _mm256_set1_epi8(0x10)))
        }
        #[inline(always)]
        unsafe fn unsigned_pair(a: &Self, b: &Self) -> __m512i {
            // Low nibbles of a, of b, then high nibbles of a, of b: `pair`'s order.
            let qs = _mm256_set_m128i(
                _mm_loadu_si128(b.qs.as_ptr() as *const __m128i),
                _mm_loadu_si128(a.qs.as_ptr() as *const __m128i),
            );
            let both = _mm512_inserti64x4(_mm512_castsi256_si512(qs), _mm256_srli_epi16(qs, 4), 1);
            let nib = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
            // The fifth bits in the same order, as a byte mask.
            let (ha, hb) = (
                u32::from_le_bytes(a.qh) as u64,
                u32::from_le_bytes(b.qh) as u64,
            );
            let bits = (ha & 0xffff) | (hb & 0xffff) << 16 | (ha >> 16) << 32 | (hb >> 16) << 48;
            _mm512_or_si512(nib, _mm512_maskz_mov_epi8(bits, _mm512_set1_epi8(0x10)))
        }
    }

    /// How a 256-bit kernel multiplies 32 weights by 32 activations and sums the products
    /// in fours to i32 lanes: the activation side prepared once per block for the four rows,
    /// the weight side once per row.
    trait Multiply {
        type Y: Copy;
        unsafe fn activations<W: Unpack>(y: __m256i) -> Self::Y;
        unsafe fn weights<W: Unpack>(x: &W) -> __m256i;
        unsafe fn sums(x: __m256i, y: Self::Y) -> __m256i;
    }

    /// AVX2's maddubs, which wants one unsigned side: x's sign moves onto y.
    struct Maddubs;

    impl Multiply for Maddubs {
        type Y = __m256i;
        #[inline(always)]
        unsafe fn activations<W: Unpack>(y: __m256i) -> __m256i {
            y
        }
        #[inline(always)]
        unsafe fn weights<W: Unpack>(x: &W) -> __m256i {
            x.bytes()
        }
        #[inline(always)]
        unsafe fn sums(x: __m256i, y: __m256i) -> __m256i {
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
            _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
        }
    }

    /// VNNI's unsigned × signed byte dot (`vpdpbusd`): each lane sums the same four products
    /// as `Maddubs`, exactly, in half the instructions. The weights go in plus `OFFSET`
    /// (unsigned), and each sum starts from −OFFSET·Σy over its four activation bytes.
    struct Vnni;

    impl Multiply for Vnni {
        /// The activations, and the −OFFSET·Σy each lane starts from.
        type Y = (__m256i, __m256i);
        #[inline(always)]
        unsafe fn activations<W: Unpack>(y: __m256i) -> (__m256i, __m256i) {
            let offset = _mm256_set1_epi8(W::OFFSET as i8);
            let sums = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), offset, y);
            (y, _mm256_sub_epi32(_mm256_setzero_si256(), sums))
        }
        #[inline(always)]
        unsafe fn weights<W: Unpack>(x: &W) -> __m256i {
            x.unsigned_bytes()
        }
        #[inline(always)]
        unsafe fn sums(x: __m256i, (y, start): (__m256i, __m256i)) -> __m256i {
            _mm256_dpbusd_avx_epi32(start, x, y)
        }
    }

    #[inline(always)]
    unsafe fn hsum(acc: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// The 256-bit kernel, inlined into each flavour's `target_feature` function below.
    #[inline(always)]
    unsafe fn dot4_by<M: Multiply, W: Unpack, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8_0]; T],
        yd: [&[f32]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        let nb = super::common_len(&xs, &ys, &yd);
        let mut acc = [[_mm256_setzero_ps(); 4]; T];
        for b in 0..nb {
            super::lines_ahead(ahead, b, |p| _mm_prefetch::<_MM_HINT_T0>(p as *const i8));
            let qy: [M::Y; T] =
                std::array::from_fn(|t| M::activations::<W>(ys[t].get_unchecked(b).bytes()));
            let dy: [__m256; T] = std::array::from_fn(|t| _mm256_set1_ps(*yd[t].get_unchecked(b)));
            for r in 0..4 {
                let x = xs[r].get_unchecked(b);
                let (qx, dx) = (M::weights(x), _mm256_set1_ps(x.scale().to_f32()));
                for t in 0..T {
                    acc[t][r] = _mm256_fmadd_ps(
                        _mm256_mul_ps(dx, dy[t]),
                        _mm256_cvtepi32_ps(M::sums(qx, qy[t])),
                        acc[t][r],
                    );
                }
            }
        }
        acc.map(|a| a.map(|a| hsum(a)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4<W: Unpack, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8_0]; T],
        yd: [&[f32]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        dot4_by::<Maddubs, W, T>(xs, ys, yd, ahead)
    }

    /// `dot4` through VNNI (`Vnni`): the same results to the bit.
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    pub unsafe fn dot4_vnni<W: Unpack, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8_0]; T],
        yd: [&[f32]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        dot4_by::<Vnni, W, T>(xs, ys, yd, ahead)
    }

    /// `dot4_vnni` two blocks at a time in 512-bit vectors: half the instructions again.
    /// Each (row, activation) pair still has its own accumulator and order, so a result
    /// depends on neither its companions nor `T`; its 16 lanes sum otherwise than the
    /// 256-bit kernels' 8, so the last bits differ from theirs.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dot4_512<W: Unpack, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8_0]; T],
        yd: [&[f32]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        let nb = super::common_len(&xs, &ys, &yd);
        let mut acc = [[_mm512_setzero_ps(); 4]; T];
        let offset = _mm512_set1_epi8(W::OFFSET as i8);
        // Lanes 0..4 and 8..12 take the first block's scale, 4..8 and 12..16 the second's.
        let spread = _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
        let scales = |a: f32, b: f32| {
            _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_set_ps(0.0, 0.0, b, a)))
        };
        for b in (0..nb).step_by(2) {
            super::lines_ahead(ahead, b, |p| _mm_prefetch::<_MM_HINT_T0>(p as *const i8));
            super::lines_ahead(ahead, b + 1, |p| {
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
            });
            // An odd last block pairs with itself, its second copy weighted by zero.
            let (c, last) = if b + 1 < nb {
                (b + 1, false)
            } else {
                (b, true)
            };
            let qy: [__m512i; T] = std::array::from_fn(|t| {
                pair(&ys[t].get_unchecked(b).qs, &ys[t].get_unchecked(c).qs)
            });
            let start: [__m512i; T] = std::array::from_fn(|t| {
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), offset, qy[t]);
                _mm512_sub_epi32(_mm512_setzero_si512(), sums)
            });
            let dy: [__m512; T] = std::array::from_fn(|t| {
                let second = if last { 0.0 } else { *yd[t].get_unchecked(c) };
                scales(*yd[t].get_unchecked(b), second)
            });
            for r in 0..4 {
                let (x, x2) = (xs[r].get_unchecked(b), xs[r].get_unchecked(c));
                let qx = W::unsigned_pair(x, x2);
                let dx = scales(x.scale().to_f32(), x2.scale().to_f32());
                for t in 0..T {
                    let sums = _mm512_dpbusd_epi32(start[t], qx, qy[t]);
                    acc[t][r] = _mm512_fmadd_ps(
                        _mm512_mul_ps(dx, dy[t]),
                        _mm512_cvtepi32_ps(sums),
                        acc[t][r],
                    );
                }
            }
        }
        acc.map(|a| a.map(|a| _mm512_reduce_add_ps(a)))
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{Block, Q5_0, Q8_0};
    use half::f16;
    use std::arch::wasm32::*;

    pub trait Unpack: Block {
        /// Weights 0..16 and 16..32 as bytes: signed, or with relaxed SIMD, whose dot product
        /// takes one unsigned operand, `Q5_0`'s stored q (the weight plus `OFFSET`).
        fn bytes(&self) -> (v128, v128);
        /// What unsigned weights carry (`Q5_0`: q − 16), or 0 for signed ones (`Q8_0`).
        const OFFSET: i32;
    }

    #[inline(always)]
    fn load(p: *const u8) -> v128 {
        // SAFETY: callers pass pointers to 16 readable bytes inside a block.
        unsafe { v128_load(p as *const v128) }
    }

    impl Unpack for Q8_0 {
        const OFFSET: i32 = 0;
        #[inline(always)]
        fn bytes(&self) -> (v128, v128) {
            let p = self.qs.as_ptr() as *const u8;
            (load(p), load(p.wrapping_add(16)))
        }
    }

    /// For each byte value of qh, eight bytes that are 0x10 where the bit is `set` (or clear):
    /// or-ing them into nibbles gives q, subtracting the clear ones q − 16, in one step.
    const fn fifth_bits_table(set: bool) -> [u64; 256] {
        let mut t = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut b = 0;
            while b < 8 {
                if ((i >> b) & 1 == 1) == set {
                    t[i] |= 0x10u64 << (8 * b);
                }
                b += 1;
            }
            i += 1;
        }
        t
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    static FIFTH_BITS: [u64; 256] = fifth_bits_table(false);
    #[cfg(target_feature = "relaxed-simd")]
    static FIFTH_BITS: [u64; 256] = fifth_bits_table(true);

    impl Unpack for Q5_0 {
        const OFFSET: i32 = 16;
        #[inline(always)]
        fn bytes(&self) -> (v128, v128) {
            let qh = u32::from_le_bytes(self.qh) as usize;
            let hl = u64x2(FIFTH_BITS[qh & 0xff], FIFTH_BITS[(qh >> 8) & 0xff]);
            let hh = u64x2(FIFTH_BITS[(qh >> 16) & 0xff], FIFTH_BITS[qh >> 24]);
            let v = load(self.qs.as_ptr());
            let (l, h) = (v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4));
            #[cfg(not(target_feature = "relaxed-simd"))]
            return (i8x16_sub(l, hl), i8x16_sub(h, hh));
            #[cfg(target_feature = "relaxed-simd")]
            return (v128_or(l, hl), v128_or(h, hh));
        }
    }

    /// An activation block widened once for the four weight rows it meets.
    #[cfg(not(target_feature = "relaxed-simd"))]
    struct Wide([v128; 4]);

    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn widen((l, h): (v128, v128)) -> Wide {
        Wide([
            i16x8_extend_low_i8x16(l),
            i16x8_extend_high_i8x16(l),
            i16x8_extend_low_i8x16(h),
            i16x8_extend_high_i8x16(h),
        ])
    }

    /// Σ x·y over 32 signed bytes, in four i32 lanes: widen to i16, then multiply-add pairs.
    /// (Products through extmul measured no faster in V8.)
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn dot32((xl, xh): (v128, v128), y: &Wide) -> v128 {
        let a = i32x4_dot_i16x8(i16x8_extend_low_i8x16(xl), y.0[0]);
        let b = i32x4_dot_i16x8(i16x8_extend_high_i8x16(xl), y.0[1]);
        let c = i32x4_dot_i16x8(i16x8_extend_low_i8x16(xh), y.0[2]);
        let d = i32x4_dot_i16x8(i16x8_extend_high_i8x16(xh), y.0[3]);
        i32x4_add(i32x4_add(a, b), i32x4_add(c, d))
    }

    /// Four weight blocks' integer sums against one activation block, in lanes 0..4 (the
    /// weights as signed bytes; `offset` is for the relaxed variant below).
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn block_sums(q: [(v128, v128); 4], y: &Q8_0, _offset: i32) -> v128 {
        let wide = widen(y.bytes());
        sum4([
            dot32(q[0], &wide),
            dot32(q[1], &wide),
            dot32(q[2], &wide),
            dot32(q[3], &wide),
        ])
    }

    /// With relaxed SIMD, `i32x4.relaxed_dot_i8x16_i7x16_add_s`, whose second operand must lie
    /// in 0..128 (then every lowering is exact: `vpdpbusd` where the CPU has AVX-VNNI, else
    /// `pmaddubsw`, whose pairs stay below 2·128·127, and an add): unsigned weights (Q5_0's q,
    /// the offset taken back through Σy) against the activations, or signed weights (Q8_0)
    /// against the activations' positive and negative parts.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn block_sums(q: [(v128, v128); 4], y: &Q8_0, offset: i32) -> v128 {
        let (yl, yh) = y.bytes();
        let dot = |a: v128, b: v128, acc: v128| i32x4_relaxed_dot_i8x16_i7x16_add(a, b, acc);
        let zero = i32x4_splat(0);
        if offset != 0 {
            let sums = |(l, h): (v128, v128)| dot(yh, h, dot(yl, l, zero));
            let one = i8x16_splat(1);
            let ysum = dot(yh, one, dot(yl, one, zero));
            let s = sum4([sums(q[0]), sums(q[1]), sums(q[2]), sums(q[3])]);
            i32x4_sub(s, i32x4_mul(sum4([ysum; 4]), i32x4_splat(offset)))
        } else {
            let zero8 = i8x16_splat(0);
            let (pl, ph) = (i8x16_max(yl, zero8), i8x16_max(yh, zero8));
            let (nl, nh) = (
                i8x16_max(i8x16_neg(yl), zero8),
                i8x16_max(i8x16_neg(yh), zero8),
            );
            let sums = |(l, h): (v128, v128)| {
                i32x4_sub(dot(h, ph, dot(l, pl, zero)), dot(h, nh, dot(l, nl, zero)))
            };
            sum4([sums(q[0]), sums(q[1]), sums(q[2]), sums(q[3])])
        }
    }

    /// Reads a byte of each line of `ahead`'s share for block step `b` (`super::lines_ahead`):
    /// a load the engine may not drop, since it could trap.
    #[inline(always)]
    pub fn touch<W>(ahead: &[W], b: usize) {
        // SAFETY: `lines_ahead` gives addresses inside `ahead`.
        super::lines_ahead(ahead, b, |p| unsafe {
            std::ptr::read_volatile(p);
        });
    }

    /// Block `b` of each of the four rows, named one by one by the kernels: arrays mapped
    /// there become loops over the stack in V8's code, at half the speed.
    ///
    /// # Safety
    /// `b` must be below every row's length.
    #[inline(always)]
    pub unsafe fn at4<'a, W>(xs: &[&'a [W]; 4], b: usize) -> [&'a W; 4] {
        [
            xs[0].get_unchecked(b),
            xs[1].get_unchecked(b),
            xs[2].get_unchecked(b),
            xs[3].get_unchecked(b),
        ]
    }

    /// A vector's four lanes.
    #[inline(always)]
    pub fn lanes(a: v128) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(a),
            f32x4_extract_lane::<1>(a),
            f32x4_extract_lane::<2>(a),
            f32x4_extract_lane::<3>(a),
        ]
    }

    /// The four rows' sums in lanes 0..4 (integer adds: exact in any order).
    #[inline(always)]
    pub fn sum4([s0, s1, s2, s3]: [v128; 4]) -> v128 {
        let a = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(s0, s1),
            i32x4_shuffle::<2, 6, 3, 7>(s0, s1),
        );
        let b = i32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(s2, s3),
            i32x4_shuffle::<2, 6, 3, 7>(s2, s3),
        );
        i32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(a, b),
            i32x4_shuffle::<2, 3, 6, 7>(a, b),
        )
    }

    /// Four f16 scales to f32 at once, as `super::f16_to_f32_finite` does one.
    #[inline(always)]
    fn scales4(h: [f16; 4]) -> v128 {
        let v = u32x4(
            h[0].to_bits() as u32,
            h[1].to_bits() as u32,
            h[2].to_bits() as u32,
            h[3].to_bits() as u32,
        );
        let mag = f32x4_mul(
            v128_and(i32x4_shl(v, 13), u32x4_splat(0x7fff << 13)),
            f32x4_splat(f32::from_bits(0x7780_0000)),
        );
        v128_or(mag, i32x4_shl(v128_and(v, u32x4_splat(0x8000)), 16))
    }

    /// Four weight rows against `T` activation rows, one block at a time. The four rows'
    /// block sums land in the lanes of one vector, so each (row, activation) pair adds
    /// `(s·d_x)·d_y` in block order, exactly as `super::scalar` does: the same bits.
    pub fn dot4<W: Unpack, const T: usize>(
        xs: [&[W]; 4],
        ys: [&[Q8_0]; T],
        yd: [&[f32]; T],
        ahead: &[W],
    ) -> [[f32; 4]; T] {
        let nb = super::common_len(&xs, &ys, &yd);
        let mut acc = [f32x4_splat(0.0); T];
        for b in 0..nb {
            // SAFETY: b < nb, the shortest of the slices.
            let [x0, x1, x2, x3] = unsafe { at4(&xs, b) };
            touch(ahead, b);
            let dx = scales4([x0.scale(), x1.scale(), x2.scale(), x3.scale()]);
            let (q0, q1, q2, q3) = (x0.bytes(), x1.bytes(), x2.bytes(), x3.bytes());
            for t in 0..T {
                // SAFETY: as above.
                let (y, d) = unsafe { (ys[t].get_unchecked(b), *yd[t].get_unchecked(b)) };
                let s = block_sums([q0, q1, q2, q3], y, W::OFFSET);
                let p = f32x4_mul(f32x4_mul(f32x4_convert_i32x4(s), dx), f32x4_splat(d));
                acc[t] = f32x4_add(acc[t], p);
            }
        }
        acc.map(lanes)
    }
}

/// Random weights as Q5_0 and Q8_0 rows, and random activations, for the checks below.
struct RandomCase {
    q5: Vec<BlockQ5_0>,
    q8: Vec<BlockQ8_0>,
    act: Q8Act,
    /// Σ|w·a|, the scale of float reassociation error.
    magnitude: f32,
}

fn random_case(seed: &mut u64, rows: usize, nb: usize) -> RandomCase {
    use candle_core::quantized::k_quants::GgmlType;
    let mut rng = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 20001) as f32 / 10000.0 - 1.0
    };
    let w: Vec<f32> = (0..rows * nb * 32).map(|_| rng()).collect();
    let a: Vec<f32> = (0..nb * 32).map(|_| rng() * 10.0).collect();
    let mut q5 = vec![BlockQ5_0::zeros(); rows * nb];
    BlockQ5_0::from_float(&w, &mut q5);
    let mut q8 = vec![BlockQ8_0::zeros(); rows * nb];
    BlockQ8_0::from_float(&w, &mut q8);
    let magnitude = w
        .chunks_exact(nb * 32)
        .map(|r| r.iter().zip(&a).map(|(x, y)| (x * y).abs()).sum::<f32>())
        .fold(1.0, f32::max);
    RandomCase {
        q5,
        q8,
        act: quantize_q8_0(&a),
        magnitude,
    }
}

/// Checks this build's SIMD dots against the scalar reference on random blocks (run in
/// the browser tests too, where the simd128 kernels live). Returns what went wrong.
pub fn self_check() -> Result<(), String> {
    fn check<W: Unpack>(name: &str, w: &[W], c: &RandomCase, nb: usize) -> Result<(), String> {
        let ys: &[Q8_0] = view(&c.act.blocks);
        let rows: Vec<&[W]> = w.chunks_exact(nb).collect();
        let rows = [rows[0], rows[1], rows[2], rows[3]];
        // The activations against themselves reversed, as a second row.
        let reversed: Vec<BlockQ8_0> = c.act.blocks.iter().rev().cloned().collect();
        let (yr, dr): (&[Q8_0], Vec<f32>) = (
            view(&reversed),
            c.act.scales.iter().rev().copied().collect(),
        );
        // Rows to pull into cache: the same rows (what they are does not change a result).
        let ahead = &w[..4 * nb];
        let [one] = dot4(rows, [ys], [&c.act.scales], ahead);
        let two = dot4(rows, [ys, yr], [&c.act.scales, &dr], &[]);
        for (r, row) in rows.iter().enumerate() {
            let want = scalar(row, ys, &c.act.scales);
            // wasm sums exactly as the reference; AVX2 in eight lanes, then across them.
            let exact = cfg!(target_arch = "wasm32");
            if exact && one[r].to_bits() != want.to_bits()
                || (one[r] - want).abs() > 1e-5 * c.magnitude
            {
                return Err(format!(
                    "{name} dot, row {r} of {nb} blocks: SIMD {} vs scalar {want}",
                    one[r]
                ));
            }
            #[cfg(target_arch = "x86_64")]
            if has_vnni() {
                // SAFETY: VNNI implies AVX2, FMA and F16C (`has_vnni`).
                let [avx2] = unsafe { x86::dot4(rows, [ys], [&c.act.scales], &[]) };
                let [vnni] = unsafe { x86::dot4_vnni(rows, [ys], [&c.act.scales], &[]) };
                if avx2[r].to_bits() != vnni[r].to_bits()
                    || (avx2[r] - want).abs() > 1e-5 * c.magnitude
                {
                    return Err(format!(
                        "{name} dot, row {r} of {nb} blocks: VNNI {} vs AVX2 {} vs scalar {want}",
                        vnni[r], avx2[r]
                    ));
                }
            }
            let [single] = dot4(rows, [yr], [&dr], &[]);
            let four = dot4(
                rows,
                [ys, yr, yr, ys],
                [&c.act.scales, &dr, &dr, &c.act.scales],
                &[],
            );
            let same = |a: [f32; 4], b: [f32; 4]| a[r].to_bits() == b[r].to_bits();
            let all_same = same(two[0], one)
                && same(two[1], single)
                && same(four[0], one)
                && same(four[1], single)
                && same(four[2], single)
                && same(four[3], one);
            if !all_same {
                return Err(format!("{name} dot, row {r} of {nb} blocks: two or four activation rows at once sum otherwise than one"));
            }
        }
        Ok(())
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for trial in 0..300 {
        let nb = 1 + trial % 41;
        let c = random_case(&mut seed, 4, nb);
        check::<Q5_0>("Q5_0", view(&c.q5), &c, nb)?;
        check::<Q8_0>("Q8_0", view(&c.q8), &c, nb)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    /// Our scalar reference (and so `Block::weight`) agrees with candle's scalar dots, an
    /// independent decoding of the same formats; `self_check` then holds SIMD to it.
    #[test]
    fn scalar_reference_matches_candle() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for trial in 0..100 {
            let nb = 1 + (trial % 17);
            let c = random_case(&mut seed, 1, nb);
            let ys: &[Q8_0] = view(&c.act.blocks);
            let ours = [
                scalar::<Q5_0>(view(&c.q5), ys, &c.act.scales),
                scalar::<Q8_0>(view(&c.q8), ys, &c.act.scales),
            ];
            let candle = [
                BlockQ5_0::vec_dot_unopt(nb * 32, &c.q5, &c.act.blocks),
                BlockQ8_0::vec_dot_unopt(nb * 32, &c.q8, &c.act.blocks),
            ];
            for (o, k) in ours.iter().zip(candle) {
                assert!(
                    (o - k).abs() <= 1e-5 * c.magnitude,
                    "trial {trial}: ours {o} vs candle {k}"
                );
            }
        }
    }

    #[test]
    fn self_check_passes() {
        self_check().unwrap();
    }

    #[test]
    fn wasm_scale_conversion_is_exact() {
        for bits in (0u16..0x7c00).chain(0x8000..0xfc00) {
            let h = f16::from_bits(bits);
            assert_eq!(
                f16_to_f32_finite(h).to_bits(),
                h.to_f32().to_bits(),
                "f16 bits {bits:#x}"
            );
        }
    }
}
