//! The calibrated confidence: a logistic model over retrieval features.
//!
//! e5 cosines bunch up (unrelated Chinese sentences still score 0.8), so a raw cosine threshold
//! means different things for different knowledge bases and languages. Instead the bot computes
//! a few features of the best candidate and maps them through a logistic function fitted on
//! labelled turns (`expect` = FAQ id or `none`): the output estimates the probability that the
//! top candidate is the right answer. See the crate doc and `docs/bench-bot.md`.

use serde::{Deserialize, Serialize};

/// Features of the best candidate of one turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Highest cosine between the turn and the candidate's question or alternates.
    pub cosine: f32,
    /// `cosine` minus the best cosine of any other FAQ (how clearly it wins).
    pub margin: f32,
    /// Share of the turn's analyzed tokens found in the candidate's question or alternates.
    pub overlap: f32,
    /// 1 when the candidate is also the lexical (BM25) top hit, else 0.
    pub lexical_top: f32,
}

impl Features {
    fn vector(&self) -> [f32; 4] {
        [self.cosine, self.margin, self.overlap, self.lexical_top]
    }
}

/// Coefficients of the logistic model: `p = 1 / (1 + exp(-(bias + Σ w·feature)))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub bias: f32,
    pub cosine: f32,
    pub margin: f32,
    pub overlap: f32,
    pub lexical_top: f32,
}

impl Default for Calibration {
    /// Fitted by `cargo run --release -p switchboard-bot --example calibrate` on
    /// `bot/eval/calibration.jsonl` (written for this purpose; no test line is in it).
    fn default() -> Self {
        Calibration {
            bias: -35.9066,
            cosine: 37.1544,
            margin: 69.1177,
            overlap: 2.4637,
            lexical_top: 0.1650,
        }
    }
}

impl Calibration {
    /// The probability that the candidate with these features is the right answer.
    pub fn confidence(&self, features: &Features) -> f32 {
        let weights = [self.cosine, self.margin, self.overlap, self.lexical_top];
        let z = self.bias
            + weights
                .iter()
                .zip(features.vector())
                .map(|(w, x)| w * x)
                .sum::<f32>();
        sigmoid(z)
    }

    /// Fits the model on `(features, top candidate was right)` pairs by full-batch gradient
    /// descent on the log loss with a little L2, on standardized features (unfolded again in
    /// the result). Returns `None` when either class is missing.
    pub fn fit(samples: &[(Features, bool)]) -> Option<Calibration> {
        let positives = samples.iter().filter(|s| s.1).count();
        if positives == 0 || positives == samples.len() {
            return None;
        }
        let n = samples.len() as f32;
        let xs: Vec<[f32; 4]> = samples.iter().map(|s| s.0.vector()).collect();
        let mut mean = [0.0_f32; 4];
        let mut scale = [0.0_f32; 4];
        for x in &xs {
            for j in 0..4 {
                mean[j] += x[j] / n;
            }
        }
        for x in &xs {
            for j in 0..4 {
                scale[j] += (x[j] - mean[j]).powi(2) / n;
            }
        }
        for s in &mut scale {
            *s = s.sqrt().max(1e-4);
        }
        let zs: Vec<[f32; 4]> = xs
            .iter()
            .map(|x| std::array::from_fn(|j| (x[j] - mean[j]) / scale[j]))
            .collect();
        let ys: Vec<f32> = samples
            .iter()
            .map(|s| if s.1 { 1.0 } else { 0.0 })
            .collect();
        let (mut w, mut b) = ([0.0_f32; 4], 0.0_f32);
        let lambda = 0.01;
        for _ in 0..5_000 {
            let mut gw = [0.0_f32; 4];
            let mut gb = 0.0_f32;
            for (z, y) in zs.iter().zip(&ys) {
                let p = sigmoid(b + (0..4).map(|j| w[j] * z[j]).sum::<f32>());
                let err = p - y;
                gb += err / n;
                for j in 0..4 {
                    gw[j] += err * z[j] / n;
                }
            }
            b -= 0.5 * gb;
            for j in 0..4 {
                w[j] -= 0.5 * (gw[j] + lambda * w[j]);
            }
        }
        let raw: [f32; 4] = std::array::from_fn(|j| w[j] / scale[j]);
        let bias = b - (0..4).map(|j| raw[j] * mean[j]).sum::<f32>();
        Some(Calibration {
            bias,
            cosine: raw[0],
            margin: raw[1],
            overlap: raw[2],
            lexical_top: raw[3],
        })
    }
}

fn sigmoid(z: f32) -> f32 {
    if z.is_nan() {
        return 0.0;
    }
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_separates_and_orders() {
        let mut samples = Vec::new();
        for i in 0..40 {
            let c = 0.80 + i as f32 * 0.004;
            let right = i >= 20;
            samples.push((
                Features {
                    cosine: c,
                    margin: if right { 0.05 } else { 0.01 },
                    overlap: 0.5,
                    lexical_top: 1.0,
                },
                right,
            ));
        }
        let cal = Calibration::fit(&samples).expect("both classes");
        let low = cal.confidence(&Features {
            cosine: 0.80,
            margin: 0.0,
            overlap: 0.5,
            lexical_top: 1.0,
        });
        let high = cal.confidence(&Features {
            cosine: 0.95,
            margin: 0.06,
            overlap: 0.5,
            lexical_top: 1.0,
        });
        assert!(low < 0.2 && high > 0.8, "low {low} high {high}");
        assert!(Calibration::fit(&samples[..10]).is_none());
    }

    #[test]
    fn confidence_is_a_probability_even_for_garbage() {
        let cal = Calibration::default();
        for f in [
            Features::default(),
            Features {
                cosine: f32::NAN,
                ..Features::default()
            },
        ] {
            let p = cal.confidence(&f);
            assert!((0.0..=1.0).contains(&p));
        }
    }
}
