// Causal attention of one query head at one position over the f16 KV cache, in tiles of
// 256 keys with a running max and sum (online softmax). Queries are rounded to f16 as
// ggml does before its f16 product with K.
//
// 256 invocations, as a decode step has only one workgroup per head: in a tile each
// scores one key, then four groups of 64 each sum a quarter of the keys' values, every
// invocation owning value dimensions (2·pr, 2·pr + 1) for pr = lane and lane + 64 (one
// u32 load reads both halves). The four partial sums are added at the end.

struct P { n: u32, pos0: u32, hd: u32, nq: u32, group: u32, kvw: u32, window: u32, q_off: u32, out_off: u32, scale: f32, cap: f32, slots: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read> vc: array<u32>;

const TILE: u32 = 256u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, TILE>;
var<workgroup> red: array<f32, 256>;
var<workgroup> sums: array<vec2<f32>, 512>; // 4 key groups × 128 dimension pairs

// The max (is_max) or the sum of `v` over the workgroup; call from uniform control flow.
fn reduce256(v: f32, li: u32, is_max: bool) -> f32 {
    red[li] = v;
    workgroupBarrier();
    if (li < 64u) { // each folds four values into red[192 + li], a slot only it reads
        let a = red[li];
        let b = red[li + 64u];
        let c = red[li + 128u];
        let d = red[li + 192u];
        red[192u + li] = select(a + b + c + d, max(max(a, b), max(c, d)), is_max);
    }
    workgroupBarrier();
    var r = red[192u];
    for (var i = 1u; i < 64u; i++) {
        let x = red[192u + i];
        r = select(r + x, max(r, x), is_max);
    }
    workgroupBarrier();
    return r;
}

// Where position `pos`'s row starts in the cache, in u32s (a sliding layer's cache is a
// ring of `slots` positions).
fn vrow(pos: u32) -> u32 {
    return (pos % p.slots) * (p.kvw / 2u);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let pos = p.pos0 + t;
    let hd = p.hd;
    let kvh = h / p.group;
    let qb = p.q_off + (t * p.nq + h) * hd;
    for (var i = li; i < hd; i += 256u) { qs[i] = f16r(act[qb + i]); }
    workgroupBarrier();
    var first = 0u;
    if (p.window > 0u && pos + 1u > p.window) { first = pos + 1u - p.window; }
    let keys = pos + 1u - first;
    var m = -1e30;
    var l = 0.0;
    let kg = li / 64u;
    let lane = li % 64u;
    let pairs = hd / 2u;
    var acc: array<vec2<f32>, 2>;
    for (var k0 = 0u; k0 < keys; k0 += TILE) {
        let nk = min(TILE, keys - k0);
        var s = -1e30;
        if (li < nk) {
            let kb = (((first + k0 + li) % p.slots) * p.kvw + kvh * hd) / 2u;
            s = 0.0;
            for (var i = 0u; i < pairs; i += 4u) { // head sizes are multiples of 8
                let c0 = unpack2x16float(kc[kb + i]);
                let c1 = unpack2x16float(kc[kb + i + 1u]);
                let c2 = unpack2x16float(kc[kb + i + 2u]);
                let c3 = unpack2x16float(kc[kb + i + 3u]);
                let q = 2u * i;
                s += qs[q] * c0.x + qs[q + 1u] * c0.y + qs[q + 2u] * c1.x + qs[q + 3u] * c1.y
                    + qs[q + 4u] * c2.x + qs[q + 5u] * c2.y + qs[q + 6u] * c3.x + qs[q + 7u] * c3.y;
            }
            s *= p.scale;
            if (p.cap > 0.0) { s = p.cap * tanh(clamp(s / p.cap, -15.0, 15.0)); } // Gemma 2's soft cap
        }
        let mnew = max(m, reduce256(s, li, true));
        let alpha = exp(m - mnew);
        var e = 0.0;
        if (li < nk) { e = exp(s - mnew); }
        sc[li] = e;
        l = l * alpha + reduce256(e, li, false); // its barriers also publish sc
        m = mnew;
        acc[0] *= alpha;
        acc[1] *= alpha;
        // Key group kg sums the tile's keys kg·q .. (kg + 1)·q.
        let q = (nk + 3u) / 4u;
        let j1 = min(nk, (kg + 1u) * q);
        // Key j's values, this invocation's pairs: its slot's row, this head, this lane.
        let vb = (kvh * hd) / 2u + lane;
        var j = kg * q;
        for (; j + 2u <= j1; j += 2u) {
            let e0 = vrow(first + k0 + j) + vb;
            let e1 = vrow(first + k0 + j + 1u) + vb;
            for (var u = 0u; u < 2u; u++) {
                if (lane + 64u * u < pairs) {
                    acc[u] += sc[j] * unpack2x16float(vc[e0 + 64u * u]) + sc[j + 1u] * unpack2x16float(vc[e1 + 64u * u]);
                }
            }
        }
        if (j < j1) {
            let e0 = vrow(first + k0 + j) + vb;
            for (var u = 0u; u < 2u; u++) {
                if (lane + 64u * u < pairs) { acc[u] += sc[j] * unpack2x16float(vc[e0 + 64u * u]); }
            }
        }
        workgroupBarrier();
    }
    sums[kg * 128u + lane] = acc[0];
    sums[kg * 128u + lane + 64u] = acc[1];
    workgroupBarrier();
    if (kg == 0u) {
        let ob = p.out_off + (t * p.nq + h) * hd;
        for (var u = 0u; u < 2u; u++) {
            let pr = lane + 64u * u;
            if (pr < pairs) {
                let v = (sums[pr] + sums[128u + pr] + sums[256u + pr] + sums[384u + pr]) / l;
                act[ob + 2u * pr] = v.x;
                act[ob + 2u * pr + 1u] = v.y;
            }
        }
    }
}
