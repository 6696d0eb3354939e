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
    // Each invocation owns value dimensions (2·pr, 2·pr + 1) for pr = li and li + 64, so
    // one u32 load reads both halves and a key's loads are independent of each other
    // (a loop of dependent loads over the keys is latency bound on a real GPU).
    var acc: array<vec2<f32>, 2>;
    let pairs = hd / 2u;
    for (var k0 = 0u; k0 < keys; k0 += TILE) {
        let nk = min(TILE, keys - k0);
        var lmax = -1e30;
        for (var j = li; j < nk; j += 64u) {
            let kb = ((first + k0 + j) * p.kvw + kvh * hd) / 2u;
            var s = 0.0;
            for (var i = 0u; i < pairs; i += 4u) { // head sizes are multiples of 8
                let c0 = unpack2x16float(kc[kb + i]);
                let c1 = unpack2x16float(kc[kb + i + 1u]);
                let c2 = unpack2x16float(kc[kb + i + 2u]);
                let c3 = unpack2x16float(kc[kb + i + 3u]);
                let q = 2u * i;
                s += qs[q] * c0.x + qs[q + 1u] * c0.y + qs[q + 2u] * c1.x + qs[q + 3u] * c1.y
                    + qs[q + 4u] * c2.x + qs[q + 5u] * c2.y + qs[q + 6u] * c3.x + qs[q + 7u] * c3.y;
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
        acc[0] *= alpha;
        acc[1] *= alpha;
        let vb = ((first + k0) * p.kvw + kvh * hd) / 2u;
        let stride = p.kvw / 2u;
        var j = 0u;
        for (; j + 4u <= nk; j += 4u) {
            let e = vb + j * stride;
            for (var u = 0u; u < 2u; u++) {
                let pr = e + li + 64u * u;
                if (li + 64u * u < pairs) {
                    acc[u] += sc[j] * unpack2x16float(vc[pr]) + sc[j + 1u] * unpack2x16float(vc[pr + stride])
                        + sc[j + 2u] * unpack2x16float(vc[pr + 2u * stride]) + sc[j + 3u] * unpack2x16float(vc[pr + 3u * stride]);
                }
            }
        }
        for (; j < nk; j++) {
            let e = vb + j * stride;
            for (var u = 0u; u < 2u; u++) {
                if (li + 64u * u < pairs) { acc[u] += sc[j] * unpack2x16float(vc[e + li + 64u * u]); }
            }
        }
        workgroupBarrier();
    }
    let ob = p.out_off + (t * p.nq + h) * hd;
    for (var u = 0u; u < 2u; u++) {
        let pr = li + 64u * u;
        if (pr < pairs) {
            act[ob + 2u * pr] = acc[u].x / l;
            act[ob + 2u * pr + 1u] = acc[u].y / l;
        }
    }
}
