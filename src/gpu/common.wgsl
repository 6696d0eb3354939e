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

// WGSL lets pack2x16float round either way (NVIDIA's Vulkan driver truncates): round to
// nearest even first, so every adapter stores the f16 the CPU stores. f16 subnormals,
// infinities and NaN are left to the hardware.
fn rne16(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    let e = (b >> 23u) & 0xffu;
    if (e < 113u || e == 255u) { return x; }
    return bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u);
}

fn pack_f16(v: vec2<f32>) -> u32 { return pack2x16float(vec2<f32>(rne16(v.x), rne16(v.y))); }

// Rounds to f16 and back, where ggml's CPU path rounds (KV cache, queries, GELU).
fn f16r(x: f32) -> f32 { return unpack2x16float(pack_f16(vec2<f32>(x, 0.0))).x; }
