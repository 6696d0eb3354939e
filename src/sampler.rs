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
        SamplerConfig { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, repeat_penalty: 1.0, repeat_last_n: 64, seed: 0, top_logprobs: 0 }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig { temperature: 0.0, ..Default::default() }
    }
}

/// One candidate the model considered: a token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    pub token: u32,
    pub logprob: f32,
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

    /// Picks the next token from `logits` (modified in place), given the tokens so far.
    /// Also returns the `top_logprobs` most likely tokens of the distribution it drew from
    /// (at temperature 1 when greedy).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> (u32, Vec<Candidate>) {
        let c = &self.cfg;
        if c.repeat_penalty != 1.0 && c.repeat_penalty > 0.0 {
            let recent = &history[history.len().saturating_sub(c.repeat_last_n)..];
            let mut seen = std::collections::HashSet::new();
            for &t in recent {
                if seen.insert(t) {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = if *l > 0.0 { *l / c.repeat_penalty } else { *l * c.repeat_penalty };
                    }
                }
            }
        }
        let temp = if c.temperature > 0.0 { c.temperature } else { 1.0 };
        let top = if c.top_logprobs > 0 { top_logprobs(logits, c.top_logprobs, temp) } else { Vec::new() };
        if c.temperature <= 0.0 || c.top_k == 1 {
            return (argmax(logits), top);
        }

        // Candidates sorted by logit, cut by top-k, then softmax at the temperature.
        let k = if c.top_k == 0 { logits.len() } else { c.top_k.min(logits.len()) };
        let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
        if k < idx.len() {
            idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
            idx.truncate(k);
        }
        idx.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        let max = logits[idx[0] as usize];
        let mut probs: Vec<f32> = idx.iter().map(|&i| ((logits[i as usize] - max) / temp).exp()).collect();
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
                return (idx[i], top);
            }
        }
        (idx[keep - 1], top)
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

fn top_logprobs(logits: &[f32], n: usize, temp: f32) -> Vec<Candidate> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max / temp + logits.iter().map(|&l| ((l - max) / temp).exp() as f64).sum::<f64>().ln() as f32;
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let n = n.min(idx.len());
    idx.select_nth_unstable_by(n - 1, |&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    idx.truncate(n);
    idx.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    idx.into_iter().map(|t| Candidate { token: t, logprob: logits[t as usize] / temp - lse }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..1000).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect()
    }

    #[test]
    fn greedy_is_argmax_and_ties_go_low() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        let mut l = vec![1.0, 3.0, 3.0, 2.0];
        assert_eq!(s.sample(&mut l, &[]).0, 1);
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let cfg = SamplerConfig { temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 7, ..Default::default() };
        let run = |cfg: SamplerConfig| {
            let mut s = Sampler::new(cfg);
            (0..50).map(|_| s.sample(&mut logits(), &[]).0).collect::<Vec<_>>()
        };
        assert_eq!(run(cfg.clone()), run(cfg.clone()));
        assert_ne!(run(cfg.clone()), run(SamplerConfig { seed: 8, ..cfg }));
    }

    #[test]
    fn filters_restrict_the_choice() {
        let l = logits();
        let mut order: Vec<u32> = (0..1000).collect();
        order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        let cfg = SamplerConfig { temperature: 5.0, top_k: 3, top_p: 1.0, min_p: 0.0, seed: 1, ..Default::default() };
        let mut s = Sampler::new(cfg);
        for _ in 0..200 {
            assert!(order[..3].contains(&s.sample(&mut l.clone(), &[]).0));
        }
        // min_p = 1 keeps only the top token.
        let mut s = Sampler::new(SamplerConfig { temperature: 5.0, top_k: 0, top_p: 1.0, min_p: 1.0, ..Default::default() });
        assert_eq!(s.sample(&mut l.clone(), &[]).0, order[0]);
        // A tiny top_p keeps only the top token as well.
        let mut s = Sampler::new(SamplerConfig { temperature: 1.0, top_k: 0, top_p: 1e-6, min_p: 0.0, ..Default::default() });
        assert_eq!(s.sample(&mut l.clone(), &[]).0, order[0]);
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplerConfig { temperature: 0.0, repeat_penalty: 2.0, ..Default::default() });
        let mut l = vec![0.0, 4.0, 3.0];
        assert_eq!(s.sample(&mut l, &[1]).0, 2);
    }

    #[test]
    fn top_logprobs_are_normalised_and_sorted() {
        let mut s = Sampler::new(SamplerConfig { temperature: 0.0, top_logprobs: 5, ..Default::default() });
        let mut l = vec![0.0f32, 1.0, 2.0];
        let (_, top) = s.sample(&mut l, &[]);
        assert_eq!(top.iter().map(|c| c.token).collect::<Vec<_>>(), vec![2, 1, 0]);
        let total: f32 = top.iter().map(|c| c.logprob.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5);
    }
}
