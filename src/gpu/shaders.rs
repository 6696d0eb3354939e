//! WGSL sources: each kernel is its `.wgsl` file as written, after `common.wgsl` where it
//! uses the workgroup reductions, with its placeholders in double braces filled by value
//! (compile-time constants, and which dequantizer reads each matrix). Quantized weights are
//! read through `quant.wgsl`'s functions, written for a binding named `W_` and renamed per
//! binding (WGSL cannot pass a storage buffer to a function).

use crate::backend::Mix;
use crate::gguf::DType;

const COMMON: &str = include_str!("common.wgsl");
const QUANT: &str = include_str!("quant.wgsl");
const MATMUL: &str = include_str!("matmul.wgsl");
const EMBED: &str = include_str!("embed.wgsl");
const ROPE: &str = include_str!("rope.wgsl");
const ATTENTION: &str = include_str!("attention.wgsl");
const COPY: &str = include_str!("copy.wgsl");
const SOFTCAP: &str = include_str!("softcap.wgsl");
const TOPK: &str = include_str!("topk.wgsl");

/// `src` with each `{{NAME}}` replaced by its value.
fn fill(src: &str, values: &[(&str, String)]) -> String {
    let mut s = src.to_owned();
    for (name, value) in values {
        s = s.replace(&format!("{{{{{name}}}}}"), value);
    }
    debug_assert!(!s.contains("{{"), "a placeholder left unfilled");
    s
}

/// The readers of binding `w{i}`.
fn readers(i: usize) -> String {
    QUANT.replace("W_", &format!("w{i}"))
}

/// The reader of one 32-value chunk of a `t` matrix at binding `w{i}`.
fn dequantizer(t: DType, i: usize) -> String {
    format!("dq_{}_w{i}", wgsl_type(t))
}

/// The mat-mul kernel for matrices of `types` (bindings w0.., at 3..), its prologue and
/// `mix`, with `tok` token rows (1 or 4; 1 for a decode step: its accumulators stay in
/// registers) and `rows` weight rows (2 to 64, a power of two) per workgroup.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    types: &[DType],
    add: bool,
    post: bool,
    normed: bool,
    mix: Mix,
    tok: u32,
    rows: u32,
) -> String {
    debug_assert!(rows.is_power_of_two() && (2..=64).contains(&rows) && 64 / rows <= 32 / tok);
    let gate = match mix {
        Mix::Each => 0,
        Mix::GeluGate => 1,
        Mix::SiluGate => 2,
    };
    // A matrix that is not there is read as matrix 0 (never, as no workgroup reaches it).
    let dq = |i: usize| match types.get(i) {
        Some(&t) => dequantizer(t, i),
        None => dequantizer(types[0], 0),
    };
    let values = [
        ("TOK", tok.to_string()),
        ("PRO_ADD", add.to_string()),
        ("PRO_POST", post.to_string()),
        ("PRO_NORM", normed.to_string()),
        ("GATE", gate.to_string()),
        ("MATS", types.len().to_string()),
        ("ROWS", rows.to_string()),
        ("DQ0", dq(0)),
        ("DQ1", dq(1)),
        ("DQ2", dq(2)),
    ];
    let mut s = COMMON.to_owned() + &fill(MATMUL, &values);
    for i in 0..types.len() {
        s += &readers(i);
    }
    s
}

pub fn embed(t: DType) -> String {
    fill(EMBED, &[("DQ", dequantizer(t, 0))]) + &readers(0)
}

pub fn rope() -> String {
    COMMON.to_owned() + ROPE
}

pub fn attention() -> String {
    COMMON.to_owned() + ATTENTION
}

pub fn softcap() -> String {
    SOFTCAP.to_owned()
}

pub fn copy() -> String {
    COPY.to_owned()
}

/// One of top-k's two passes (`topk.wgsl`).
pub fn top_k(last: bool) -> String {
    fill(TOPK, &[("FINAL", last.to_string())])
}

/// The name of `d`'s readers in quant.wgsl.
pub fn wgsl_type(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::Q4_0 => "q4_0",
        DType::Q4_1 => "q4_1",
        DType::Q5_0 => "q5_0",
        DType::Q5_1 => "q5_1",
        DType::Q8_0 => "q8_0",
        DType::Q2K => "q2_k",
        DType::Q3K => "q3_k",
        DType::Q4K => "q4_k",
        DType::Q5K => "q5_k",
        DType::Q6K => "q6_k",
        DType::Q8K => "q8_k",
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wgpu::naga;

    /// Parses and validates `src` as the GPU's compiler would first.
    fn check(src: &str) {
        let module = naga::front::wgsl::parse_str(src)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
    }

    #[test]
    fn every_kernel_variant_is_valid_wgsl() {
        use DType::*;
        let all = [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
        ];
        for t in all {
            check(&embed(t));
            for (tok, rows) in [(1, 2), (1, 8), (1, 64), (4, 8)] {
                check(&matmul(&[t], false, false, false, Mix::Each, tok, rows));
            }
        }
        for (add, post, normed) in [
            (false, false, true),
            (true, false, true),
            (true, true, true),
        ] {
            check(&matmul(
                &[Q4K, Q6K, Q8_0],
                add,
                post,
                normed,
                Mix::Each,
                4,
                8,
            ));
            check(&matmul(
                &[Q5_0, Q8_0],
                add,
                post,
                normed,
                Mix::GeluGate,
                1,
                16,
            ));
            check(&matmul(
                &[Q4_0, Q4_0],
                add,
                post,
                normed,
                Mix::SiluGate,
                4,
                8,
            ));
        }
        for src in [
            rope(),
            attention(),
            softcap(),
            copy(),
            top_k(false),
            top_k(true),
        ] {
            check(&src);
        }
    }
}
