//! Choosing the next token: greedy, or temperature with top-k, top-p and min-p filters and
//! a repetition penalty, drawn from a seeded generator so a run can be replayed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SamplerConfig {
    /// 0 picks the most likely token (greedy); higher flattens the distribution.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities add up to p (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one (0: none).
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recent tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
    /// Report this many most likely tokens, with log-probabilities, at every step.
    pub top_logprobs: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            top_logprobs: 0,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }
}

/// One candidate the model considered: a token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    pub token: u32,
    pub logprob: f32,
}

/// A sampled token, with what `top_logprobs` asked to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub token: u32,
    /// The token's log-probability in the distribution drawn from, when `top_logprobs` > 0.
    pub logprob: Option<f32>,
    /// The `top_logprobs` most likely tokens of that distribution.
    pub top: Vec<Candidate>,
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: u64,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        // SplitMix64 scrambles the seed so that nearby seeds give unrelated streams.
        let rng = cfg.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        Sampler { cfg, rng }
    }

    /// What a step needs from the model to sample with this configuration: the `k` best
    /// logits (with the softmax's normalizer) are enough unless a repetition penalty
    /// reorders tokens or no top-k bounds the choice; then all logits.
    pub fn want(&self) -> Want {
        let c = &self.cfg;
        let k = if self.greedy() { 1 } else { c.top_k }.max(c.top_logprobs);
        if self.penalized() || (!self.greedy() && c.top_k == 0) || k > MAX_TOP_K {
            return Want::Logits;
        }
        Want::Top {
            k,
            temp: self.temp(),
        }
    }

    /// Picks the next token from what the model gave (as `want` asked), given the tokens so
    /// far. With `top_logprobs`, also its log-probability and the most likely tokens of the
    /// distribution it drew from (at temperature 1 when greedy).
    pub fn sample_scores(&mut self, scores: &mut Scores, history: &[u32]) -> Pick {
        match scores {
            Scores::Logits(l) => self.sample(l, history),
            Scores::Top(t) => self.sample_top(t),
        }
    }

    /// Picks the next token from all `logits` (modified in place by the penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Pick {
        let c = &self.cfg;
        if self.penalized() {
            let recent = &history[history.len().saturating_sub(c.repeat_last_n)..];
            let mut seen = std::collections::HashSet::new();
            for &t in recent {
                if seen.insert(t) {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = if *l > 0.0 {
                            *l / c.repeat_penalty
                        } else {
                            *l * c.repeat_penalty
                        };
                    }
                }
            }
        }
        let token = if self.greedy() {
            argmax(logits)
        } else {
            let k = if self.cfg.top_k == 0 {
                logits.len()
            } else {
                self.cfg.top_k.min(logits.len())
            };
            let idx = best_first(logits, k);
            let values: Vec<f32> = idx.iter().map(|&i| logits[i as usize]).collect();
            self.draw(&idx, &values)
        };
        match self.cfg.top_logprobs {
            0 => Pick {
                token,
                logprob: None,
                top: Vec::new(),
            },
            n => {
                let dist = TopLogits::of(logits, n, self.temp());
                Pick {
                    token,
                    logprob: Some(dist.logprob(logits[token as usize])),
                    top: dist.candidates(n),
                }
            }
        }
    }

    /// Picks the next token from the best logits alone (`want` said they suffice).
    pub fn sample_top(&mut self, t: &TopLogits) -> Pick {
        let token = if self.greedy() {
            t.ids[0]
        } else {
            let k = self.cfg.top_k.min(t.ids.len());
            self.draw(&t.ids[..k], &t.values[..k])
        };
        let n = self.cfg.top_logprobs;
        let logprob = (n > 0).then(|| {
            t.logprob(
                t.values[t
                    .ids
                    .iter()
                    .position(|&i| i == token)
                    .expect("drawn from the ids")],
            )
        });
        Pick {
            token,
            logprob,
            top: t.candidates(n),
        }
    }

    /// The most likely token, whatever the other settings.
    fn greedy(&self) -> bool {
        self.cfg.temperature <= 0.0 || self.cfg.top_k == 1
    }

    fn penalized(&self) -> bool {
        self.cfg.repeat_penalty != 1.0 && self.cfg.repeat_penalty > 0.0
    }

    fn temp(&self) -> f32 {
        if self.cfg.temperature > 0.0 {
            self.cfg.temperature
        } else {
            1.0
        }
    }

    /// Draws from candidates sorted best first: softmax at the temperature, then the top-p
    /// and min-p cuts.
    fn draw(&mut self, idx: &[u32], values: &[f32]) -> u32 {
        let c = &self.cfg;
        let temp = self.temp();
        let mut probs: Vec<f32> = values
            .iter()
            .map(|&l| ((l - values[0]) / temp).exp())
            .collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);

        let mut keep = probs.len();
        if c.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= c.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if c.min_p > 0.0 {
            let floor = probs[0] * c.min_p;
            keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
        }
        let total: f32 = probs[..keep].iter().sum();
        let mut r = self.next_f32() * total;
        for (i, &p) in probs[..keep].iter().enumerate() {
            r -= p;
            if r <= 0.0 {
                return idx[i];
            }
        }
        idx[keep - 1]
    }

    fn next_f32(&mut self) -> f32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The index of the largest logit; ties go to the lower id, as in llama.cpp.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The ids of the `k` largest logits, largest first (ties to the lower id).
fn best_first(logits: &[f32], k: usize) -> Vec<u32> {
    // A vocabulary's worth: eight parts (on a decode step's crew of threads, if any), then
    // the k best of their k best, in the same order (value, then id).
    const PARTS: usize = 8;
    if logits.len() < 1 << 14 || k > logits.len() / PARTS {
        return best_first_of(logits, k);
    }
    let len = logits.len().div_ceil(PARTS);
    let mut best: Vec<u32> = crate::cpu::par::on_crew(PARTS, |p| {
        let at = p * len;
        let part = &logits[at..(at + len).min(logits.len())];
        best_first_of(part, k)
            .into_iter()
            .map(move |i| i + at as u32)
    })
    .into_iter()
    .flatten()
    .collect();
    best.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    best.truncate(k);
    best
}

fn best_first_of(logits: &[f32], k: usize) -> Vec<u32> {
    use std::cmp::Ordering::Less;
    let k = k.min(logits.len());
    // The k best so far, in order; ids arrive in increasing order, so an equal value goes
    // after those already in. Past the first k, most logits cost one comparison.
    let mut top: Vec<u32> = Vec::with_capacity(k + 1);
    for (i, &v) in logits.iter().enumerate() {
        if top.len() == k
            && (k == 0 || v.total_cmp(&logits[top[k - 1] as usize]) != std::cmp::Ordering::Greater)
        {
            continue;
        }
        let at = top.partition_point(|&j| logits[j as usize].total_cmp(&v) != Less);
        top.insert(at, i as u32);
        top.truncate(k);
    }
    top
}

/// Most a step reads back instead of all logits; more falls back to the full row.
pub const MAX_TOP_K: usize = 64;

/// What the model returns for a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    /// Every logit (a repetition penalty, no top-k, or `Engine::logits`).
    Logits,
    /// The `k` largest logits and `ln Σ exp(logit / temp)` over all of them, which is what
    /// greedy or top-k sampling and the reported log-probabilities need.
    Top { k: usize, temp: f32 },
    /// Nothing: a prompt chunk before the last.
    Nothing,
    /// Every logit of every position of the pass (`rows × vocab`), to score a given text.
    Rows,
}

/// The model's answer to a `Want`.
pub enum Scores {
    Logits(Vec<f32>),
    Top(TopLogits),
}

/// Σ exp((l − max) / temp) over a row (every term ≤ 1), in eight lanes the compiler
/// vectorises (simd128 in wasm, where libm's `expf` took 7 % of a Gemma decode step for
/// this sum over 262,144 logits), through `fastmath::exp_nonpositive`: a masked (−∞) logit
/// and a NaN count as 0; the lanes sum in f64.
fn exp_sum(logits: &[f32], max: f32, temp: f32) -> f64 {
    use crate::fastmath::{exp_nonpositive, sum_f64};
    sum_f64(logits, |l| exp_nonpositive((l - max) / temp))
}

/// The best logits of a row, largest first (ties to the lower id).
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogits {
    pub ids: Vec<u32>,
    pub values: Vec<f32>,
    /// `ln Σ exp(logit / temp)` over the whole row.
    pub log_norm: f32,
    pub temp: f32,
}

impl TopLogits {
    /// Reference computation on the host (the CPU backend's kernel).
    pub fn of(logits: &[f32], k: usize, temp: f32) -> TopLogits {
        let ids = best_first(logits, k);
        let values: Vec<f32> = ids.iter().map(|&i| logits[i as usize]).collect();
        let max = values.first().copied().unwrap_or(0.0);
        let sum = exp_sum(logits, max, temp);
        TopLogits {
            ids,
            values,
            log_norm: max / temp + sum.ln() as f32,
            temp,
        }
    }

    /// Backends return `[value, id]` pairs then the normalizer, as f32 (ids below 2²⁴ are
    /// exact); pairs with an id ≥ `vocab` pad a row shorter than k.
    pub fn to_row(&self, k: usize, vocab: usize) -> Vec<f32> {
        let mut row: Vec<f32> = self
            .values
            .iter()
            .zip(&self.ids)
            .flat_map(|(&v, &i)| [v, i as f32])
            .collect();
        row.resize(2 * k, vocab as f32);
        row.push(self.log_norm);
        row
    }

    pub fn from_row(row: &[f32], vocab: usize, temp: f32) -> TopLogits {
        let (pairs, norm) = row.split_at(row.len() - 1);
        let (ids, values) = pairs
            .chunks_exact(2)
            .filter(|p| (p[1] as usize) < vocab)
            .map(|p| (p[1] as u32, p[0]))
            .unzip();
        TopLogits {
            ids,
            values,
            log_norm: norm[0],
            temp,
        }
    }

    fn candidates(&self, n: usize) -> Vec<Candidate> {
        self.ids
            .iter()
            .zip(&self.values)
            .take(n)
            .map(|(&token, &v)| Candidate {
                token,
                logprob: self.logprob(v),
            })
            .collect()
    }

    /// The log-probability of a token whose logit is `value`.
    fn logprob(&self, value: f32) -> f32 {
        value / self.temp - self.log_norm
    }
}

#[cfg(test)]
mod tests {
    /// The vectorised sum of exponentials against libm's, term by term and summed.
    #[test]
    fn exp_sum_matches_libm() {
        for x in [-0.5f32, -87.5, f32::NEG_INFINITY, f32::NAN] {
            let want = if x >= -87.0 { x.exp() } else { 0.0 };
            let got = super::exp_sum(&[x], 0.0, 1.0) as f32;
            assert!(
                (got - want).abs() <= 2.5 * f32::EPSILON * want,
                "e^{x} = {got}"
            );
        }
        let row: Vec<f32> = (0..262_144)
            .map(|i| ((i * 7919) % 1000) as f32 * -0.03)
            .collect();
        let want: f64 = row.iter().map(|&l| ((l - 1.0) / 0.7).exp() as f64).sum();
        let got = super::exp_sum(&row, 1.0, 0.7);
        assert!((got / want - 1.0).abs() < 1e-6, "{got} vs {want}");
    }

    use super::*;

    fn logits() -> Vec<f32> {
        (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect()
    }

    #[test]
    fn best_first_orders_as_a_full_sort_ties_to_the_lower_id() {
        // Many ties, infinities and NaN (above +∞ in the total order), at every k; a row
        // long enough to go in parts too (ties across the parts' borders).
        for n in [3000, 40_003] {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 7919) % 97) as f32 / 8.0).collect();
            row[5] = f32::INFINITY;
            row[n - 1] = f32::NAN;
            row[17] = f32::NEG_INFINITY;
            let mut sorted: Vec<u32> = (0..row.len() as u32).collect();
            sorted.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
            for k in [0, 1, 2, 5, 40, 64, 500, 2999, 3000, 3100] {
                assert_eq!(
                    best_first(&row, k),
                    sorted[..k.min(row.len())],
                    "n = {n}, k = {k}"
                );
            }
        }
    }

    #[test]
    fn greedy_is_argmax_and_ties_go_low() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        let mut l = vec![1.0, 3.0, 3.0, 2.0];
        assert_eq!(s.sample(&mut l, &[]).token, 1);
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let cfg = SamplerConfig {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        let run = |cfg: SamplerConfig| {
            let mut s = Sampler::new(cfg);
            (0..50)
                .map(|_| s.sample(&mut logits(), &[]).token)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(cfg.clone()), run(cfg.clone()));
        assert_ne!(run(cfg.clone()), run(SamplerConfig { seed: 8, ..cfg }));
    }

    #[test]
    fn filters_restrict_the_choice() {
        let l = logits();
        let mut order: Vec<u32> = (0..1000).collect();
        order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        let cfg = SamplerConfig {
            temperature: 5.0,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            seed: 1,
            ..Default::default()
        };
        let mut s = Sampler::new(cfg);
        for _ in 0..200 {
            assert!(order[..3].contains(&s.sample(&mut l.clone(), &[]).token));
        }
        // min_p = 1 keeps only the top token.
        let mut s = Sampler::new(SamplerConfig {
            temperature: 5.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 1.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut l.clone(), &[]).token, order[0]);
        // A tiny top_p keeps only the top token as well.
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1e-6,
            min_p: 0.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&mut l.clone(), &[]).token, order[0]);
    }

    /// Where `want` asks for the best logits only, sampling from them draws exactly the
    /// tokens (and reports the log-probabilities) that sampling from all logits does.
    #[test]
    fn the_best_logits_sample_like_all_of_them() {
        let configs = [
            SamplerConfig::greedy(),
            SamplerConfig {
                top_logprobs: 5,
                ..SamplerConfig::greedy()
            },
            SamplerConfig {
                seed: 3,
                top_logprobs: 3,
                ..Default::default()
            },
            SamplerConfig {
                temperature: 1.3,
                top_k: 64,
                top_p: 0.8,
                min_p: 0.0,
                seed: 4,
                ..Default::default()
            },
            SamplerConfig {
                temperature: 0.5,
                top_k: 10,
                top_p: 1.0,
                min_p: 0.2,
                seed: 5,
                top_logprobs: 20,
                ..Default::default()
            },
        ];
        for cfg in configs {
            let (mut full, mut part) = (Sampler::new(cfg.clone()), Sampler::new(cfg.clone()));
            let Want::Top { k, temp } = part.want() else {
                panic!("{cfg:?} needs all logits")
            };
            for step in 0..100 {
                let l: Vec<f32> = logits()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * ((i + step) % 7) as f32)
                    .collect();
                let a = full.sample(&mut l.clone(), &[]);
                let b = part.sample_top(&TopLogits::of(&l, k, temp));
                assert_eq!(a.token, b.token, "{cfg:?}, step {step}");
                assert_eq!(a.logprob.is_some(), cfg.top_logprobs > 0);
                assert!(
                    a.logprob
                        .zip(b.logprob)
                        .is_none_or(|(x, y)| (x - y).abs() < 1e-4),
                    "{a:?} vs {b:?}"
                );
                assert_eq!(a.top.len(), b.top.len());
                for (x, y) in a.top.iter().zip(&b.top) {
                    assert_eq!(x.token, y.token);
                    assert!((x.logprob - y.logprob).abs() < 1e-4, "{x:?} vs {y:?}");
                }
            }
        }
        // A penalty reorders logits, an unbounded top-k needs them all.
        assert_eq!(
            Sampler::new(SamplerConfig {
                repeat_penalty: 1.1,
                ..Default::default()
            })
            .want(),
            Want::Logits
        );
        assert_eq!(
            Sampler::new(SamplerConfig {
                top_k: 0,
                ..Default::default()
            })
            .want(),
            Want::Logits
        );
        assert_eq!(
            Sampler::new(SamplerConfig {
                top_k: 0,
                ..SamplerConfig::greedy()
            })
            .want(),
            Want::Top { k: 1, temp: 1.0 }
        );
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..Default::default()
        });
        let mut l = vec![0.0, 4.0, 3.0];
        assert_eq!(s.sample(&mut l, &[1]).token, 2);
    }

    #[test]
    fn top_logprobs_are_normalised_and_sorted() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 0.0,
            top_logprobs: 5,
            ..Default::default()
        });
        let mut l = vec![0.0f32, 1.0, 2.0];
        let pick = s.sample(&mut l, &[]);
        assert_eq!(
            pick.top.iter().map(|c| c.token).collect::<Vec<_>>(),
            vec![2, 1, 0]
        );
        assert_eq!(
            pick.logprob,
            Some(pick.top[0].logprob),
            "the chosen token's own log-probability"
        );
        let total: f32 = pick.top.iter().map(|c| c.logprob.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }
}
