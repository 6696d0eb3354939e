// The k largest logits of one row and ln Σ exp(x / temp), in two dispatches: FINAL = false
// has `groups` workgroups each take the k best of a slice (plus its max and Σ exp), FINAL =
// true has one workgroup merge those. Order: larger value first, ties to the lower id, as
// llama.cpp's greedy choice. Round r picks the best item after round r−1's pick in that
// strict order, so nothing needs marking. Output (TopLogits::to_row): k (value, id) pairs,
// ids as f32 (exact below 2²⁴), id = n where the row ran out; then the log-normalizer.

const FINAL: bool = {{FINAL}};

struct P { n: u32, k: u32, groups: u32, src: u32, scratch: u32, dst: u32, temp: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;

const NONE: u32 = 0xffffffffu;
var<workgroup> pick_v: array<f32, 64>;
var<workgroup> pick_i: array<u32, 64>;

// Whether (v, i) comes before (bv, bi); NONE comes after everything.
fn before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

// Item j: a logit (first pass) or a first-pass candidate (second pass; padding → NONE).
fn item_v(j: u32) -> f32 {
    if (FINAL) { return act[p.scratch + 2u * j]; }
    return act[p.src + j];
}
fn item_i(j: u32) -> u32 {
    if (FINAL) {
        let i = u32(act[p.scratch + 2u * j + 1u]);
        return select(NONE, i, i < p.n);
    }
    return j;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let per = (p.n + p.groups - 1u) / p.groups;
    var lo = wg.x * per;
    var hi = min(lo + per, p.n);
    if (FINAL) { lo = 0u; hi = p.groups * p.k; }
    let out = select(p.scratch + wg.x * 2u * p.k, p.dst, FINAL);
    var pv = 0.0;
    var pi = NONE;
    var started = false;
    var top = 0.0;
    for (var r = 0u; r < p.k; r++) {
        var bv = 0.0;
        var bi = NONE;
        for (var j = lo + li; j < hi; j += 64u) {
            let v = item_v(j);
            let i = item_i(j);
            if ((!started || before(pv, pi, v, i)) && before(v, i, bv, bi)) { bv = v; bi = i; }
        }
        pick_v[li] = bv;
        pick_i[li] = bi;
        workgroupBarrier();
        for (var t = 0u; t < 64u; t++) {
            if (before(pick_v[t], pick_i[t], bv, bi)) { bv = pick_v[t]; bi = pick_i[t]; }
        }
        workgroupBarrier();
        // An empty slice's top is the lowest f32, so it weighs nothing in the merge.
        if (r == 0u) { top = select(bv, -3.4e38, bi == NONE); }
        if (li == 0u) {
            act[out + 2u * r] = bv;
            act[out + 2u * r + 1u] = f32(min(bi, p.n));
        }
        // Once the items run out, pi = NONE and no later round finds one.
        pv = bv;
        pi = bi;
        started = true;
    }

    // The normalizer: Σ exp((x − top) / temp) per slice, then merged at the largest top.
    var s = 0.0;
    if (FINAL) {
        let stats = p.scratch + 2u * p.k * p.groups;
        var m = act[stats];
        for (var g = 1u; g < p.groups; g++) { m = max(m, act[stats + 2u * g]); }
        if (li == 0u) {
            for (var g = 0u; g < p.groups; g++) { s += act[stats + 2u * g + 1u] * exp((act[stats + 2u * g] - m) / p.temp); }
            act[p.dst + 2u * p.k] = m / p.temp + log(s);
        }
        return;
    }
    for (var j = lo + li; j < hi; j += 64u) { s += exp((act[p.src + j] - top) / p.temp); }
    pick_v[li] = s;
    workgroupBarrier();
    if (li == 0u) {
        var total = 0.0;
        for (var t = 0u; t < 64u; t++) { total += pick_v[t]; }
        let stats = p.scratch + 2u * p.k * p.groups + 2u * wg.x;
        act[stats] = top;
        act[stats + 1u] = total;
    }
}
