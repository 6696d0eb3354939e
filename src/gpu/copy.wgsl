// Copies `n` activations inside the arena (WebGPU forbids a buffer copy onto itself).

struct P { src: u32, dst: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.n) { act[p.dst + gid.x] = act[p.src + gid.x]; }
}
