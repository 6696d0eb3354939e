// Per-head RMS norm (unless qn is NONE) and rotary embedding of q (in place) and k (into
// the f16 cache), and v into the cache: one workgroup per head and position. Rope pairs
// dimensions (j, j + half) or, when `adjacent`, (2j, 2j + 1).

struct P { n: u32, pos0: u32, hd: u32, nq: u32, nkv: u32, q_off: u32, k_off: u32, v_off: u32, qn: u32, kn: u32, rope: u32, eps: f32, kvw: u32, adjacent: u32, slots: u32 }
const NONE: u32 = 0xffffffffu;
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;
@group(0) @binding(2) var<storage, read> vecs: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<u32>;
@group(0) @binding(4) var<storage, read_write> vc: array<u32>;

// Dimension `i` of a head after its RMS norm (`scale`, weights at `nw`), when the model
// has q/k norms.
fn normed(x: f32, scale: f32, nw: u32, i: u32) -> f32 {
    if (p.qn == NONE) { return x; }
    return x * scale * vecs[nw + i];
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let head = wid.x;
    let t = wid.y;
    let pos = p.pos0 + t;
    let hd = p.hd;
    let half = hd / 2u;
    if (head >= p.nq + p.nkv) {
        let vh = head - p.nq - p.nkv;
        let src = p.v_off + (t * p.nkv + vh) * hd;
        let dst = ((pos % p.slots) * p.kvw + vh * hd) / 2u;
        for (var m = li; m < half; m += 64u) {
            vc[dst + m] = pack_f16(vec2<f32>(act[src + 2u * m], act[src + 2u * m + 1u]));
        }
        return;
    }
    let is_q = head < p.nq;
    var base = p.k_off + (t * p.nkv + head - p.nq) * hd;
    var nw = p.kn;
    if (is_q) {
        base = p.q_off + (t * p.nq + head) * hd;
        nw = p.qn;
    }
    var s = 0.0;
    for (var i = li; i < hd; i += 64u) { let x = act[base + i]; s += x * x; }
    let scale = inverseSqrt(wg_sum(s, li) / f32(hd) + p.eps);
    let rt = p.rope + pos * hd;
    let kdst = ((pos % p.slots) * p.kvw + (head - p.nq) * hd) / 2u;
    if (p.adjacent != 0u) {
        for (var j = li; j < half; j += 64u) {
            let a = normed(act[base + 2u * j], scale, nw, 2u * j);
            let b = normed(act[base + 2u * j + 1u], scale, nw, 2u * j + 1u);
            let c = vecs[rt + j];
            let sn = vecs[rt + half + j];
            let r = vec2<f32>(a * c - b * sn, a * sn + b * c);
            if (is_q) {
                act[base + 2u * j] = r.x;
                act[base + 2u * j + 1u] = r.y;
            } else {
                kc[kdst + j] = pack_f16(r);
            }
        }
        return;
    }
    for (var m = li; m < half / 2u; m += 64u) {
        var ra: vec2<f32>;
        var rb: vec2<f32>;
        for (var e = 0u; e < 2u; e++) {
            let j = 2u * m + e;
            let a = normed(act[base + j], scale, nw, j);
            let b = normed(act[base + j + half], scale, nw, j + half);
            let c = vecs[rt + j];
            let sn = vecs[rt + half + j];
            ra[e] = a * c - b * sn;
            rb[e] = a * sn + b * c;
        }
        if (is_q) {
            act[base + 2u * m] = ra.x;
            act[base + 2u * m + 1u] = ra.y;
            act[base + half + 2u * m] = rb.x;
            act[base + half + 2u * m + 1u] = rb.y;
        } else {
            kc[kdst + m] = pack_f16(ra);
            kc[kdst + half / 2u + m] = pack_f16(rb);
        }
    }
}
