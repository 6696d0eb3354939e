//! `e^x` for x ≤ 0 in plain arithmetic the compiler vectorises (libm's `expf` is a call per
//! value), the same bits on every target: no fused multiply-adds, no tables.

/// e^x for x ≤ 0: Cephes' `expf` polynomial, within 2.5 ε of libm (relative, tested). Below
/// e^−87 (just above f32's smallest normal), −∞ and NaN give 0.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Not `x.max(-87.0)`: wasm has no instruction with Rust's NaN rule, so that is a call to
    // libm's fmaxf per value, which keeps a loop from being vectorised.
    let v = if x > -87.0 { x } else { -87.0 };
    let n = (v * std::f32::consts::LOG2_E + 0.5).floor();
    let r = v - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x >= -87.0 {
        e
    } else {
        0.0
    }
}

/// Σ f(x) over `xs` in f64, in eight lanes (a fixed order, so the same sum on every target;
/// `f` inlined into a loop the compiler vectorises).
#[inline(always)]
pub fn sum_f64(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&x| f(x) as f64).sum();
    for c in chunks {
        for (s, &x) in lanes.iter_mut().zip(c) {
            *s += f(x) as f64;
        }
    }
    lanes.iter().sum::<f64>() + rest
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_libm() {
        for (i, x) in (0..18_500).map(|i| (i, -(i as f32) * 0.0047)).chain([
            (-1, -87.5),
            (-2, -200.0),
            (-3, f32::NEG_INFINITY),
            (-4, f32::NAN),
        ]) {
            let want = if x >= -87.0 { x.exp() } else { 0.0 }; // NaN too
            let got = super::exp_nonpositive(x);
            assert!(
                (got - want).abs() <= 2.5 * f32::EPSILON * want + f32::MIN_POSITIVE,
                "{i}: e^{x} = {got}, libm {want}"
            );
        }
    }
}
