// x = cap · tanh(x / cap) for `n` activations in place (Gemma 2's final logits). The
// argument is clamped: some drivers build tanh from exp, which overflows to NaN.

struct P { off: u32, n: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i < p.n) { act[p.off + i] = p.cap * tanh(clamp(act[p.off + i] / p.cap, -15.0, 15.0)); }
}
