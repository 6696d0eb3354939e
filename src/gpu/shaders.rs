//! WGSL sources, assembled from the `.wgsl` files beside this one. Quantized weights are
//! read through functions written for a placeholder binding `W_`, renamed per binding.

use super::wgsl_type;
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

/// The weight binding `w{i}` at `binding`, with its block readers.
fn weights(binding: usize, i: usize) -> String {
    let name = format!("w{i}");
    format!(
        "@group(0) @binding({binding}) var<storage, read> {name}: array<u32>;\n{}",
        QUANT.replace("W_", &name)
    )
}

/// The matmul kernel for matrices of `types` (bindings 3..), with its prologue and `mix`,
/// `tok` token rows per workgroup (1 for a decode step: its accumulators stay in registers).
pub fn matmul(types: &[DType], add: bool, post: bool, normed: bool, mix: Mix, tok: u32) -> String {
    let mut s = format!("const TOK: u32 = {tok}u;\nconst PRO_ADD: bool = {add};\nconst PRO_POST: bool = {post};\nconst PRO_NORM: bool = {normed};\n{COMMON}");
    for i in 0..types.len() {
        s += &weights(3 + i, i);
    }
    let dq = |i: usize| format!("dq_{}_w{i}(row * p.rb{i}, c, &w);", wgsl_type(types[i]));
    let (body, store) = match mix {
        Mix::Each => {
            let lo = ["0u", "p.g1", "p.g2"];
            let mut body = String::new();
            let mut store = String::new();
            for i in 0..types.len() {
                let cond = if i + 1 < types.len() {
                    format!("group >= {} && group < {}", lo[i], lo[i + 1])
                } else {
                    format!("group >= {}", lo[i])
                };
                body += &format!(
                    "if ({cond}) {{ m = {i}u; row = (group - {}) * 8u + r; {} }}\n",
                    lo[i],
                    slices(&format!("row < p.rows{i}"), &[(dq(i), "acc0")])
                );
                let base = if i == 0 { "p.row_base" } else { "0u" };
                store += &format!("if (m == {i}u && row < p.rows{i}) {{ act[p.out{i} + (t0 + t) * p.out_w{i} + {base} + row] = a + bias(p.bias{i}, {base} + row); }}\n");
            }
            (body, store)
        }
        Mix::GeluGate | Mix::SiluGate => (
            format!(
                "row = group * 8u + r; {}",
                slices("row < p.rows0", &[(dq(0), "acc0"), (dq(1), "acc1")])
            ),
            format!(
                "if (row < p.rows0) {{ act[p.out0 + (t0 + t) * p.out_w0 + row] = {}(a) * b; }}",
                if mix == Mix::GeluGate { "gelu" } else { "silu" }
            ),
        ),
    };
    s + &MATMUL.replace("BODY", &body).replace("STORE", &store)
}

/// The loop over 256-column slices: stage x̂, then each (row, lane) dots one chunk per
/// matrix in `dots` (its dequantization and accumulator). Barriers stay in uniform flow.
fn slices(live: &str, dots: &[(String, &str)]) -> String {
    let work: String = dots
        .iter()
        .map(|(dq, acc)| format!("{dq} chunk_dot(&w, lane, nt, &{acc}); "))
        .collect();
    format!(
        "for (var s0 = 0u; s0 < nc; s0 += 8u) {{ stage(s0, t0, nt, li); workgroupBarrier(); let c = s0 + lane; if ({live} && c < nc) {{ {work}}} workgroupBarrier(); }}"
    )
}

pub fn embed(t: DType) -> String {
    weights(2, 0) + &EMBED.replace("DQ", &format!("dq_{}_w0", wgsl_type(t)))
}

pub fn rope() -> String {
    format!("{COMMON}{ROPE}")
}

pub fn attention() -> String {
    format!("{COMMON}{ATTENTION}")
}

pub fn softcap() -> String {
    SOFTCAP.to_owned()
}

pub fn copy() -> String {
    COPY.to_owned()
}

/// One of top-k's two passes (`topk.wgsl`).
pub fn top_k(last: bool) -> String {
    format!("const FINAL: bool = {last};\n{TOPK}")
}
