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
    /// Cosine between the turn and the candidate's answer (`passage: ` prefix).
    #[serde(default)]
    pub answer_cosine: f32,
    /// The candidate's ranking score minus the best ranking score of any other FAQ.
    #[serde(default)]
    pub fused_margin: f32,
    /// Highest cosine between the turn and the candidate's question or alternates under the
    /// second encoder (Universal Sentence Encoder multilingual v3); 0 when the bot has none.
    #[serde(default)]
    pub use_cosine: f32,
    /// `use_cosine` minus the best second-encoder cosine of any other candidate.
    #[serde(default)]
    pub use_margin: f32,
}

/// Number of features.
const N: usize = 8;

impl Features {
    fn vector(&self) -> [f32; N] {
        [
            self.cosine,
            self.margin,
            self.overlap,
            self.lexical_top,
            self.answer_cosine,
            self.fused_margin,
            self.use_cosine,
            self.use_margin,
        ]
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
    /// Weight of [`Features::answer_cosine`] (0 in calibrations from before it existed).
    #[serde(default)]
    pub answer_cosine: f32,
    /// Weight of [`Features::fused_margin`] (0 in calibrations from before it existed).
    #[serde(default)]
    pub fused_margin: f32,
    /// Weight of [`Features::use_cosine`] (0 in calibrations from before it existed).
    #[serde(default)]
    pub use_cosine: f32,
    /// Weight of [`Features::use_margin`] (0 in calibrations from before it existed).
    #[serde(default)]
    pub use_margin: f32,
}

impl Default for Calibration {
    /// Fitted by `cargo run --release -p switchboard-bot --example calibrate` on
    /// `bot/eval/calibration.jsonl` (written for this purpose; no test line is in it), with
    /// the second encoder loaded (the bundled model files). A bot without the second encoder
    /// uses [`Calibration::without_second_encoder`] instead.
    fn default() -> Self {
        DEFAULT_WITH_USE
    }
}

/// See [`Calibration::default`]; refitted 2026-12-07 with the second encoder's two features.
const DEFAULT_WITH_USE: Calibration = Calibration {
    bias: -33.5815,
    cosine: 15.4508,
    margin: 27.4020,
    overlap: 1.3068,
    lexical_top: -0.3677,
    answer_cosine: 17.9744,
    fused_margin: 26.9813,
    use_cosine: 5.2323,
    use_margin: 6.9261,
};

/// The first stage of the default two-stage decision: the same fit as [`Calibration::default`]
/// (`calibrate` on `bot/eval/calibration.jsonl`) without the second encoder's two features.
/// Refitted 2026-12-07.
const DEFAULT_FIRST_STAGE: Calibration = Calibration {
    bias: -48.6455,
    cosine: 29.6624,
    margin: 30.3802,
    overlap: 2.2013,
    lexical_top: -0.3442,
    answer_cosine: 23.5648,
    fused_margin: 31.8390,
    use_cosine: 0.0,
    use_margin: 0.0,
};

/// When a turn gets the second encoder's opinion (one USE pass, about 1 ms alone on this
/// machine, and the share of a 2-core machine that goes with it).
///
/// The two-stage decision: a first-stage calibration without the second encoder's features
/// scores the candidates; only when the top candidate's first-stage confidence falls in the
/// band does the turn run the second encoder and get scored by the calibration in force.
/// Clear answers and clear out-of-scope turns skip it. The band was chosen on validation data
/// (docs/bench-bot.md, `second_opinion` example).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SecondOpinion {
    /// Every turn (the calibration in force always sees its second-encoder features).
    Always,
    /// Only when the first-stage confidence of the top candidate is in `[low, high)`.
    Band { low: f32, high: f32 },
    /// Never: the first-stage calibration decides alone.
    Never,
}

impl SecondOpinion {
    /// The band chosen on validation data (`second_opinion` example; docs/bench-bot.md):
    /// from the default `clarify_threshold` to a little above the default
    /// `answer_threshold`, in first-stage confidence.
    pub const DEFAULT: SecondOpinion = SecondOpinion::Band {
        low: 0.25,
        high: 0.8,
    };

    /// Whether a turn whose top candidate has first-stage confidence `p` runs the second
    /// encoder.
    pub fn wants(self, p: f32) -> bool {
        match self {
            SecondOpinion::Always => true,
            SecondOpinion::Never => false,
            SecondOpinion::Band { low, high } => p >= low && p < high,
        }
    }
}

impl Default for SecondOpinion {
    fn default() -> Self {
        SecondOpinion::DEFAULT
    }
}

impl Calibration {
    /// The first stage of [`Calibration::default`] (see [`SecondOpinion`]): fitted on the
    /// same lines without the second encoder's features, so they carry no weight.
    pub fn default_first_stage() -> Calibration {
        DEFAULT_FIRST_STAGE
    }

    /// True when the second encoder's features carry weight in this calibration (otherwise
    /// a turn never needs the second encoder's pass).
    pub fn uses_second_encoder(&self) -> bool {
        self.use_cosine != 0.0 || self.use_margin != 0.0
    }

    /// The default of a bot that runs without the second encoder (its files absent): the
    /// previous global calibration, fitted on the same set without the second encoder's
    /// features (they are 0 then, and would pull every confidence down).
    pub fn without_second_encoder() -> Calibration {
        Calibration {
            bias: -35.9066,
            cosine: 37.1544,
            margin: 69.1177,
            overlap: 2.4637,
            lexical_top: 0.1650,
            answer_cosine: 0.0,
            fused_margin: 0.0,
            use_cosine: 0.0,
            use_margin: 0.0,
        }
    }

    /// The probability that the candidate with these features is the right answer.
    pub fn confidence(&self, features: &Features) -> f32 {
        let weights = self.weights();
        let z = self.bias
            + weights
                .iter()
                .zip(features.vector())
                .map(|(w, x)| w * x)
                .sum::<f32>();
        sigmoid(z)
    }

    fn weights(&self) -> [f32; N] {
        [
            self.cosine,
            self.margin,
            self.overlap,
            self.lexical_top,
            self.answer_cosine,
            self.fused_margin,
            self.use_cosine,
            self.use_margin,
        ]
    }

    /// Fits the model on `(features, top candidate was right)` pairs by full-batch gradient
    /// descent on the log loss with a little L2, on standardized features (unfolded again in
    /// the result). Returns `None` when either class is missing.
    pub fn fit(samples: &[(Features, bool)]) -> Option<Calibration> {
        let weighted: Vec<(Features, bool, f32)> =
            samples.iter().map(|(f, right)| (*f, *right, 1.0)).collect();
        Calibration::fit_weighted(&weighted, 0.01)
    }

    /// [`Calibration::fit`] with a weight per sample and L2 strength `lambda` (on standardized
    /// features). A feature that is constant over the samples gets weight 0. `None` when
    /// either class is missing or the weights are not positive.
    pub fn fit_weighted(samples: &[(Features, bool, f32)], lambda: f32) -> Option<Calibration> {
        let weight_of = |s: &(Features, bool, f32)| {
            if s.2.is_finite() {
                s.2.max(0.0)
            } else {
                0.0
            }
        };
        let positive: f32 = samples.iter().filter(|s| s.1).map(weight_of).sum();
        let total: f32 = samples.iter().map(weight_of).sum();
        if positive <= 0.0 || positive >= total || !total.is_finite() {
            return None;
        }
        let ws: Vec<f32> = samples.iter().map(|s| weight_of(s) / total).collect();
        let xs: Vec<[f32; N]> = samples
            .iter()
            .map(|s| s.0.vector().map(|v| if v.is_finite() { v } else { 0.0 }))
            .collect();
        let mut mean = [0.0_f32; N];
        let mut scale = [0.0_f32; N];
        for (x, w) in xs.iter().zip(&ws) {
            for j in 0..N {
                mean[j] += x[j] * w;
            }
        }
        for (x, w) in xs.iter().zip(&ws) {
            for j in 0..N {
                scale[j] += (x[j] - mean[j]).powi(2) * w;
            }
        }
        let mut constant = [false; N];
        for (j, s) in scale.iter_mut().enumerate() {
            *s = s.sqrt();
            if *s < 1e-4 {
                constant[j] = true;
                *s = 1.0;
            }
        }
        let zs: Vec<[f32; N]> = xs
            .iter()
            .map(|x| {
                std::array::from_fn(|j| {
                    if constant[j] {
                        0.0
                    } else {
                        (x[j] - mean[j]) / scale[j]
                    }
                })
            })
            .collect();
        let ys: Vec<f32> = samples
            .iter()
            .map(|s| if s.1 { 1.0 } else { 0.0 })
            .collect();
        let (mut w, mut b) = ([0.0_f32; N], 0.0_f32);
        for _ in 0..3_000 {
            let mut gw = [0.0_f32; N];
            let mut gb = 0.0_f32;
            for ((z, y), weight) in zs.iter().zip(&ys).zip(&ws) {
                let p = sigmoid(b + (0..N).map(|j| w[j] * z[j]).sum::<f32>());
                let err = (p - y) * weight;
                gb += err;
                for j in 0..N {
                    gw[j] += err * z[j];
                }
            }
            b -= 0.5 * gb;
            for j in 0..N {
                w[j] -= 0.5 * (gw[j] + lambda * w[j]);
            }
        }
        let raw: [f32; N] = std::array::from_fn(|j| w[j] / scale[j]);
        let bias = b - (0..N).map(|j| raw[j] * mean[j]).sum::<f32>();
        Some(Calibration {
            bias,
            cosine: raw[0],
            margin: raw[1],
            overlap: raw[2],
            lexical_top: raw[3],
            answer_cosine: raw[4],
            fused_margin: raw[5],
            use_cosine: raw[6],
            use_margin: raw[7],
        })
    }

    /// The same model with its bias moved so that a candidate that had confidence `p` now
    /// has confidence `target` (used to put a chosen operating point at the tenant's
    /// `answer_threshold`).
    pub fn shifted(&self, p: f32, target: f32) -> Calibration {
        let logit = |v: f32| {
            let v = v.clamp(1e-4, 1.0 - 1e-4);
            (v / (1.0 - v)).ln()
        };
        Calibration {
            bias: self.bias - logit(p) + logit(target),
            ..self.clone()
        }
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
                    ..Features::default()
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
            ..Features::default()
        });
        let high = cal.confidence(&Features {
            cosine: 0.95,
            margin: 0.06,
            overlap: 0.5,
            lexical_top: 1.0,
            ..Features::default()
        });
        assert!(low < 0.2 && high > 0.8, "low {low} high {high}");
        assert!(Calibration::fit(&samples[..10]).is_none());
    }

    #[test]
    fn stored_calibrations_without_the_new_weights_keep_working() {
        let old: Calibration = serde_json::from_str(
            r#"{"bias":-35.9,"cosine":37.1,"margin":69.1,"overlap":2.4,"lexical_top":0.2}"#,
        )
        .expect("old calibration");
        assert_eq!(
            (
                old.answer_cosine,
                old.fused_margin,
                old.use_cosine,
                old.use_margin
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
        let f = Features {
            cosine: 0.95,
            margin: 0.05,
            overlap: 0.5,
            lexical_top: 1.0,
            ..Features::default()
        };
        // The second encoder's features do not move an old calibration's confidence.
        let with_use = Features {
            use_cosine: 0.9,
            use_margin: 0.1,
            ..f
        };
        assert_eq!(old.confidence(&f), old.confidence(&with_use));
        assert!(Calibration::default().use_cosine > 0.0);
        assert_eq!(Calibration::without_second_encoder().use_cosine, 0.0);
    }

    #[test]
    fn second_opinion_band_is_half_open() {
        let band = SecondOpinion::Band {
            low: 0.1,
            high: 0.9,
        };
        assert!(!band.wants(0.09) && band.wants(0.1) && band.wants(0.5) && !band.wants(0.9));
        assert!(SecondOpinion::Always.wants(1.0) && !SecondOpinion::Never.wants(0.5));
        assert!(!Calibration::default_first_stage().uses_second_encoder());
        assert!(Calibration::default().uses_second_encoder());
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
