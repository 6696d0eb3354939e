//! Scoring a given text: the log-probability the model gives each of its tokens after the
//! ones before (teacher forcing: a forward pass reads a slice of the text and returns every
//! position's logits), the best alternatives at each position, and the text's perplexity.
//! A text longer than the context is read in windows, as llama.cpp's perplexity tool does.

use serde::{Deserialize, Serialize};

/// What to score besides each token's own log-probability.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ScoreOptions {
    /// The `n` most likely tokens at each position (at most `MAX_TOP_LOGPROBS`).
    pub top_logprobs: usize,
    /// For a text longer than the context: how far each window moves on (default half the
    /// context). Each window but the first scores only its last `stride` tokens, so every
    /// token is scored once, after at least `context − stride` tokens of the text.
    pub stride: Option<usize>,
}

pub const MAX_TOP_LOGPROBS: usize = 100;

/// A token, its text, and the log-probability (natural log) the model gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    pub id: u32,
    /// The token's text; a token that holds part of a character shows U+FFFD.
    pub text: String,
    pub logprob: f32,
}

/// One token of the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoredToken {
    pub id: u32,
    pub text: String,
    /// `None` for the first token, which nothing predicts.
    pub logprob: Option<f32>,
    /// The most likely tokens at this position, best first (`top_logprobs` of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub tokens: Vec<ScoredToken>,
    /// exp(mean negative log-probability) over the scored tokens (all but the first).
    pub perplexity: f64,
    /// The window each token was read in (the context, or the text when it fits) and how
    /// far windows moved on.
    pub window: usize,
    pub stride: usize,
    pub stats: ScoreStats,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreStats {
    pub ms: f64,
    /// Tokens read per second, every window's included.
    pub tokens_per_second: f64,
    pub cost: crate::cost::Cost,
}

/// The log-probability of `target` in a row of logits, and the `top` best tokens (their
/// text from `text`).
pub fn row_scores(
    row: &[f32],
    target: u32,
    top: usize,
    text: impl Fn(u32) -> String,
) -> (f32, Vec<TokenLogprob>) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max + sum.ln() as f32;
    let logprob = row[target as usize] - lse;
    if top == 0 {
        return (logprob, Vec::new());
    }
    let mut best: Vec<u32> = (0..row.len() as u32).collect();
    let top = top.min(row.len());
    if top < best.len() {
        best.select_nth_unstable_by(top - 1, |&a, &b| {
            row[b as usize].total_cmp(&row[a as usize])
        });
    }
    best.truncate(top);
    best.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
    let top = best
        .into_iter()
        .map(|id| TokenLogprob {
            id,
            text: text(id),
            logprob: row[id as usize] - lse,
        })
        .collect();
    (logprob, top)
}

/// Perplexity over the scored tokens.
pub fn perplexity(tokens: &[ScoredToken]) -> f64 {
    let (sum, n) = tokens
        .iter()
        .filter_map(|t| t.logprob)
        .fold((0f64, 0usize), |(s, n), l| (s - l as f64, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_gives_log_softmax_and_the_best_first() {
        let row = [1.0f32, 3.0, 2.0, 3.0];
        let (lp, top) = row_scores(&row, 2, 3, |id| id.to_string());
        let lse = (1f64.exp() + 2.0 * 3f64.exp() + 2f64.exp()).ln() as f32;
        assert!((lp - (2.0 - lse)).abs() < 1e-6);
        // Ties by id: 1 before 3.
        assert_eq!(top.iter().map(|t| t.id).collect::<Vec<_>>(), [1, 3, 2]);
        assert!((top[0].logprob - (3.0 - lse)).abs() < 1e-6);
        let p: f32 = row.iter().map(|&l| (l - lse).exp()).sum();
        assert!((p - 1.0).abs() < 1e-6);
    }

    #[test]
    fn perplexity_skips_the_first_token() {
        let t = |logprob| ScoredToken {
            id: 0,
            text: String::new(),
            logprob,
            top: vec![],
        };
        let ppl = perplexity(&[t(None), t(Some(-1.0)), t(Some(-3.0))]);
        assert!((ppl - 2f64.exp()).abs() < 1e-9);
    }
}
