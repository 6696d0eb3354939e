// out[t] = table[ids[t]] · scale for the ids whose rows live in this part of the table;
// one invocation per 32-value chunk. The host appends quant.wgsl's readers for w0 and
// names the one for the table's type in the DQ placeholder.

struct P { n: u32, cols: u32, row_base: u32, rows: u32, rb: u32, scale: f32, out_off: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w0: array<u32>;
@group(0) @binding(3) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let t = gid.y;
    if (c >= p.cols / 32u || t >= p.n) { return; }
    let id = ids[t];
    if (id < p.row_base || id >= p.row_base + p.rows) { return; }
    var w: array<f32, 32>;
    {{DQ}}((id - p.row_base) * p.rb, c, &w);
    for (var j = 0u; j < 32u; j++) { act[p.out_off + t * p.cols + c * 32u + j] = w[j] * p.scale; }
}
