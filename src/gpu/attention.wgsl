// Causal attention of one query head at one position over the f16 KV cache, in tiles of
// 256 keys with a running max and sum (online softmax). Queries are rounded to f16 as
// ggml does before its f16 product with K.

struct P { n: u32, pos0: u32, hd: u32, nq: u32, group: u32, kvw: u32, window: u32, q_off: u32, out_off: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<u32>;
@group(0) @binding(3) var<storage, read> vc: array<u32>;

const TILE: u32 = 256u;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, TILE>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wid.x;
    let t = wid.y;
    let pos = p.pos0 + t;
    let hd = p.hd;
    let kvh = h / p.group;
    let qb = p.q_off + (t * p.nq + h) * hd;
    for (var i = li; i < hd; i += 64u) { qs[i] = f16r(act[qb + i]); }
    workgroupBarrier();
    var first = 0u;
    if (p.window > 0u && pos + 1u > p.window) { first = pos + 1u - p.window; }
    let keys = pos + 1u - first;
    var m = -1e30;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var k0 = 0u; k0 < keys; k0 += TILE) {
        let nk = min(TILE, keys - k0);
        var lmax = -1e30;
        for (var j = li; j < nk; j += 64u) {
            let kb = ((first + k0 + j) * p.kvw + kvh * hd) / 2u;
            var s = 0.0;
            for (var i = 0u; i < hd / 2u; i++) {
                let kk = unpack2x16float(kc[kb + i]);
                s += qs[2u * i] * kk.x + qs[2u * i + 1u] * kk.y;
            }
            sc[j] = s;
            lmax = max(lmax, s);
        }
        let mnew = max(m, wg_max(lmax, li));
        let alpha = exp(m - mnew);
        var lsum = 0.0;
        for (var j = li; j < nk; j += 64u) {
            let e = exp(sc[j] - mnew);
            sc[j] = e;
            lsum += e;
        }
        l = l * alpha + wg_sum(lsum, li);
        m = mnew;
        for (var u = 0u; u < 4u; u++) {
            let d = li + 64u * u;
            if (d < hd) {
                var a = acc[u] * alpha;
                let vb = (first + k0) * p.kvw + kvh * hd + d;
                for (var j = 0u; j < nk; j++) {
                    let e = vb + j * p.kvw;
                    a += sc[j] * unpack2x16float(vc[e >> 1u])[e & 1u];
                }
                acc[u] = a;
            }
        }
        workgroupBarrier();
    }
    for (var u = 0u; u < 4u; u++) {
        let d = li + 64u * u;
        if (d < hd) { act[p.out_off + (t * p.nq + h) * hd + d] = acc[u] / l; }
    }
}
