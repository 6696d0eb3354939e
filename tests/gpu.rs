//! The WebGPU backend's kernels against the CPU's, natively through wgpu on Vulkan (Mesa's
//! lavapipe in `./build.sh test`, which sets OUVERT_REQUIRE_GPU=1 so a missing adapter
//! fails instead of skipping), and the whole model on the GPU against llama.cpp.

mod common;
use candle_core::quantized::k_quants::*;
use common::gguf::tiny_gemma3;
use common::*;
use half::{bf16, f16};
use ouvert::backend::{AttnShape, Backend, Mix, RopeStyle, Span};
use ouvert::cpu::{quant::QMatrix, Cpu};
use ouvert::engine::{block_on, Engine, Event, GenerateOptions};
use ouvert::gguf::{DType, TensorInfo};
use ouvert::gpu::{Gpu, StreamingUpload};
use ouvert::models::MAX_ROWS;
use ouvert::sampler::{argmax, SamplerConfig, TopLogits};
use ouvert::weights::ModelBytes;
use std::sync::Arc;

fn blocks_bytes<T: GgmlType>(xs: &[f32]) -> Vec<u8> {
    let mut b = vec![T::zeros(); xs.len() / T::BLCK_SIZE];
    T::from_float(xs, &mut b);
    // SAFETY: candle's block types are plain data.
    unsafe {
        std::slice::from_raw_parts(b.as_ptr() as *const u8, std::mem::size_of_val(b.as_slice()))
    }
    .to_vec()
}

/// `values` quantized to `dtype`, as GGUF stores it.
fn quantize(dtype: DType, values: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect(),
        DType::Q4_0 => blocks_bytes::<BlockQ4_0>(values),
        DType::Q4_1 => blocks_bytes::<BlockQ4_1>(values),
        DType::Q5_0 => blocks_bytes::<BlockQ5_0>(values),
        DType::Q5_1 => blocks_bytes::<BlockQ5_1>(values),
        DType::Q8_0 => blocks_bytes::<BlockQ8_0>(values),
        DType::Q2K => blocks_bytes::<BlockQ2K>(values),
        DType::Q3K => blocks_bytes::<BlockQ3K>(values),
        DType::Q4K => blocks_bytes::<BlockQ4K>(values),
        DType::Q5K => blocks_bytes::<BlockQ5K>(values),
        DType::Q6K => blocks_bytes::<BlockQ6K>(values),
        DType::Q8K => blocks_bytes::<BlockQ8K>(values),
    }
}

const ALL: [DType; 14] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q8_0,
    DType::Q2K,
    DType::Q3K,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
    DType::Q8K,
];

/// A random `[rows × cols]` matrix of `dtype` in a file of its own.
fn matrix(dtype: DType, rows: usize, cols: usize, seed: u64) -> (Arc<ModelBytes>, TensorInfo) {
    let bytes = quantize(dtype, &random(rows * cols, seed));
    let t = TensorInfo {
        name: format!("{dtype:?}"),
        dims: vec![cols, rows],
        dtype,
        offset: 0,
        bytes: bytes.len(),
    };
    (Arc::new(ModelBytes::from_slice(&bytes).unwrap()), t)
}

/// The CPU's dequantization of every row.
fn dequantized(file: &Arc<ModelBytes>, t: &TensorInfo) -> Vec<f32> {
    let mut cpu = Cpu;
    let q: QMatrix = cpu.matrix(file, t, None).unwrap();
    let mut out = vec![0f32; q.rows * q.cols];
    for (r, row) in out.chunks_exact_mut(q.cols).enumerate() {
        q.dequantize_row(r, row);
    }
    out
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want
        .iter()
        .fold(0f64, |m, v| m.max(v.abs() as f64))
        .max(1e-12);
    got.iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()))
        / scale
}

fn matmul_ref(w: &[f32], x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks_exact(cols)
        .flat_map(|xr| {
            w.chunks_exact(cols).map(move |wr| {
                wr.iter()
                    .zip(xr)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>() as f32
            })
        })
        .collect()
}

#[test]
fn matmul_every_type_matches_cpu_dequantization() {
    let Some(mut g) = gpu() else { return };
    // Wider than one staged slice of x (1024 columns in a decode step), rows not a
    // multiple of any workgroup's; a decode step with each workgroup shape.
    let (rows, cols) = (76, 1280);
    for dtype in ALL {
        let (file, t) = matrix(dtype, rows, cols, dtype as u64 + 1);
        let w = dequantized(&file, &t);
        let m = g.matrix(&file, &t, None).unwrap();
        for (n, group_rows) in [(1, 2), (1, 8), (1, 64), (6, 8), (6, 64)] {
            g.set_group_rows(group_rows, group_rows);
            let xs = random(n * cols, 99);
            let x = g.act_from(&xs, n, cols);
            let mut out = g.act(n, rows);
            g.matmul(&m, &x, &mut out);
            let got = block_on(g.read(&out)).unwrap();
            let err = rel_err(&got, &matmul_ref(&w, &xs, cols));
            eprintln!("{dtype:?} n={n}, {group_rows} rows per workgroup: relative error {err:.2e}");
            assert!(err < 1e-3, "{dtype:?} with {n} rows: relative error {err}");
        }
    }
}

#[test]
fn embedding_rows_match_cpu() {
    let Some(mut g) = gpu() else { return };
    for dtype in [DType::Q8_0, DType::Q6K, DType::F16] {
        let (file, t) = matrix(dtype, 40, 256, 7);
        let w = dequantized(&file, &t);
        let m = g.matrix(&file, &t, None).unwrap();
        let ids = [3u32, 39, 0, 3];
        let mut out = g.act(ids.len(), 256);
        g.embed(&m, &ids, 1.5, &mut out);
        let got = block_on(g.read(&out)).unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&i| w[i as usize * 256..][..256].iter().map(|v| v * 1.5))
            .collect();
        assert!(rel_err(&got, &want) < 1e-6, "{dtype:?}");
    }
}

/// The fused steps on F32 weights, where the CPU computes exactly what the GPU does.
#[test]
fn fused_steps_match_cpu() {
    let Some(mut g) = gpu() else { return };
    let mut c = Cpu;
    let (d, ffn, n, eps) = (256, 512, 5, 1e-6);
    let mats: Vec<_> = [(ffn, d), (ffn, d), (d, d), (64, d)]
        .iter()
        .enumerate()
        .map(|(i, &(r, k))| matrix(DType::F32, r, k, 10 + i as u64))
        .collect();
    let gm: Vec<_> = mats
        .iter()
        .map(|(f, t)| g.matrix(f, t, None).unwrap())
        .collect();
    let cm: Vec<_> = mats
        .iter()
        .map(|(f, t)| c.matrix(f, t, None).unwrap())
        .collect();
    let (xs, hs) = (random(n * d, 1), random(n * d, 2));
    let (post, norm) = (random(d, 3), random(d, 4));
    let (gpost, gnorm) = (g.vector(&post).unwrap(), g.vector(&norm).unwrap());
    let (cpost, cnorm) = (c.vector(&post).unwrap(), c.vector(&norm).unwrap());

    // Residual + norm + gate/up + GELU.
    let (mut gx, gh) = (g.act_from(&xs, n, d), g.act_from(&hs, n, d));
    let mut gout = g.act(n, ffn);
    g.norm_matmul(
        &mut gx,
        Some((&gh, Some(&gpost))),
        &gnorm,
        eps,
        &[&gm[0], &gm[1]],
        Mix::GeluGate,
        &mut [&mut gout],
    );
    let mut cx = ouvert::cpu::Act {
        data: xs.clone(),
        rows: n,
        width: d,
    };
    let ch = ouvert::cpu::Act {
        data: hs.clone(),
        rows: n,
        width: d,
    };
    let mut cout = c.act(n, ffn);
    c.norm_matmul(
        &mut cx,
        Some((&ch, Some(&cpost))),
        &cnorm,
        eps,
        &[&cm[0], &cm[1]],
        Mix::GeluGate,
        &mut [&mut cout],
    );
    let err = rel_err(&block_on(g.read(&gout)).unwrap(), &cout.data);
    assert!(err < 1e-3, "gelu gate: {err}");
    let err = rel_err(&block_on(g.read(&gx)).unwrap(), &cx.data);
    assert!(err < 1e-5, "residual: {err}");

    // Norm + three matrices of different sizes in one dispatch.
    let (mut o1, mut o2, mut o3) = (g.act(n, ffn), g.act(n, d), g.act(n, 64));
    g.norm_matmul(
        &mut gx,
        None,
        &gnorm,
        eps,
        &[&gm[0], &gm[2], &gm[3]],
        Mix::Each,
        &mut [&mut o1, &mut o2, &mut o3],
    );
    let (mut c1, mut c2, mut c3) = (c.act(n, ffn), c.act(n, d), c.act(n, 64));
    c.norm_matmul(
        &mut cx,
        None,
        &cnorm,
        eps,
        &[&cm[0], &cm[2], &cm[3]],
        Mix::Each,
        &mut [&mut c1, &mut c2, &mut c3],
    );
    for (got, want) in [(&o1, &c1), (&o2, &c2), (&o3, &c3)] {
        let err = rel_err(&block_on(g.read(got)).unwrap(), &want.data);
        assert!(err < 1e-3, "norm matmul: {err}");
    }
}

#[test]
fn attention_matches_cpu() {
    let Some(mut g) = gpu() else { return };
    let mut c = Cpu;
    let (heads, kv_heads, hd, ctx) = (4, 2, 128, 700);
    let (qn, kn) = (random(hd, 5), random(hd, 6));
    let rope = ouvert::models::rope_table(10_000.0, hd, ctx, 1.0, None);
    let (gqn, gkn, grope) = (
        g.vector(&qn).unwrap(),
        g.vector(&kn).unwrap(),
        g.vector(&rope).unwrap(),
    );
    let (cqn, ckn, crope) = (
        c.vector(&qn).unwrap(),
        c.vector(&kn).unwrap(),
        c.vector(&rope).unwrap(),
    );
    for span in [Span::Global, Span::Window(300)] {
        let shape = AttnShape {
            n_heads: heads,
            n_kv_heads: kv_heads,
            head_dim: hd,
            span,
            rope: RopeStyle::Halves,
            scale: 1.0,
            softcap: 0.0,
        };
        // The sliding layer's GPU cache is a ring (window + 255 slots), wrapped here; the
        // CPU's holds every position (the two agree bit for bit on the CPU: tests/engine.rs).
        let slots = match span {
            Span::Global => ctx,
            Span::Window(w) => w + MAX_ROWS - 1,
        };
        let mut gkv = g.kv_cache(slots, kv_heads * hd).unwrap();
        let mut ckv = c.kv_cache(ctx, kv_heads * hd).unwrap();
        // Prompt slices (three key tiles, past the window), then decode steps.
        for (pos0, n) in [(0, 256), (256, 256), (512, 88), (600, 1), (601, 1)] {
            let seed = pos0 as u64 * 3;
            let (q, k, v) = (
                random(n * heads * hd, seed + 1),
                random(n * kv_heads * hd, seed + 2),
                random(n * kv_heads * hd, seed + 3),
            );
            let mut gq = g.act_from(&q, n, heads * hd);
            let (gk, gv) = (
                g.act_from(&k, n, kv_heads * hd),
                g.act_from(&v, n, kv_heads * hd),
            );
            let mut gout = g.act(n, heads * hd);
            g.attention(
                &mut gq,
                &gk,
                &gv,
                Some((&gqn, &gkn)),
                1e-6,
                &grope,
                &mut gkv,
                pos0,
                shape,
                &mut gout,
            );
            let mut cq = ouvert::cpu::Act {
                data: q,
                rows: n,
                width: heads * hd,
            };
            let ck = ouvert::cpu::Act {
                data: k,
                rows: n,
                width: kv_heads * hd,
            };
            let cv = ouvert::cpu::Act {
                data: v,
                rows: n,
                width: kv_heads * hd,
            };
            let mut cout = c.act(n, heads * hd);
            c.attention(
                &mut cq,
                &ck,
                &cv,
                Some((&cqn, &ckn)),
                1e-6,
                &crope,
                &mut ckv,
                pos0,
                shape,
                &mut cout,
            );
            let err = rel_err(&block_on(g.read(&gout)).unwrap(), &cout.data);
            eprintln!("{span:?} at {pos0}: relative error {err:.2e}");
            assert!(err < 1e-3, "{span:?} at {pos0}: {err}");
        }
    }
}

/// Top-k on the GPU gives the host's ids and values exactly (ties to the lower id), and
/// the log-normalizer to f32 rounding: a whole vocabulary, a row shorter than k, and ties.
#[test]
fn top_k_matches_the_host() {
    let Some(mut g) = gpu() else { return };
    let mut tied = random(5000, 9);
    tied.iter_mut().for_each(|v| *v = (*v * 8.0).round());
    let rows = [
        (
            random(262_144, 7)
                .into_iter()
                .map(|v| v * 30.0)
                .collect::<Vec<_>>(),
            "vocabulary",
        ),
        (random(40, 8), "short"),
        (tied, "ties"),
    ];
    for (row, what) in &rows {
        for (k, temp) in [(1, 1.0), (40, 0.7), (64, 1.0)] {
            let x = g.act_from(row, 1, row.len());
            let mut out = g.act(1, 2 * k + 1);
            g.top_k(&x, k, temp, &mut out);
            let got = TopLogits::from_row(&block_on(g.read(&out)).unwrap(), row.len(), temp);
            let want = TopLogits::of(row, k, temp);
            assert_eq!(
                (&got.ids, &got.values),
                (&want.ids, &want.values),
                "{what}, k = {k}"
            );
            let err = ((got.log_norm - want.log_norm) / want.log_norm).abs();
            assert!(
                err < 1e-5,
                "{what}, k = {k}: log-normalizer {} vs {}",
                got.log_norm,
                want.log_norm
            );
        }
    }
}

/// The default model on the GPU: logits close to the CPU's, greedy tokens equal to
/// llama.cpp's up to its first near tie (0.25 margin), and the dispatch budget.
#[test]
fn model_on_gpu_matches_llama_cpp() {
    let Some(g) = gpu() else { return };
    let dispatches = g.dispatch_counter();
    let bytes = std::fs::read(model_path()).unwrap();
    let mut gpu = Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap();

    // One greedy decode step: six dispatches per layer, a few around them (embedding,
    // last rows, output projection, the two top-k passes).
    let opts = GenerateOptions {
        max_tokens: 3,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    let mut run = gpu.start(&[2u32, 818, 5279], opts).unwrap();
    while !matches!(gpu.step(&mut run).unwrap(), Event::Piece(_)) {}
    let before = dispatches.load(std::sync::atomic::Ordering::Relaxed);
    gpu.step(&mut run).unwrap();
    let step = dispatches.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!("one decode step: {step} dispatches (18 layers)");
    assert!(step <= 18 * 6 + 8, "{step} dispatches for one token");

    let mut cpu = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap();
    let reference = reference();
    let limit: usize = std::env::var("OUVERT_GPU_PROMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    for p in reference["prompts"].as_array().unwrap().iter().take(limit) {
        let id = p["id"].as_str().unwrap();
        let r = &p["llama_cpp"];
        let prompt = ids(&r["prompt_ids"]);
        let gl = gpu.logits(&prompt).unwrap();
        let cl = cpu.logits(&prompt).unwrap();
        let top5: Vec<(usize, f64)> = r["top5_first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_u64().unwrap() as usize,
                    t["logit"].as_f64().unwrap(),
                )
            })
            .collect();
        let worst = top5
            .iter()
            .map(|&(t, want)| (gl[t] as f64 - want).abs())
            .fold(0.0, f64::max);
        let vs_cpu = gl
            .iter()
            .zip(&cl)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let margins = margins(&r["step_margin"]);
        let want = ids(&r["greedy_ids"]);
        let n = must_match(&margins, 0.25).min(want.len());
        let opts = GenerateOptions {
            max_tokens: n.max(1),
            sampler: SamplerConfig::greedy(),
            stop_at_eos: false,
            ..Default::default()
        };
        let got = gpu.generate(&prompt, &opts, &mut |_| true).unwrap().tokens;
        eprintln!("{id:18} GPU top-5 logits off llama.cpp by ≤{worst:.3}, off the CPU by ≤{vs_cpu:.3}; {n} greedy tokens compared");
        assert_eq!(argmax(&gl), got[0], "{id}");
        assert!(
            worst < 0.75,
            "{id}: GPU first-position logits off llama.cpp by {worst}"
        );
        assert_eq!(
            &got[..n],
            &want[..n],
            "{id}: GPU greedy tokens differ from llama.cpp"
        );
    }
}

/// Weights uploaded as the file arrives (`StreamingUpload`) are the ones the model runs on:
/// the same logits, bit for bit, as weights uploaded at load; they go up as their bytes
/// arrive, not after the file.
#[test]
fn weights_streamed_to_the_gpu_as_the_file_arrives_give_the_same_logits() {
    let (Some(streamed), Some(at_load)) = (gpu(), gpu()) else {
        return;
    };
    let bytes = std::fs::read(model_path()).unwrap();
    let g = ouvert::gguf::Gguf::parse(&bytes).unwrap();
    let matrices: usize = g
        .tensors
        .iter()
        .filter(|t| t.dims.len() >= 2)
        .map(|t| t.bytes)
        .sum();
    let mut up = StreamingUpload::new(streamed);
    let mut watch = ouvert::gguf::HeaderWatch::new(bytes.len());
    let chunk = 1 << 20;
    let mut before_last = 0;
    for end in (chunk..bytes.len()).step_by(chunk).chain([bytes.len()]) {
        before_last = up.uploaded();
        if let Some(header) = watch.offer(&bytes[..end]) {
            up.expect(&header.tensors);
        }
        up.offer(&bytes[..end]);
    }
    assert!(
        before_last > matrices / 2,
        "only {before_last} of {matrices} bytes went up before the last chunk"
    );
    let streamed = up.finish();
    assert_eq!(
        streamed.early_bytes, matrices,
        "every matrix went up while the file arrived"
    );
    let prompt = [2u32, 818, 5279, 529, 7001, 563];
    let got = Engine::load_on(streamed, ModelBytes::from_slice(&bytes).unwrap(), 64)
        .unwrap()
        .logits(&prompt)
        .unwrap();
    let want = Engine::load_on(at_load, ModelBytes::from_slice(&bytes).unwrap(), 64)
        .unwrap()
        .logits(&prompt)
        .unwrap();
    assert!(got == want, "streamed weights give other logits");
}

/// A device lost mid-request fails that request with `webgpu_lost`; the engine moved to
/// the CPU then gives the CPU's results.
#[test]
fn lost_device_fails_cleanly_and_the_cpu_takes_over() {
    let Some(g) = gpu() else { return };
    let destroy = g.destroyer();
    let bytes = std::fs::read(model_path()).unwrap();
    let mut e = Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 64).unwrap();
    let prompt = [2u32, 818, 5279, 529];
    e.logits(&prompt[..2]).unwrap();
    destroy();
    assert_eq!(e.logits(&prompt).unwrap_err().code, "webgpu_lost");
    e.use_backend(Cpu).unwrap();
    let want = Engine::load(ModelBytes::from_slice(&bytes).unwrap(), 64)
        .unwrap()
        .logits(&prompt)
        .unwrap();
    assert_eq!(e.logits(&prompt).unwrap(), want);
}

/// GPU time per dispatch of the kernels a Gemma 3 270M decode step runs: `reps` dispatches
/// between two readbacks, less one dispatch's round trip, over `reps - 1`.
#[test]
#[ignore = "timing probe, run by hand"]
fn probe_kernel_times() {
    let Some(mut g) = gpu() else { return };
    eprintln!("adapter: {}", g.adapter);
    let reps = 50;
    // A GPU idles at a low clock and takes a while to raise it: keep it busy first, unless
    // OUVERT_PROBE_COLD is set. (On the H100 the output projection, timed first, took
    // 0.67 ms cold and 3.3-3.8 ms after any earlier work: not yet explained; see
    // BENCHMARKS.md.)
    let (file, t) = matrix(DType::Q5_0, 2048, 640, 1);
    let (m, x) = (
        g.matrix(&file, &t, None).unwrap(),
        g.act_from(&random(640, 2), 1, 640),
    );
    let mut out = g.act(1, 2048);
    let t = std::time::Instant::now();
    let warm_up = if std::env::var_os("OUVERT_PROBE_COLD").is_some() {
        0.0
    } else {
        2.0
    };
    while t.elapsed().as_secs_f64() < warm_up {
        for _ in 0..200 {
            g.matmul(&m, &x, &mut out);
        }
        block_on(g.read(&out)).unwrap();
    }
    drop((m, x, out));
    let timed = |label: &str, g: &mut Gpu, run: &mut dyn FnMut(&mut Gpu, usize)| {
        run(g, 1);
        let t = std::time::Instant::now();
        run(g, 1);
        let one = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        run(g, reps);
        let many = t.elapsed().as_secs_f64();
        eprintln!(
            "{label:44} {:8.1} µs per dispatch ({:.0} µs for one with its readback)",
            (many - one) / (reps - 1) as f64 * 1e6,
            one * 1e6
        );
    };
    let d = 640;
    for (dtype, rows, cols) in [
        (DType::Q8_0, 262144, d),
        (DType::F32, 8, 32),
        (DType::Q8_0, 2048, d),
        (DType::Q5_0, 2048, d),
        (DType::Q5_0, d, 2048),
        (DType::Q4K, 2048, d),
        (DType::Q6K, 2048, d),
    ] {
        let (file, t) = matrix(dtype, rows, cols, 1);
        let m = g.matrix(&file, &t, None).unwrap();
        let x = g.act_from(&random(cols, 2), 1, cols);
        let mut out = g.act(1, rows);
        if rows > 100_000 {
            let ms: Vec<String> = (0..6)
                .map(|_| {
                    let t = std::time::Instant::now();
                    g.matmul(&m, &x, &mut out);
                    block_on(g.read(&out)).unwrap();
                    format!("{:.2}", t.elapsed().as_secs_f64() * 1e3)
                })
                .collect();
            eprintln!(
                "matmul {dtype:?} {rows}x{cols}, one at a time with its readback: {} ms",
                ms.join(", ")
            );
        }
        timed(
            &format!("matmul {dtype:?} {rows}x{cols}"),
            &mut g,
            &mut |g, n| {
                for _ in 0..n {
                    g.matmul(&m, &x, &mut out);
                }
                block_on(g.read(&out)).unwrap();
            },
        );
    }
    let norm = g.vector(&random(d, 3)).unwrap();
    let (fq, tq) = matrix(DType::Q5_0, 1024, d, 4);
    let (fk, tk) = matrix(DType::Q5_0, 256, d, 5);
    let (q, k, v) = (
        g.matrix(&fq, &tq, None).unwrap(),
        g.matrix(&fk, &tk, None).unwrap(),
        g.matrix(&fk, &tk, None).unwrap(),
    );
    let mut x = g.act_from(&random(d, 6), 1, d);
    let h = g.act_from(&random(d, 7), 1, d);
    let (mut oq, mut ok, mut ov) = (g.act(1, 1024), g.act(1, 256), g.act(1, 256));
    timed(
        "norm + residual + q,k,v (1024+256+256 rows)",
        &mut g,
        &mut |g, n| {
            for _ in 0..n {
                g.norm_matmul(
                    &mut x,
                    Some((&h, Some(&norm))),
                    &norm,
                    1e-6,
                    &[&q, &k, &v],
                    Mix::Each,
                    &mut [&mut oq, &mut ok, &mut ov],
                );
            }
            block_on(g.read(&ov)).unwrap();
        },
    );
    let (fg, tg) = matrix(DType::Q5_0, 2048, d, 8);
    let (gate, up) = (
        g.matrix(&fg, &tg, None).unwrap(),
        g.matrix(&fg, &tg, None).unwrap(),
    );
    let mut oh = g.act(1, 2048);
    timed(
        "norm + gelu(gate)·up (2 × 2048 rows)",
        &mut g,
        &mut |g, n| {
            for _ in 0..n {
                g.norm_matmul(
                    &mut x,
                    None,
                    &norm,
                    1e-6,
                    &[&gate, &up],
                    Mix::GeluGate,
                    &mut [&mut oh],
                );
            }
            block_on(g.read(&oh)).unwrap();
        },
    );
    let (heads, hd, ctx) = (4, 256, 1024);
    let rope = g
        .vector(&ouvert::models::rope_table(10_000.0, hd, ctx, 1.0, None))
        .unwrap();
    let (qn, kn) = (
        g.vector(&random(hd, 9)).unwrap(),
        g.vector(&random(hd, 10)).unwrap(),
    );
    let mut kv = g.kv_cache(ctx, hd).unwrap();
    let (kx, vx) = (
        g.act_from(&random(hd, 11), 1, hd),
        g.act_from(&random(hd, 12), 1, hd),
    );
    let mut qx = g.act_from(&random(heads * hd, 13), 1, heads * hd);
    let mut out = g.act(1, heads * hd);
    let shape = AttnShape {
        n_heads: heads,
        n_kv_heads: 1,
        head_dim: hd,
        span: Span::Global,
        rope: RopeStyle::Halves,
        scale: 1.0,
        softcap: 0.0,
    };
    for pos in [128, 1000] {
        timed(
            &format!("attention, 4 heads of 256, {} keys", pos + 1),
            &mut g,
            &mut |g, n| {
                for _ in 0..n {
                    g.attention(
                        &mut qx,
                        &kx,
                        &vx,
                        Some((&qn, &kn)),
                        1e-6,
                        &rope,
                        &mut kv,
                        pos,
                        shape,
                        &mut out,
                    );
                }
                block_on(g.read(&out)).unwrap();
            },
        );
    }
}

/// The whole model on the GPU, timed: load, prefill of 128 and 512 prompt tokens, 128
/// greedy decode steps, and the dispatches each costs. Run by hand on a real GPU
/// (BENCHMARKS.md); wall-clock, readbacks included.
#[test]
#[ignore = "timing probe, run by hand"]
fn probe_model_speed() {
    let Some(g) = gpu() else { return };
    eprintln!("adapter: {}", g.adapter);
    let dispatches = g.dispatch_counter();
    let count = || dispatches.load(std::sync::atomic::Ordering::Relaxed);
    let bytes = std::fs::read(model_path()).unwrap();
    let t0 = std::time::Instant::now();
    let mut e = Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap();
    eprintln!(
        "load (parse + upload): {:.0} ms",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let text = "The history of the printing press begins in Mainz, where Johannes Gutenberg combined movable metal type, an oil-based ink and a screw press. ".repeat(40);
    let all = e.encode(&text).unwrap();
    let greedy = |n| GenerateOptions {
        max_tokens: n,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    // Each prompt differs from the last right after BOS, so no cached prefix is reused.
    let mut offset = 1;
    let mut fresh = |n: usize| {
        offset += 1;
        [&all[..1], &all[offset..offset + n - 1]].concat()
    };
    // Warm-up: pipelines, first submits, and (unless OUVERT_PROBE_COLD) two seconds of work
    // to raise the GPU's clock.
    e.generate(&fresh(16), &greedy(2), &mut |_| true).unwrap();
    let t = std::time::Instant::now();
    let warm_up = if std::env::var_os("OUVERT_PROBE_COLD").is_some() {
        0.0
    } else {
        2.0
    };
    while t.elapsed().as_secs_f64() < warm_up {
        e.generate(&fresh(16), &greedy(64), &mut |_| true).unwrap();
    }
    for round in 0..3 {
        let mut first = 0;
        let out = e
            .generate(&fresh(8), &greedy(129), &mut |_| {
                if first == 0 {
                    first = count();
                }
                true
            })
            .unwrap();
        let per_step = (count() - first) as f64 / 128.0;
        eprintln!(
            "round {round}: decode 128 tokens: {:.1} tok/s ({:.2} ms/token), {per_step:.0} dispatches per token; time to first token {:.1} ms",
            out.stats.decode_tokens_per_second,
            1000.0 / out.stats.decode_tokens_per_second,
            out.stats.time_to_first_token_ms
        );
        for n in [128usize, 512] {
            let prompt = fresh(n);
            let before = count();
            let t = std::time::Instant::now();
            e.logits(&prompt).unwrap();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            eprintln!(
                "round {round}: prefill {n} tokens: {ms:.1} ms, {:.0} tok/s, {} dispatches",
                n as f64 / ms * 1000.0,
                count() - before
            );
        }
    }
}

/// Where a decode step's time goes on the GPU, per model (`OUVERT_PROBE_MODELS`, paths
/// separated by commas; the default model otherwise) and per decode workgroup shape
/// (`OUVERT_PROBE_ROWS`, e.g. "8,32"): wall-clock decode and prefill speed from an untimed
/// engine, then GPU time per kernel (timestamp queries) and CPU recording time per token
/// from a timed one. Run by hand on a real GPU (BENCHMARKS.md); weights may be a real
/// file's shape with random values (tests/tools/gguf_shape_alike.py): speed does not
/// depend on them.
#[test]
#[ignore = "timing probe, run by hand"]
fn probe_decode_profile() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let models = env("OUVERT_PROBE_MODELS", &model_path().to_string_lossy());
    let rows: Vec<u32> = env("OUVERT_PROBE_ROWS", "8")
        .split(',')
        .map(|r| r.trim().parse().unwrap())
        .collect();
    let greedy = |n| GenerateOptions {
        max_tokens: n,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    for path in models.split(',') {
        // "tiny": the tests' tiny Gemma 3, to try the probe where the GPU is slow.
        let bytes = match path {
            "tiny" => tiny_gemma3().build(),
            _ => std::fs::read(path).unwrap(),
        };
        let name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy();
        let load =
            |g: Gpu| Engine::load_on(g, ModelBytes::from_slice(&bytes).unwrap(), 1024).unwrap();
        let text = "The history of the printing press begins in Mainz, where Johannes Gutenberg combined movable metal type, an oil-based ink and a screw press. ".repeat(40);
        let mut e = load(gpu().unwrap());
        let all = e.encode(&text).unwrap();
        let mut offset = 1;
        // Each prompt differs from the last right after BOS: no cached prefix is reused.
        let mut fresh = |n: usize| {
            offset += 1;
            [&all[..1], &all[offset..offset + n - 1]].concat()
        };
        // Two seconds of work raise the GPU's clock.
        let t = std::time::Instant::now();
        while t.elapsed().as_secs_f64() < 2.0 {
            e.generate(&fresh(16), &greedy(64), &mut |_| true).unwrap();
        }
        for n in [128usize, 512] {
            let ms: Vec<String> = (0..3)
                .map(|_| {
                    let p = fresh(n);
                    let t = std::time::Instant::now();
                    e.logits(&p).unwrap();
                    format!("{:.0}", n as f64 / t.elapsed().as_secs_f64())
                })
                .collect();
            eprintln!("{name}: prefill {n} tokens: {} tok/s", ms.join(", "));
        }
        drop(e);
        for &r in &rows {
            let mut g = gpu().unwrap();
            g.set_group_rows(8, r);
            let mut e = load(g);
            e.generate(&fresh(16), &greedy(16), &mut |_| true).unwrap();
            let speeds: Vec<String> = (0..3)
                .map(|_| {
                    let out = e.generate(&fresh(8), &greedy(129), &mut |_| true).unwrap();
                    format!("{:.1}", out.stats.decode_tokens_per_second)
                })
                .collect();
            eprintln!(
                "{name}, {r} rows per decode workgroup: decode {} tok/s",
                speeds.join(", ")
            );
            drop(e);
            let mut g = block_on(Gpu::new_timed()).unwrap();
            g.set_group_rows(8, r);
            let Some(ouvert::gpu::Times {
                kernels: times,
                recording,
            }) = g.kernel_times()
            else {
                eprintln!("no timestamp queries on this adapter");
                continue;
            };
            let mut e = load(g);
            e.generate(&fresh(16), &greedy(16), &mut |_| true).unwrap();
            let steps = 64;
            let mut seen = 0;
            let mut started = false;
            e.generate(&fresh(8), &greedy(steps + 1), &mut |_| {
                // From the first token on: decode steps only.
                if !started {
                    started = true;
                    times.lock().unwrap().clear();
                    *recording.lock().unwrap() = Default::default();
                }
                seen += 1;
                true
            })
            .unwrap();
            let steps = (seen - 1) as f64;
            let times = times.lock().unwrap();
            let total: f64 = times.values().map(|v| v.1).sum();
            eprintln!(
                "{name}, {r} rows, timed: GPU {:.0} µs per token in {:.0} dispatches; CPU recording {:.0} µs per token",
                total / steps / 1e3,
                times.values().map(|v| v.0).sum::<u64>() as f64 / steps,
                recording.lock().unwrap().as_secs_f64() * 1e6 / steps
            );
            let mut by_time: Vec<_> = times.iter().collect();
            by_time.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
            for (kernel, (count, ns)) in by_time.iter().take(14) {
                eprintln!(
                    "  {:7.1} µs per token, {:5.1} per call × {:4.1}: {kernel}",
                    ns / steps / 1e3,
                    ns / *count as f64 / 1e3,
                    *count as f64 / steps
                );
            }
        }
    }
}

/// Abort and reuse on the GPU: 100 generations on one engine, each stopped after two
/// tokens (the `Generation` dropped, as the worker drops an aborted one), leave no buffer,
/// GPU memory or bind group behind after the first.
#[test]
fn abort_cycles_leave_no_gpu_resources_behind() {
    let Some(g) = gpu() else { return };
    let counters = g.resource_counter();
    let file = tiny_gemma3().build();
    let mut e = Engine::load_on(g, ModelBytes::from_slice(&file).unwrap(), 64).unwrap();
    let opts = GenerateOptions {
        max_tokens: 16,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    let live = || {
        let c = counters().hal;
        (
            c.buffers.read(),
            c.buffer_memory.read(),
            c.bind_groups.read(),
        )
    };
    let mut first = None;
    for cycle in 0..100u32 {
        let prompt = [2, 270 + cycle % 7, 271, 272];
        let mut run = e.start(&prompt, opts.clone()).unwrap();
        let mut pieces = 0;
        while pieces < 2 {
            if let Event::Piece(_) = e.step(&mut run).unwrap() {
                pieces += 1;
            }
        }
        drop(run);
        let now = live();
        assert!(now.0 > 0, "the counters are not counting");
        let want = *first.get_or_insert(now);
        assert_eq!(
            now, want,
            "cycle {cycle}: (buffers, buffer bytes, bind groups) grew"
        );
    }
    eprintln!(
        "after 100 aborted generations: (buffers, buffer bytes, bind groups) = {:?}",
        first.unwrap()
    );
}

/// Engines created and dropped in turn leave the memory flat (lavapipe's GPU memory is the
/// host's). Measured in a process of its own, the test binary run again on one test: the
/// tests beside this one share its memory.
#[test]
fn engines_created_and_dropped_keep_the_memory_flat() {
    if gpu().is_none() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "--nocapture", "engine_cycles_alone"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child run failed:\n{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run by engines_created_and_dropped_keep_the_memory_flat, in a process of its own"]
fn engine_cycles_alone() {
    let file = tiny_gemma3().build();
    let opts = GenerateOptions {
        max_tokens: 16,
        sampler: SamplerConfig::greedy(),
        stop_at_eos: false,
        ..Default::default()
    };
    let rss = || {
        std::fs::read_to_string("/proc/self/statm")
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            * 4096
    };
    let mut sizes = Vec::new();
    for _ in 0..12 {
        let mut e =
            Engine::load_on(gpu().unwrap(), ModelBytes::from_slice(&file).unwrap(), 64).unwrap();
        e.generate(&[2, 270, 271], &opts, &mut |_| true).unwrap();
        drop(e);
        sizes.push(rss());
    }
    eprintln!(
        "RSS after each of 12 engines: {:?} MB",
        sizes.iter().map(|s| s >> 20).collect::<Vec<_>>()
    );
    // The allocator's noise is upward spikes of ~20 MB; the floor is what a leak raises
    // (a leaked engine is ~60 MB on lavapipe).
    let floor = |r: std::ops::Range<usize>| *sizes[r].iter().min().unwrap() as i64;
    let growth = floor(9..12) - floor(1..4);
    assert!(
        growth < 24 << 20,
        "engines 2 to 12 raised the process's memory floor by {} MB",
        growth >> 20
    );
}
