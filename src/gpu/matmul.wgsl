// out = x̂ · Wᵀ for up to three matrices at once, each workgroup ROWS rows × LANES lanes, for
// up to TOK token rows. x̂ is x, or rms_norm(x)·norm, or rms_norm(x + h')·norm where h' is h or
// rms_norm(h)·post (PRO_POST), computed on the fly (PRO_ADD, PRO_NORM); with PRO_ADD, the
// row-group-0 workgroups also store x + h' at x_out, the other half of x's ping-pong space.
// A matrix's bias (an offset into `vecs`, NONE for none) is added to its products. All
// activations live in one buffer, `act`, at element offsets.
//
// The host fills the placeholders in double braces and appends quant.wgsl's readers for each weight
// binding. DQ0..DQ2 name the dequantizer of each matrix's type; a matrix that is not there
// takes matrix 0's (no workgroup reaches it), so its binding is not used.

const TOK: u32 = {{TOK}}u;
const PRO_ADD: bool = {{PRO_ADD}};
const PRO_POST: bool = {{PRO_POST}};
const PRO_NORM: bool = {{PRO_NORM}};
// 0: each matrix has its own workgroups and output (lo[m] is matrix m's first workgroup);
// 1, 2: one output, gelu(x̂ · W0ᵀ) ⊙ (x̂ · W1ᵀ) or silu(…) ⊙ (…), the gated MLPs.
const GATE: u32 = {{GATE}}u;
// How many matrices: with one, every call below is matrix 0's, known when compiled.
const MATS: u32 = {{MATS}}u;
// Weight rows per workgroup, and the invocations that share each row's chunks.
const ROWS: u32 = {{ROWS}}u;
const LANES: u32 = 64u / ROWS;
// 32-value chunks per staged slice of x̂: the `xs` space holds TOK × SLICE × 32 values.
const SLICE: u32 = 32u / TOK;
const SLICE_COLS: u32 = SLICE * 32u;

// The fields of `Matmul` in uniforms.rs; vec4s hold one value per matrix.
struct P {
    n: u32, cols: u32, x_in: u32, x_out: u32,
    h_off: u32, post: u32, norm: u32, eps: f32,
    gx: u32, groups: u32, row_base: u32, _pad: u32,
    lo: vec4<u32>, rows: vec4<u32>, out_w: vec4<u32>, out: vec4<u32>, rb: vec4<u32>, bias: vec4<u32>,
}
const NONE: u32 = 0xffffffffu;
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;
@group(0) @binding(2) var<storage, read> vecs: array<f32>;
@group(0) @binding(3) var<storage, read> w0: array<u32>;
@group(0) @binding(4) var<storage, read> w1: array<u32>;
@group(0) @binding(5) var<storage, read> w2: array<u32>;

var<workgroup> sh: array<f32, TOK>;
var<workgroup> sx: array<f32, TOK>;
var<workgroup> red: array<f32, 512>; // 64 invocations × TOK × 2 accumulators
// x̂ for the workgroup's tokens over one slice, computed once and shared by the rows (the
// prologue costs several loads per value).
var<workgroup> xs: array<f32, 1024>; // TOK × SLICE_COLS

fn xin(i: u32, c: u32, t: u32) -> f32 {
    var v = act[p.x_in + i];
    if (PRO_ADD) {
        if (PRO_POST) { v += act[p.h_off + i] * sh[t] * vecs[p.post + c]; } else { v += act[p.h_off + i]; }
    }
    return v;
}

fn xv(i: u32, c: u32, t: u32) -> f32 {
    var v = xin(i, c, t);
    if (PRO_NORM) { v = v * sx[t] * vecs[p.norm + c]; }
    return v;
}

// Fills `xs` with x̂ for columns `s0·32 ..` (SLICE chunks).
fn stage(s0: u32, t0: u32, nt: u32, li: u32) {
    for (var e = li; e < TOK * SLICE_COLS; e += 64u) {
        let t = e / SLICE_COLS;
        let col = s0 * 32u + (e % SLICE_COLS);
        if (t < nt && col < p.cols) { xs[e] = xv((t0 + t) * p.cols + col, col, t); }
    }
}

// acc[t] += w · x̂[t] over the staged chunk `k`.
fn chunk_dot(w: ptr<function, array<f32, 32>>, k: u32, nt: u32, acc: ptr<function, array<f32, TOK>>) {
    for (var t = 0u; t < nt; t++) {
        let base = t * SLICE_COLS + k * 32u;
        var s = 0.0;
        for (var j = 0u; j < 32u; j++) { s += (*w)[j] * xs[base + j]; }
        (*acc)[t] += s;
    }
}

// Chunk `c` of row `row` of matrix `m`.
fn dq(m: u32, row: u32, c: u32, w: ptr<function, array<f32, 32>>) {
    if (MATS == 1u || m == 0u) {
        {{DQ0}}(row * p.rb[0], c, w);
    } else if (MATS == 2u || m == 1u) {
        {{DQ1}}(row * p.rb[1], c, w);
    } else {
        {{DQ2}}(row * p.rb[2], c, w);
    }
}

fn bias(off: u32, row: u32) -> f32 {
    if (off == NONE) { return 0.0; }
    return vecs[off + row];
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn gelu(x: f32) -> f32 {
    if (x <= -10.0) { return 0.0; }
    if (x >= 10.0) { return x; }
    let r = f16r(x);
    return f16r(0.5 * r * (1.0 + tanh(0.7978846 * r * (1.0 + 0.044715 * r * r))));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let group = wid.x + wid.y * p.gx;
    if (group >= p.groups) { return; }
    let t0 = wid.z * TOK;
    let nt = min(TOK, p.n - t0);
    if (PRO_NORM) {
        for (var t = 0u; t < TOK; t++) {
            if (t < nt) {
                let base = (t0 + t) * p.cols;
                if (PRO_ADD && PRO_POST) {
                    var s = 0.0;
                    for (var c = li; c < p.cols; c += 64u) { let v = act[p.h_off + base + c]; s += v * v; }
                    let tot = wg_sum(s, li);
                    if (li == 0u) { sh[t] = inverseSqrt(tot / f32(p.cols) + p.eps); }
                    workgroupBarrier();
                }
                var s = 0.0;
                for (var c = li; c < p.cols; c += 64u) {
                    let v = xin(base + c, c, t);
                    s += v * v;
                    if (PRO_ADD && group == 0u) { act[p.x_out + base + c] = v; }
                }
                let tot = wg_sum(s, li);
                if (li == 0u) { sx[t] = inverseSqrt(tot / f32(p.cols) + p.eps); }
                workgroupBarrier();
            }
        }
    }
    let r = li / LANES;
    let lane = li % LANES;
    let nc = p.cols / 32u;
    var w: array<f32, 32>;
    var acc0: array<f32, TOK>;
    var acc1: array<f32, TOK>;
    // The matrix this workgroup's rows belong to (a gate's two share rows), uniform over
    // the workgroup, and each invocation's row. Barriers stay in uniform control flow.
    var m = 0u;
    if (GATE == 0u) {
        if (group >= p.lo[2]) { m = 2u; } else if (group >= p.lo[1]) { m = 1u; }
    }
    let row = (group - p.lo[m]) * ROWS + r;
    let live = row < p.rows[m];
    // Slices of x̂: stage them, then each row's lanes dot its chunks in turn.
    for (var s0 = 0u; s0 < nc; s0 += SLICE) {
        stage(s0, t0, nt, li);
        workgroupBarrier();
        for (var k = lane; k < SLICE; k += LANES) {
            let c = s0 + k;
            if (live && c < nc) {
                dq(m, row, c, &w);
                chunk_dot(&w, k, nt, &acc0);
                if (GATE != 0u) {
                    dq(1u, row, c, &w);
                    chunk_dot(&w, k, nt, &acc1);
                }
            }
        }
        workgroupBarrier();
    }
    for (var t = 0u; t < TOK; t++) {
        red[li * TOK + t] = acc0[t];
        red[256u + li * TOK + t] = acc1[t];
    }
    workgroupBarrier();
    if (lane == 0u) {
        for (var t = 0u; t < nt; t++) {
            var a = 0.0;
            var b = 0.0;
            for (var l = 0u; l < LANES; l++) {
                a += red[(li + l) * TOK + t];
                b += red[256u + (li + l) * TOK + t];
            }
            if (!live) { continue; }
            if (GATE == 0u) {
                // Row indices of a split matrix's later parts start at row_base.
                let at = select(0u, p.row_base, m == 0u) + row;
                act[p.out[m] + (t0 + t) * p.out_w[m] + at] = a + bias(p.bias[m], at);
            } else if (GATE == 1u) {
                act[p.out[0] + (t0 + t) * p.out_w[0] + row] = gelu(a) * b;
            } else {
                act[p.out[0] + (t0 + t) * p.out_w[0] + row] = silu(a) * b;
            }
        }
    }
}
