//! Each kernel's parameters: one `#[repr(C)]` struct per kernel, the same fields in the
//! same order as the `struct P` of its `.wgsl` file (a test holds every name, type and
//! offset to WGSL's uniform layout rules). `[u32; 4]` mirrors `vec4<u32>`: one value per
//! matrix of a fused mat-mul, indexed by the matrix in the shader.

/// "No such vector" in a kernel's parameters (a bias, q/k norms); `NONE` in the shaders.
pub const NONE: u32 = u32::MAX;

/// A kernel's parameter struct, with its field list kept for the WGSL mirror test.
macro_rules! uniforms {
    ($($(#[$doc:meta])* $name:ident ($file:literal) { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
            pub struct $name { $(pub $field: $ty),* }
        )*
        /// Every parameter struct: its WGSL file, and each field's name, Rust type and offset.
        #[cfg(test)]
        pub const ALL: &[(&str, &[(&str, &str, usize)])] = &[$(
            (include_str!($file), &[$((stringify!($field), stringify!($ty), std::mem::offset_of!($name, $field))),*]),
        )*];
    };
}

uniforms! {
    /// `matmul.wgsl`: up to three matrices over the same x̂ (see the file for the prologue).
    Matmul("matmul.wgsl") {
        n: u32, cols: u32, x_in: u32, x_out: u32,
        h_off: u32, post: u32, norm: u32, eps: f32,
        gx: u32, groups: u32, row_base: u32, _pad: u32,
        lo: [u32; 4], rows: [u32; 4], out_w: [u32; 4], out: [u32; 4], rb: [u32; 4], bias: [u32; 4],
    }
    /// `embed.wgsl`: the rows of one part of the table that the ids name.
    Embed("embed.wgsl") { n: u32, cols: u32, row_base: u32, rows: u32, rb: u32, scale: f32, out_off: u32 }
    /// `rope.wgsl`: q/k norms, rotary embedding and the cache write for one pass.
    Rope("rope.wgsl") {
        n: u32, pos0: u32, hd: u32, nq: u32, nkv: u32, q_off: u32, k_off: u32, v_off: u32,
        qn: u32, kn: u32, rope: u32, eps: f32, kvw: u32, adjacent: u32, slots: u32,
    }
    /// `attention.wgsl`: scores, softmax and values per head.
    Attention("attention.wgsl") {
        n: u32, pos0: u32, hd: u32, nq: u32, group: u32, kvw: u32, window: u32, q_off: u32,
        out_off: u32, scale: f32, cap: f32, slots: u32,
    }
    /// `topk.wgsl`, both passes.
    TopK("topk.wgsl") { n: u32, k: u32, groups: u32, src: u32, scratch: u32, dst: u32, temp: f32 }
    /// `softcap.wgsl`.
    Softcap("softcap.wgsl") { off: u32, n: u32, cap: f32 }
    /// `copy.wgsl`.
    Copy("copy.wgsl") { src: u32, dst: u32, n: u32 }
}

#[cfg(test)]
mod tests {
    /// `struct P`'s fields in a WGSL source: (name, type, offset by the uniform layout rules).
    fn wgsl_fields(src: &str) -> Vec<(String, String, usize)> {
        let body = src
            .split_once("struct P {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .expect("a `struct P { ... }`")
            .0;
        let mut offset = 0usize;
        body.split(',')
            .map(|f| {
                // Strip line comments before splitting the field.
                let f: String = f.lines().map(|l| l.split("//").next().unwrap()).collect();
                f.trim().to_owned()
            })
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (name, ty) = f.split_once(':').expect("name: type");
                let (name, ty) = (name.trim().to_owned(), ty.trim().to_owned());
                let (size, align) = match ty.as_str() {
                    "u32" | "f32" => (4, 4),
                    "vec4<u32>" => (16, 16),
                    other => panic!("a uniform of type {other}: add its layout here"),
                };
                offset = offset.next_multiple_of(align);
                let field = (name, ty, offset);
                offset += size;
                field
            })
            .collect()
    }

    #[test]
    fn every_parameter_struct_mirrors_its_wgsl_struct() {
        for (src, fields) in super::ALL {
            let wgsl = wgsl_fields(src);
            let rust: Vec<(String, String, usize)> = fields
                .iter()
                .map(|&(name, ty, off)| {
                    let ty = if ty == "[u32; 4]" { "vec4<u32>" } else { ty };
                    (name.to_owned(), ty.to_owned(), off)
                })
                .collect();
            assert_eq!(
                rust, wgsl,
                "a Rust parameter struct and its WGSL `struct P` differ"
            );
        }
    }

    #[test]
    fn the_layout_reader_applies_wgsl_alignment() {
        let f = wgsl_fields("struct P { a: u32, // x\n b: vec4<u32>, c: f32 }");
        assert_eq!(f[1], ("b".into(), "vec4<u32>".into(), 16));
        assert_eq!(f[2].2, 32);
    }
}
