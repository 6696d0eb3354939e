// Workgroup reductions shared by the kernels (64 invocations; no subgroups, which
// WebGPU does not promise). Call from uniform control flow only. Every invocation sums
// the 64 partials itself: two barriers instead of a tree's eight, which matters where a
// barrier is a context switch (lavapipe, SwiftShader).

var<workgroup> part: array<f32, 64>;

fn wg_sum(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    var r = 0.0;
    for (var i = 0u; i < 64u; i++) { r += part[i]; }
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, li: u32) -> f32 {
    part[li] = v;
    workgroupBarrier();
    var r = part[0];
    for (var i = 1u; i < 64u; i++) { r = max(r, part[i]); }
    workgroupBarrier();
    return r;
}

// Rounds to f16 and back, where ggml's CPU path rounds (KV cache, queries, GELU).
fn f16r(x: f32) -> f32 { return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x; }
