//! The kernel interface on the GPU: each `Backend` call records its dispatches, with its
//! parameters as the kernel's struct in `uniforms` and its source from `shaders`.

use super::memory::Part;
use super::uniforms::{self, NONE};
use super::{shaders, Act, Gpu, Kv, Matrix, Vector, MAX_GRID};
use crate::backend::{AttnShape, Backend, Mix, Readback, RopeStyle, Span};
use crate::bail;
use crate::error::{Code, Error, Result};
use crate::gguf::{DType, TensorInfo};
use crate::weights::ModelBytes;
use std::sync::Arc;

/// Token rows one matmul workgroup handles (`TOK` in matmul.wgsl) in a prefill; a decode
/// step's single row gets its own build of the kernel.
const TOK: u32 = 4;

/// Splits `groups` workgroups over a 2-D grid within WebGPU's 65,535 per dimension.
fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(MAX_GRID);
    (x, groups.div_ceil(x))
}

impl Gpu {
    /// the activations at `x`, with the prologue and combination as in matmul.wgsl.
    #[allow(clippy::too_many_arguments)]
    fn matmul_dispatch(
        &mut self,
        x: &Act,
        x_out: Option<u32>,
        residual: Option<(&Act, Option<Vector>)>,
        norm: Option<(Vector, f32)>,
        ws: &[(&Matrix, &Part)],
        mix: Mix,
        outs: &[&Act],
    ) {
        self.prepare();
        let n = x.rows as u32;
        let (tok, per_group) = if n == 1 {
            (1, self.decode_rows)
        } else {
            (TOK, self.prefill_rows)
        };
        let rows = |i: usize| ws.get(i).map_or(0, |w| w.1.rows);
        let groups = |i: usize| rows(i).div_ceil(per_group as usize);
        let (g1, g2) = match mix {
            Mix::Each => (groups(0), groups(0) + groups(1)),
            Mix::GeluGate | Mix::SiluGate => (groups(0), groups(0)),
        };
        let total = match mix {
            Mix::Each => g2 + groups(2),
            Mix::GeluGate | Mix::SiluGate => groups(0),
        };
        let (gx, gy) = grid(total);
        let (h_off, post) =
            residual.map_or((0, 0), |(h, p)| (h.at(), p.map_or(0, |p| p.off as u32)));
        let (norm_off, eps) = norm.map_or((0, 0.0), |(v, e)| (v.off as u32, e));
        // Per matrix; a gate's one output serves both of its matrices.
        let each = |f: &dyn Fn(&Matrix, &Part, &Act) -> u32, absent: u32| {
            std::array::from_fn(|i| {
                ws.get(i)
                    .map_or(absent, |w| f(w.0, w.1, outs[i.min(outs.len() - 1)]))
            })
        };
        let params = uniforms::Matmul {
            n,
            cols: x.width as u32,
            x_in: x.at(),
            x_out: x_out.unwrap_or(0),
            h_off,
            post,
            norm: norm_off,
            eps,
            gx,
            groups: total as u32,
            row_base: ws[0].1.row0 as u32,
            lo: [0, g1 as u32, g2 as u32, total as u32],
            rows: each(&|_, part, _| part.rows as u32, 0),
            out_w: each(&|_, _, out| out.width as u32, 0),
            out: each(&|_, _, out| out.at(), 0),
            rb: each(&|w, _, _| w.row_bytes as u32, 0),
            bias: each(&|w, _, _| w.bias.map_or(NONE, |b| b.off as u32), NONE),
            ..Default::default()
        };
        let types: Vec<DType> = ws.iter().map(|w| w.0.dtype).collect();
        let (add, post_norm, normed) = (
            residual.is_some(),
            residual.is_some_and(|r| r.1.is_some()),
            norm.is_some(),
        );
        let key = format!("matmul {add} {post_norm} {normed} {mix:?} {types:?} {tok} {per_group}");
        let (arena, vecs) = (self.arena_buf(), self.vecs_buf());
        let mut buffers = vec![&arena, &vecs];
        buffers.extend(ws.iter().map(|w| &w.1.buf));
        self.dispatch(
            &key,
            || shaders::matmul(&types, add, post_norm, normed, mix, tok, per_group),
            &params,
            &buffers,
            (gx, gy, n.div_ceil(tok)),
        );
    }

    /// `out = x̂ · wᵀ` for one matrix of any size: one dispatch per part.
    fn matmul_parts(
        &mut self,
        x: &Act,
        x_out: Option<u32>,
        residual: Option<(&Act, Option<Vector>)>,
        norm: Option<(Vector, f32)>,
        w: &Matrix,
        out: &Act,
    ) {
        for part in &w.parts {
            self.matmul_dispatch(x, x_out, residual, norm, &[(w, part)], Mix::Each, &[out]);
        }
    }
}

impl Backend for Gpu {
    const DEVICE: crate::cost::Device = crate::cost::Device::Gpu;
    type Matrix = Matrix;
    type Vector = Vector;
    type Act = Act;
    type Kv = Kv;

    fn matrix(
        &mut self,
        file: &Arc<ModelBytes>,
        t: &TensorInfo,
        bias: Option<&[f32]>,
    ) -> Result<Matrix> {
        let parts = match self.early.remove(&(t.offset, t.bytes)) {
            Some(parts) => parts,
            None => self.parts(t, file.tensor_bytes(t))?,
        };
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let bias = bias.map(|b| self.vector(b)).transpose()?;
        let row_bytes = t.dims[0] / t.dtype.block() * t.dtype.block_bytes();
        Ok(Matrix {
            dtype: t.dtype,
            cols: t.dims[0],
            row_bytes,
            parts,
            bias,
        })
    }

    fn loaded(&mut self) {
        // Uploaded while streaming but not taken (a fused tensor the model splits).
        self.early.clear();
    }

    fn vector(&mut self, data: &[f32]) -> Result<Vector> {
        let off = self.vecs.host.len();
        if (off + data.len()) as u64 * 4 > self.max_binding {
            bail!(Code::ModelTooLarge, "the model's norm weights and rope tables exceed the GPU's {} MB binding; load it with a smaller contextLength", self.max_binding >> 20);
        }
        self.vecs.host.extend_from_slice(data);
        Ok(Vector { off })
    }

    fn act(&mut self, rows: usize, width: usize) -> Act {
        let off = self.arena.borrow_mut().alloc(2 * rows * width);
        Act {
            off,
            rows,
            width,
            half: 0,
            arena: self.arena.clone(),
        }
    }

    fn kv_cache(&mut self, slots: usize, width: usize) -> Result<Kv> {
        let bytes = (slots * width * 2) as u64;
        if bytes > self.max_binding {
            bail!(Code::ModelTooLarge, "a {slots}-position KV cache exceeds the GPU's {} MB binding; load with a smaller contextLength", self.max_binding >> 20);
        }
        Ok(Kv {
            k: self.storage("k cache", bytes),
            v: self.storage("v cache", bytes),
            width,
            slots,
        })
    }

    fn embed(&mut self, table: &Matrix, ids: &[u32], scale: f32, out: &mut Act) {
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        if self
            .ids_buf
            .as_ref()
            .is_none_or(|b| b.size() < bytes.len() as u64)
        {
            self.ids_buf = Some(self.storage("ids", (bytes.len() as u64).next_power_of_two()));
        }
        let ids_buf = self.ids_buf.clone().unwrap();
        // Ids are written before this submission's commands run: one embed per submission.
        self.upload(&ids_buf, &bytes);
        self.prepare();
        let arena = self.arena_buf();
        let chunks = (table.cols / 32) as u32;
        for part in &table.parts {
            let params = uniforms::Embed {
                n: ids.len() as u32,
                cols: table.cols as u32,
                row_base: part.row0 as u32,
                rows: part.rows as u32,
                rb: table.row_bytes as u32,
                scale,
                out_off: out.at(),
            };
            let key = format!("embed {:?}", table.dtype);
            self.dispatch(
                &key,
                || shaders::embed(table.dtype),
                &params,
                &[&ids_buf, &part.buf, &arena],
                (chunks.div_ceil(64), ids.len() as u32, 1),
            );
        }
    }

    fn norm_matmul(
        &mut self,
        x: &mut Act,
        residual: Option<(&Act, Option<&Vector>)>,
        norm: &Vector,
        eps: f32,
        ws: &[&Matrix],
        mix: Mix,
        outs: &mut [&mut Act],
    ) {
        let x_out = residual.map(|_| x.other());
        let residual = residual.map(|(h, p)| (h, p.copied()));
        let norm = Some((*norm, eps));
        let outs: Vec<&Act> = outs.iter().map(|o| &**o).collect();
        if ws.iter().all(|w| w.parts.len() == 1) && ws.len() <= 3 {
            let parts: Vec<(&Matrix, &Part)> = ws.iter().map(|w| (*w, &w.parts[0])).collect();
            self.matmul_dispatch(x, x_out, residual, norm, &parts, mix, &outs);
        } else {
            // A split matrix (an output projection larger than one binding) goes part by part.
            if mix != Mix::Each {
                self.fail(Error::new(
                    Code::UnsupportedQuantization,
                    "a gated MLP matrix larger than one GPU binding is not supported",
                ));
                return;
            }
            for (w, out) in ws.iter().zip(&outs) {
                self.matmul_parts(x, x_out, residual, norm, w, out);
            }
        }
        if residual.is_some() {
            x.half = x.rows * x.width - x.half;
        }
    }

    fn matmul(&mut self, w: &Matrix, x: &Act, out: &mut Act) {
        self.matmul_parts(x, None, None, None, w, out);
    }

    fn attention(
        &mut self,
        q: &mut Act,
        k: &Act,
        v: &Act,
        norms: Option<(&Vector, &Vector)>,
        eps: f32,
        rope: &Vector,
        kv: &mut Kv,
        pos0: usize,
        s: AttnShape,
        out: &mut Act,
    ) {
        self.prepare();
        let (arena, vecs) = (self.arena_buf(), self.vecs_buf());
        let n = q.rows as u32;
        let hd = s.head_dim as u32;
        let (qn, kn) = norms.map_or((NONE, NONE), |(q, k)| (q.off as u32, k.off as u32));
        let adjacent = (s.rope == RopeStyle::Adjacent) as u32;
        let params = uniforms::Rope {
            n,
            pos0: pos0 as u32,
            hd,
            nq: s.n_heads as u32,
            nkv: s.n_kv_heads as u32,
            q_off: q.at(),
            k_off: k.at(),
            v_off: v.at(),
            qn,
            kn,
            rope: rope.off as u32,
            eps,
            kvw: kv.width as u32,
            adjacent,
            slots: kv.slots as u32,
        };
        self.dispatch(
            "rope",
            shaders::rope,
            &params,
            &[&arena, &vecs, &kv.k, &kv.v],
            ((s.n_heads + 2 * s.n_kv_heads) as u32, n, 1),
        );
        let window = match s.span {
            Span::Global => 0,
            Span::Window(w) => w as u32,
        };
        let params = uniforms::Attention {
            n,
            pos0: pos0 as u32,
            hd,
            nq: s.n_heads as u32,
            group: (s.n_heads / s.n_kv_heads) as u32,
            kvw: kv.width as u32,
            window,
            q_off: q.at(),
            out_off: out.at(),
            scale: s.scale,
            cap: s.softcap,
            slots: kv.slots as u32,
        };
        self.dispatch(
            "attention",
            shaders::attention,
            &params,
            &[&arena, &kv.k, &kv.v],
            (s.n_heads as u32, n, 1),
        );
    }

    fn top_k(&mut self, x: &Act, k: usize, temp: f32, out: &mut Act) {
        // Slices of at least 4096 logits, at most 64 of them (the second pass merges 64 × k).
        let n = x.width;
        let groups = n.div_ceil(4096).clamp(1, 64);
        let scratch = self.act(1, groups * (2 * k + 2));
        self.prepare();
        let arena = self.arena_buf();
        let params = uniforms::TopK {
            n: n as u32,
            k: k as u32,
            groups: groups as u32,
            src: x.at(),
            scratch: scratch.at(),
            dst: out.at(),
            temp,
        };
        self.dispatch(
            "topk slices",
            || shaders::top_k(false),
            &params,
            &[&arena],
            (groups as u32, 1, 1),
        );
        self.dispatch(
            "topk merge",
            || shaders::top_k(true),
            &params,
            &[&arena],
            (1, 1, 1),
        );
    }

    fn softcap(&mut self, x: &mut Act, cap: f32) {
        self.prepare();
        let arena = self.arena_buf();
        let n = (x.rows * x.width) as u32;
        let params = uniforms::Softcap {
            off: x.at(),
            n,
            cap,
        };
        let (gx, gy) = grid(n.div_ceil(64) as usize);
        self.dispatch("softcap", shaders::softcap, &params, &[&arena], (gx, gy, 1));
    }

    fn last_row(&mut self, x: &Act) -> Act {
        let row = self.act(1, x.width);
        self.prepare();
        let arena = self.arena_buf();
        let params = uniforms::Copy {
            src: x.at() + ((x.rows - 1) * x.width) as u32,
            dst: row.at(),
            n: x.width as u32,
        };
        self.dispatch(
            "copy",
            shaders::copy,
            &params,
            &[&arena],
            ((x.width as u32).div_ceil(64), 1, 1),
        );
        row
    }

    fn read(&mut self, x: &Act) -> Readback {
        self.read_back(x)
    }
}
