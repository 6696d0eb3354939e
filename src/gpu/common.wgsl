// Workgroup reductions shared by the kernels (64 invocations; no subgroups, which
// WebGPU does not promise). Call from uniform control flow only.

var<workgroup> part: array<f32, 64>;

fn wg_sum(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (li < s) { part[li] += part[li + s]; }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (li < s) { part[li] = max(part[li], part[li + s]); }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

// Rounds to f16 and back, where ggml's CPU path rounds (KV cache, queries, GELU).
fn f16r(x: f32) -> f32 { return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x; }
