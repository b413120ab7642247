//! Intent classification heads trained on encoder embeddings.
//!
//! A head is a small network (softmax regression, or one ReLU hidden layer) over standardized
//! embeddings, trained in Rust with Adam on cross-entropy. Out of scope is decided two ways:
//! examples labelled [`OUT_OF_SCOPE_LABEL`] form their own class, and a top-probability
//! threshold calibrated on held-out data (or on validation data with
//! [`IntentHead::calibrate_threshold`]) rejects low-confidence turns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::encoder::Encoder;
use crate::error::{ModelError, Result};
use crate::training_data::Example;

/// The label of the out-of-scope class. Examples with this label teach the head what to reject.
pub const OUT_OF_SCOPE_LABEL: &str = "out_of_scope";
/// Version of the serialized head format.
pub const HEAD_FORMAT: u32 = 1;

/// One training or evaluation item: an embedding, optionally the text it came from (needed by
/// heads with lexical features), and its label.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub embedding: &'a [f32],
    pub text: Option<&'a str>,
    pub label: &'a str,
}

impl<'a> Sample<'a> {
    pub fn new(embedding: &'a [f32], text: Option<&'a str>, label: &'a str) -> Self {
        Sample {
            embedding,
            text,
            label,
        }
    }
}

fn samples<'a>(data: &'a [(&'a [f32], &'a str)]) -> Vec<Sample<'a>> {
    data.iter()
        .map(|(e, l)| Sample {
            embedding: e,
            text: None,
            label: l,
        })
        .collect()
}

/// A classification result. `label` is the best label (or [`OUT_OF_SCOPE_LABEL`] when that
/// class wins); `out_of_scope` is true when the OOS class wins or `score` is under the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub label: String,
    pub score: f32,
    pub out_of_scope: bool,
    /// The three best labels with their probabilities, best first (for clarifying questions).
    pub alternatives: Vec<LabelScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layer {
    inputs: usize,
    outputs: usize,
    /// Row-major `[outputs][inputs]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Layer {
    fn new(inputs: usize, outputs: usize, rng: &mut Rng) -> Layer {
        let scale = (2.0 / inputs as f32).sqrt();
        let weights = (0..inputs * outputs)
            .map(|_| rng.normal() * scale * 0.5)
            .collect();
        Layer {
            inputs,
            outputs,
            weights,
            bias: vec![0.0; outputs],
        }
    }

    fn forward(&self, x: &[f32], out: &mut [f32]) {
        for (o, slot) in out.iter_mut().enumerate() {
            let row = &self.weights[o * self.inputs..(o + 1) * self.inputs];
            *slot = self.bias[o] + dot(row, x);
        }
    }

    fn valid(&self) -> bool {
        self.weights.len() == self.inputs * self.outputs
            && self.bias.len() == self.outputs
            && self.weights.iter().chain(&self.bias).all(|v| v.is_finite())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0_f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for j in 0..8 {
            acc[j] += a[i * 8 + j] * b[i * 8 + j];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// A trained intent classifier. Serialize with [`IntentHead::to_bytes`]; swap heads
/// atomically by replacing an `Arc<IntentHead>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentHead {
    format: u32,
    labels: Vec<String>,
    dimension: usize,
    feature_mean: Vec<f32>,
    feature_scale: Vec<f32>,
    hidden: Option<Layer>,
    output: Layer,
    threshold: f32,
    /// Optional hashed word/character n-gram features of the turn text, added to the logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lexical: Option<Lexical>,
    /// Optional out-of-scope gate by distance to the predicted label's centroid (see
    /// [`TrainConfig::centroid_keep`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    centroids: Option<CentroidGate>,
}

/// Out of scope by distance: the unit centroid of each label's training embeddings; a turn
/// whose cosine to its predicted label's centroid is under `threshold` is out of scope. Needs
/// no out-of-scope examples: the threshold keeps a share of held-out in-scope examples.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CentroidGate {
    /// `labels.len() × dimension`, row-major, in label order (zero rows for labels without
    /// examples and for the out-of-scope label).
    #[serde(with = "f32_base64")]
    vectors: Vec<f32>,
    threshold: f32,
}

impl CentroidGate {
    fn build(
        embeddings: &[&[f32]],
        targets: &[usize],
        rows: &[usize],
        labels: usize,
    ) -> CentroidGate {
        let dimension = embeddings.first().map_or(0, |e| e.len());
        let mut vectors = vec![0.0_f32; labels * dimension];
        for &r in rows {
            let t = targets[r];
            for (a, b) in vectors[t * dimension..(t + 1) * dimension]
                .iter_mut()
                .zip(embeddings[r])
            {
                *a += b;
            }
        }
        for row in vectors.chunks_mut(dimension.max(1)) {
            let n = row.iter().map(|a| a * a).sum::<f32>().sqrt();
            if n > 0.0 {
                row.iter_mut().for_each(|a| *a /= n);
            }
        }
        CentroidGate {
            vectors,
            threshold: 0.0,
        }
    }

    /// Cosine between a (unit) embedding and the centroid of `label`.
    fn similarity(&self, label: usize, embedding: &[f32]) -> f32 {
        let d = embedding.len();
        match self.vectors.get(label * d..(label + 1) * d) {
            Some(row) => dot(row, embedding),
            None => 0.0,
        }
    }
}

/// How the out-of-scope threshold is set during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ThresholdPolicy {
    /// Use this threshold.
    Fixed(f32),
    /// Pick the threshold that keeps this fraction of correctly classified held-out examples
    /// in scope (needs a held-out split; 0 otherwise).
    HeldOut { in_scope_recall: f32 },
}

/// Training settings. The defaults suit tenant sets of tens to thousands of examples.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Width of the ReLU hidden layer; 0 means softmax regression.
    pub hidden: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    pub batch_size: usize,
    /// Dropout on the inputs (and the hidden layer), a regularizer for frozen embeddings.
    pub dropout: f32,
    /// Fraction of each label's examples held out to measure accuracy and set the threshold
    /// (labels with fewer than 3 examples keep all of theirs).
    pub holdout_fraction: f32,
    /// After measuring on the held-out split, train the final head on all examples.
    pub retrain_on_all: bool,
    pub threshold: ThresholdPolicy,
    pub seed: u64,
    /// Hash buckets for lexical n-gram features of the text (0 turns them off). A head with
    /// lexical features needs the turn text: use [`IntentHead::classify_turn`].
    #[serde(default)]
    pub lexical_buckets: usize,
    /// Weight of the lexical features relative to the standardized embedding.
    #[serde(default = "default_lexical_scale")]
    pub lexical_scale: f32,
    /// Out-of-scope gate by distance to the predicted label's centroid, for tenants who give
    /// no out-of-scope examples: the threshold keeps this share of the held-out examples that
    /// the head classifies right (0 turns the gate off). With the gate on, the
    /// top-probability threshold of [`ThresholdPolicy::HeldOut`] is not used (0), because the
    /// two together reject too many in-scope turns (docs/bench-models.md).
    #[serde(default)]
    pub centroid_keep: f32,
}

fn default_lexical_scale() -> f32 {
    4.0
}

impl TrainConfig {
    /// A 512-wide ReLU hidden layer with stronger regularization: better on large sets
    /// (BANKING77: 93.0% vs 89.9% for softmax regression, see docs/bench-models.md), slower to
    /// train (minutes for 10k examples on 2 cores).
    pub fn large() -> TrainConfig {
        TrainConfig {
            hidden: 512,
            epochs: 30,
            learning_rate: 0.002,
            dropout: 0.3,
            weight_decay: 1e-3,
            centroid_keep: 0.98,
            ..TrainConfig::default()
        }
    }

    /// [`TrainConfig::large`] from 1,000 examples up, the default below.
    pub fn for_examples(examples: usize) -> TrainConfig {
        if examples >= 1000 {
            TrainConfig::large()
        } else {
            TrainConfig::default()
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: 0,
            epochs: 60,
            learning_rate: 0.01,
            weight_decay: 1e-4,
            batch_size: 32,
            dropout: 0.1,
            holdout_fraction: 0.2,
            retrain_on_all: true,
            threshold: ThresholdPolicy::HeldOut {
                in_scope_recall: 0.95,
            },
            seed: 7,
            lexical_buckets: 0,
            lexical_scale: default_lexical_scale(),
            centroid_keep: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCount {
    pub label: String,
    pub count: usize,
}

/// One label's held-out figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelAccuracy {
    pub label: String,
    pub held_out: usize,
    pub correct: usize,
    pub accuracy: f32,
}

/// What training did: per-label counts, held-out accuracy (when there was a held-out split)
/// and the threshold chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub examples: usize,
    pub labels: Vec<LabelCount>,
    pub held_out: usize,
    pub held_out_accuracy: Option<f32>,
    /// Per label, on the held-out split: how many were held out and how many the head named
    /// right (before the confidence gate). The out-of-scope label's row is its recall.
    #[serde(default)]
    pub held_out_per_label: Vec<LabelAccuracy>,
    pub threshold: f32,
    pub hidden: usize,
    pub epochs: usize,
    pub duration_ms: u64,
}

/// Accuracy figures on labelled embeddings (OOS examples carry [`OUT_OF_SCOPE_LABEL`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub examples: usize,
    /// Correct over all examples, counting an OOS decision as the OOS label.
    pub accuracy: f32,
    /// Correct (and not rejected) over in-scope examples.
    pub in_scope_accuracy: f32,
    /// Rejected over out-of-scope examples; `None` when there were none.
    pub out_of_scope_recall: Option<f32>,
    pub per_label_recall: BTreeMap<String, f32>,
}

/// Deterministic generator (splitmix64): training must be reproducible without a rand crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

fn softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in logits.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in logits.iter_mut() {
        *v /= sum;
    }
}

struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }
    fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32, decay: f32) {
        self.t += 1;
        let (b1, b2, eps) = (0.9_f32, 0.999_f32, 1e-8_f32);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..params.len() {
            let g = grads[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let update = (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
            params[i] -= lr * (update + decay * params[i]);
        }
    }
}

impl IntentHead {
    /// Trains a head on `(embedding, label)` pairs. Returns the head and the report.
    pub fn train(
        data: &[(&[f32], &str)],
        config: &TrainConfig,
    ) -> Result<(IntentHead, TrainReport)> {
        Self::train_samples(&samples(data), config)
    }

    /// Trains on samples; with `config.lexical_buckets > 0` every sample needs its text.
    pub fn train_samples(
        data: &[Sample<'_>],
        config: &TrainConfig,
    ) -> Result<(IntentHead, TrainReport)> {
        let started = std::time::Instant::now();
        let dimension = data
            .first()
            .map(|s| s.embedding.len())
            .ok_or_else(|| ModelError::Training("no examples".into()))?;
        if dimension == 0 {
            return Err(ModelError::Training("embeddings are empty".into()));
        }
        for (
            i,
            Sample {
                embedding,
                text,
                label,
            },
        ) in data.iter().enumerate()
        {
            if config.lexical_buckets > 0 && text.is_none() {
                return Err(ModelError::Training(format!(
                    "example {i} has no text, needed for lexical features"
                )));
            }
            if embedding.len() != dimension {
                return Err(ModelError::Training(format!(
                    "example {i} has dimension {}, expected {dimension}",
                    embedding.len()
                )));
            }
            if !embedding.iter().all(|v| v.is_finite()) {
                return Err(ModelError::Training(format!(
                    "example {i} has a non-finite value"
                )));
            }
            if label.trim().is_empty() {
                return Err(ModelError::Training(format!(
                    "example {i} has an empty label"
                )));
            }
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for sample in data {
            *counts.entry(sample.label).or_default() += 1;
        }
        if counts.len() < 2 {
            return Err(ModelError::Training("need at least two labels".into()));
        }
        let labels: Vec<String> = counts.keys().map(|s| s.to_string()).collect();
        let index: BTreeMap<&str, usize> =
            counts.keys().enumerate().map(|(i, l)| (*l, i)).collect();
        let targets: Vec<usize> = data.iter().map(|s| index[s.label]).collect();

        // Stratified held-out split.
        let mut rng = Rng(config.seed);
        let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); labels.len()];
        for (i, &t) in targets.iter().enumerate() {
            by_label[t].push(i);
        }
        let mut train_idx = Vec::new();
        let mut held_idx = Vec::new();
        let fraction = config.holdout_fraction.clamp(0.0, 0.5);
        for members in &mut by_label {
            rng.shuffle(members);
            let take = if members.len() >= 3 {
                ((members.len() as f32) * fraction).round() as usize
            } else {
                0
            };
            held_idx.extend_from_slice(&members[..take]);
            train_idx.extend_from_slice(&members[take..]);
        }

        let embeddings: Vec<&[f32]> = data.iter().map(|s| s.embedding).collect();
        let lexical: Option<Vec<Vec<(u32, f32)>>> = (config.lexical_buckets > 0).then(|| {
            data.iter()
                .map(|s| lexical_features(s.text.unwrap_or(""), config.lexical_buckets))
                .collect()
        });
        let lex = lexical.as_deref();
        let mut held_out_accuracy = None;
        let mut held_out_per_label = Vec::new();
        let mut centroid_threshold: Option<f32> = None;
        let mut threshold = match config.threshold {
            ThresholdPolicy::Fixed(t) => t,
            ThresholdPolicy::HeldOut { .. } => 0.0,
        };
        let final_head;
        if held_idx.is_empty() {
            final_head = fit(&embeddings, lex, &targets, &train_idx, &labels, config)?;
        } else {
            let head = fit(&embeddings, lex, &targets, &train_idx, &labels, config)?;
            let mut correct = 0;
            let mut confident: Vec<f32> = Vec::new();
            let mut by_label = vec![(0usize, 0usize); labels.len()];
            for &i in &held_idx {
                let probs =
                    head.probabilities_unchecked(embeddings[i], lex.map(|l| l[i].as_slice()));
                let (best, score) = argmax(&probs);
                by_label[targets[i]].0 += 1;
                if best == targets[i] {
                    by_label[targets[i]].1 += 1;
                    correct += 1;
                    if labels[best] != OUT_OF_SCOPE_LABEL {
                        confident.push(score);
                    }
                }
            }
            held_out_accuracy = Some(correct as f32 / held_idx.len() as f32);
            held_out_per_label = labels
                .iter()
                .zip(&by_label)
                .filter(|(_, (held, _))| *held > 0)
                .map(|(label, (held, right))| LabelAccuracy {
                    label: label.to_string(),
                    held_out: *held,
                    correct: *right,
                    accuracy: *right as f32 / *held as f32,
                })
                .collect();
            if config.centroid_keep > 0.0 {
                let gate = CentroidGate::build(&embeddings, &targets, &train_idx, labels.len());
                let mut sims: Vec<f32> = held_idx
                    .iter()
                    .filter_map(|&i| {
                        let probs = head
                            .probabilities_unchecked(embeddings[i], lex.map(|l| l[i].as_slice()));
                        let (best, _) = argmax(&probs);
                        (best == targets[i] && labels[best] != OUT_OF_SCOPE_LABEL)
                            .then(|| gate.similarity(best, embeddings[i]))
                    })
                    .collect();
                sims.sort_by(|a, b| a.total_cmp(b));
                if !sims.is_empty() {
                    let k = (((1.0 - config.centroid_keep.clamp(0.0, 1.0)) * sims.len() as f32)
                        .floor() as usize)
                        .min(sims.len() - 1);
                    centroid_threshold = Some(sims[k]);
                }
            }
            if let ThresholdPolicy::HeldOut { in_scope_recall } = config.threshold {
                confident.sort_by(|a, b| a.total_cmp(b));
                if !confident.is_empty() {
                    let k = (((1.0 - in_scope_recall.clamp(0.0, 1.0)) * confident.len() as f32)
                        .floor() as usize)
                        .min(confident.len() - 1);
                    threshold = confident[k].min(0.9);
                }
                if centroid_threshold.is_some() {
                    threshold = 0.0;
                }
            }
            final_head = if config.retrain_on_all {
                let all: Vec<usize> = (0..data.len()).collect();
                fit(&embeddings, lex, &targets, &all, &labels, config)?
            } else {
                head
            };
        }
        let mut head = final_head;
        head.threshold = threshold;
        if let Some(t) = centroid_threshold {
            let rows: Vec<usize> = if config.retrain_on_all {
                (0..data.len()).collect()
            } else {
                train_idx.clone()
            };
            let mut gate = CentroidGate::build(&embeddings, &targets, &rows, labels.len());
            gate.threshold = t;
            head.centroids = Some(gate);
        }
        let report = TrainReport {
            examples: data.len(),
            labels: counts
                .iter()
                .map(|(l, c)| LabelCount {
                    label: l.to_string(),
                    count: *c,
                })
                .collect(),
            held_out: held_idx.len(),
            held_out_accuracy,
            held_out_per_label,
            threshold,
            hidden: config.hidden,
            epochs: config.epochs,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        Ok((head, report))
    }

    /// Labels this head can return, sorted.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Minimum top probability for an in-scope decision.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold.clamp(0.0, 1.0);
    }

    /// True when the head also uses the turn text (see [`IntentHead::classify_turn`]).
    pub fn uses_text(&self) -> bool {
        self.lexical.is_some()
    }

    /// Class probabilities for one embedding, in [`IntentHead::labels`] order.
    pub fn probabilities(&self, embedding: &[f32]) -> Result<Vec<f32>> {
        self.probabilities_turn(None, embedding)
    }

    /// Class probabilities from the turn text (used by heads with lexical features) and its
    /// embedding.
    pub fn probabilities_turn(&self, text: Option<&str>, embedding: &[f32]) -> Result<Vec<f32>> {
        self.check_embedding(embedding)?;
        match (&self.lexical, text) {
            (Some(_), None) => Err(ModelError::InvalidEmbedding(
                "this head also uses the turn text: call classify_turn".into(),
            )),
            (Some(lexical), Some(text)) => {
                let features = lexical_features(text, lexical.buckets);
                Ok(self.probabilities_unchecked(embedding, Some(&features)))
            }
            (None, _) => Ok(self.probabilities_unchecked(embedding, None)),
        }
    }

    /// Classifies one embedding (from [`Encoder`] with the `query: ` policy). Heads trained
    /// with lexical features refuse this: use [`IntentHead::classify_turn`].
    pub fn classify(&self, embedding: &[f32]) -> Result<Prediction> {
        let probs = self.probabilities(embedding)?;
        Ok(self.decide(&probs, embedding))
    }

    /// Classifies a customer turn from its text and its embedding; works for every head.
    pub fn classify_turn(&self, text: &str, embedding: &[f32]) -> Result<Prediction> {
        let probs = self.probabilities_turn(Some(text), embedding)?;
        Ok(self.decide(&probs, embedding))
    }

    fn decide(&self, probs: &[f32], embedding: &[f32]) -> Prediction {
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let best = order[0];
        let label = self.labels[best].clone();
        let score = probs[best];
        let far = self
            .centroids
            .as_ref()
            .is_some_and(|g| g.similarity(best, embedding) < g.threshold);
        let out_of_scope = label == OUT_OF_SCOPE_LABEL || score < self.threshold || far;
        let alternatives = order
            .iter()
            .take(3)
            .map(|&i| LabelScore {
                label: self.labels[i].clone(),
                score: probs[i],
            })
            .collect();
        Prediction {
            label,
            score,
            out_of_scope,
            alternatives,
        }
    }

    /// Picks the threshold that maximizes in-scope accuracy plus out-of-scope recall on
    /// validation data (OOS examples labelled [`OUT_OF_SCOPE_LABEL`]) and sets it. Returns it.
    pub fn calibrate_threshold(&mut self, validation: &[(&[f32], &str)]) -> Result<f32> {
        self.calibrate_threshold_samples(&samples(validation))
    }

    /// [`IntentHead::calibrate_threshold`] on samples (with texts for lexical heads).
    pub fn calibrate_threshold_samples(&mut self, validation: &[Sample<'_>]) -> Result<f32> {
        let mut scored: Vec<(f32, bool, bool)> = Vec::with_capacity(validation.len()); // (score, is_oos, correct_label)
        for Sample {
            embedding,
            text,
            label,
        } in validation
        {
            let probs = self.probabilities_turn(*text, embedding)?;
            let (best, score) = argmax(&probs);
            let predicted_oos = self.labels[best] == OUT_OF_SCOPE_LABEL;
            let is_oos = *label == OUT_OF_SCOPE_LABEL;
            let score = if predicted_oos { -1.0 } else { score };
            scored.push((score, is_oos, !is_oos && self.labels[best] == *label));
        }
        let in_scope = scored.iter().filter(|s| !s.1).count().max(1) as f32;
        let oos = scored.iter().filter(|s| s.1).count();
        if oos == 0 {
            return Err(ModelError::Training(
                "validation data has no out-of-scope examples".into(),
            ));
        }
        let mut best = (f32::NEG_INFINITY, 0.0_f32);
        for step in 0..=99 {
            let t = step as f32 / 100.0;
            let correct_in = scored.iter().filter(|s| !s.1 && s.2 && s.0 >= t).count() as f32;
            let rejected = scored.iter().filter(|s| s.1 && s.0 < t).count() as f32;
            let objective = correct_in / in_scope + rejected / oos as f32;
            if objective > best.0 + 1e-6 {
                best = (objective, t);
            }
        }
        self.threshold = best.1;
        Ok(best.1)
    }

    /// Accuracy, per-label recall and out-of-scope recall on labelled embeddings.
    pub fn evaluate(&self, data: &[(&[f32], &str)]) -> Result<EvalReport> {
        self.evaluate_samples(&samples(data))
    }

    /// [`IntentHead::evaluate`] on samples (with texts for lexical heads).
    pub fn evaluate_samples(&self, data: &[Sample<'_>]) -> Result<EvalReport> {
        let mut correct = 0usize;
        let mut in_total = 0usize;
        let mut in_correct = 0usize;
        let mut oos_total = 0usize;
        let mut oos_rejected = 0usize;
        let mut per_label: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for Sample {
            embedding,
            text,
            label,
        } in data
        {
            let prediction = self.decide(&self.probabilities_turn(*text, embedding)?, embedding);
            let is_oos = *label == OUT_OF_SCOPE_LABEL;
            let entry = per_label.entry(label.to_string()).or_default();
            entry.1 += 1;
            let right = if is_oos {
                prediction.out_of_scope
            } else {
                !prediction.out_of_scope && prediction.label == *label
            };
            if right {
                correct += 1;
                entry.0 += 1;
            }
            if is_oos {
                oos_total += 1;
                oos_rejected += usize::from(prediction.out_of_scope);
            } else {
                in_total += 1;
                in_correct += usize::from(right);
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
        Ok(EvalReport {
            examples: data.len(),
            accuracy: ratio(correct, data.len()),
            in_scope_accuracy: ratio(in_correct, in_total),
            out_of_scope_recall: (oos_total > 0).then(|| ratio(oos_rejected, oos_total)),
            per_label_recall: per_label
                .into_iter()
                .map(|(l, (c, t))| (l, ratio(c, t)))
                .collect(),
        })
    }

    /// JSON bytes, for storage in the gateway's database.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a head serialized by [`IntentHead::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<IntentHead> {
        let head: IntentHead =
            serde_json::from_slice(bytes).map_err(|e| ModelError::InvalidHead(e.to_string()))?;
        head.validate()?;
        Ok(head)
    }

    fn validate(&self) -> Result<()> {
        if self.format != HEAD_FORMAT {
            return Err(ModelError::InvalidHead(format!(
                "unsupported format {}",
                self.format
            )));
        }
        if self.labels.len() < 2 {
            return Err(ModelError::InvalidHead("fewer than two labels".into()));
        }
        if self.feature_mean.len() != self.dimension || self.feature_scale.len() != self.dimension {
            return Err(ModelError::InvalidHead(
                "feature normalization does not match the dimension".into(),
            ));
        }
        let output_inputs = match &self.hidden {
            Some(hidden) => {
                if !hidden.valid() || hidden.inputs != self.dimension {
                    return Err(ModelError::InvalidHead("hidden layer is malformed".into()));
                }
                hidden.outputs
            }
            None => self.dimension,
        };
        if !self.output.valid()
            || self.output.inputs != output_inputs
            || self.output.outputs != self.labels.len()
        {
            return Err(ModelError::InvalidHead("output layer is malformed".into()));
        }
        if !self.threshold.is_finite() || !(0.0..=1.0).contains(&self.threshold) {
            return Err(ModelError::InvalidHead("threshold out of range".into()));
        }
        if let Some(lexical) = &self.lexical {
            if lexical.buckets == 0
                || lexical.classes != self.labels.len()
                || lexical.weights.len() != lexical.buckets * lexical.classes
                || !lexical.scale.is_finite()
                || !lexical.weights.iter().all(|w| w.is_finite())
            {
                return Err(ModelError::InvalidHead("lexical layer is malformed".into()));
            }
        }
        if let Some(gate) = &self.centroids {
            if gate.vectors.len() != self.labels.len() * self.dimension
                || !gate.threshold.is_finite()
                || !gate.vectors.iter().all(|v| v.is_finite())
            {
                return Err(ModelError::InvalidHead("centroid gate is malformed".into()));
            }
        }
        Ok(())
    }

    fn check_embedding(&self, embedding: &[f32]) -> Result<()> {
        if embedding.len() != self.dimension {
            return Err(ModelError::InvalidEmbedding(format!(
                "dimension {} does not match the head's {}",
                embedding.len(),
                self.dimension
            )));
        }
        if !embedding.iter().all(|v| v.is_finite()) {
            return Err(ModelError::InvalidEmbedding("non-finite value".into()));
        }
        Ok(())
    }

    fn standardize(&self, embedding: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            embedding
                .iter()
                .zip(&self.feature_mean)
                .zip(&self.feature_scale)
                .map(|((x, m), s)| (x - m) * s),
        );
    }

    fn probabilities_unchecked(
        &self,
        embedding: &[f32],
        lexical_features: Option<&[(u32, f32)]>,
    ) -> Vec<f32> {
        let mut x = Vec::with_capacity(self.dimension);
        self.standardize(embedding, &mut x);
        let mut logits = vec![0.0; self.labels.len()];
        match &self.hidden {
            Some(hidden) => {
                let mut h = vec![0.0; hidden.outputs];
                hidden.forward(&x, &mut h);
                h.iter_mut().for_each(|v| *v = v.max(0.0));
                self.output.forward(&h, &mut logits);
            }
            None => self.output.forward(&x, &mut logits),
        }
        if let (Some(lexical), Some(features)) = (&self.lexical, lexical_features) {
            lexical.add_logits(features, &mut logits);
        }
        softmax(&mut logits);
        logits
    }
}

fn argmax(values: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Trains one head on the rows `rows` of `embeddings`.
#[allow(clippy::needless_range_loop)] // parallel indexing of logits, gradients and weight rows
fn fit(
    embeddings: &[&[f32]],
    lexical_rows: Option<&[Vec<(u32, f32)>]>,
    targets: &[usize],
    rows: &[usize],
    labels: &[String],
    config: &TrainConfig,
) -> Result<IntentHead> {
    let dimension = embeddings[0].len();
    let classes = labels.len();
    let mut rng = Rng(config.seed ^ 0x5EED);
    // Standardize features with the training rows' statistics.
    let n = rows.len().max(1) as f32;
    let mut mean = vec![0.0_f32; dimension];
    for &r in rows {
        for (m, x) in mean.iter_mut().zip(embeddings[r]) {
            *m += x / n;
        }
    }
    let mut var = vec![0.0_f32; dimension];
    for &r in rows {
        for ((v, x), m) in var.iter_mut().zip(embeddings[r]).zip(&mean) {
            *v += (x - m) * (x - m) / n;
        }
    }
    let scale: Vec<f32> = var.iter().map(|v| 1.0 / (v.sqrt() + 1e-6)).collect();
    let inputs: Vec<Vec<f32>> = rows
        .iter()
        .map(|&r| {
            embeddings[r]
                .iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((x, m), s)| (x - m) * s)
                .collect()
        })
        .collect();
    let ys: Vec<usize> = rows.iter().map(|&r| targets[r]).collect();

    let mut hidden = (config.hidden > 0).then(|| Layer::new(dimension, config.hidden, &mut rng));
    let width = hidden.as_ref().map_or(dimension, |h| h.outputs);
    let mut output = Layer::new(width, classes, &mut rng);
    output.weights.iter_mut().for_each(|w| *w *= 0.1);
    let mut adam_hw = hidden.as_ref().map(|h| Adam::new(h.weights.len()));
    let mut adam_hb = hidden.as_ref().map(|h| Adam::new(h.bias.len()));
    let mut adam_ow = Adam::new(output.weights.len());
    let mut adam_ob = Adam::new(output.bias.len());
    let mut lexical = lexical_rows.map(|_| Lexical {
        buckets: config.lexical_buckets,
        classes,
        scale: config.lexical_scale,
        weights: vec![0.0; config.lexical_buckets * classes],
    });
    let mut adam_lex = lexical.as_ref().map(|l| Adam::new(l.weights.len()));
    let mut grad_lex = lexical.as_ref().map(|l| vec![0.0_f32; l.weights.len()]);
    let mut touched: Vec<u32> = Vec::new();

    let batch = config.batch_size.max(1);
    let keep = 1.0 - config.dropout.clamp(0.0, 0.9);
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let mut x = vec![0.0_f32; dimension];
    let mut h = vec![0.0_f32; width];
    let mut logits = vec![0.0_f32; classes];
    let mut grad_hw = hidden.as_ref().map(|l| vec![0.0_f32; l.weights.len()]);
    let mut grad_hb = hidden.as_ref().map(|l| vec![0.0_f32; l.bias.len()]);
    let mut grad_ow = vec![0.0_f32; output.weights.len()];
    let mut grad_ob = vec![0.0_f32; output.bias.len()];
    let mut dh = vec![0.0_f32; width];
    let epochs = config.epochs.max(1);
    let total_steps = (epochs * inputs.len().div_ceil(batch)) as f32;
    let mut step = 0usize;
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            grad_ow.iter_mut().for_each(|g| *g = 0.0);
            grad_ob.iter_mut().for_each(|g| *g = 0.0);
            if let Some(g) = grad_hw.as_mut() {
                g.iter_mut().for_each(|v| *v = 0.0);
            }
            if let Some(g) = grad_hb.as_mut() {
                g.iter_mut().for_each(|v| *v = 0.0);
            }
            if let Some(g) = grad_lex.as_mut() {
                for &bucket in &touched {
                    let start = bucket as usize * classes;
                    g[start..start + classes].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            touched.clear();
            let inv = 1.0 / chunk.len() as f32;
            for &i in chunk {
                for (d, s) in x.iter_mut().zip(&inputs[i]) {
                    *d = if keep < 1.0 && rng.uniform() > keep {
                        0.0
                    } else {
                        s / keep
                    };
                }
                let features: &[f32] = match &hidden {
                    Some(layer) => {
                        layer.forward(&x, &mut h);
                        for v in h.iter_mut() {
                            *v = if *v > 0.0 && (keep >= 1.0 || rng.uniform() <= keep) {
                                *v / keep
                            } else {
                                0.0
                            };
                        }
                        &h
                    }
                    None => &x,
                };
                output.forward(features, &mut logits);
                let lexical_input = lexical_rows.map(|l| l[rows[i]].as_slice());
                if let (Some(layer), Some(input)) = (&lexical, lexical_input) {
                    layer.add_logits(input, &mut logits);
                }
                softmax(&mut logits);
                logits[ys[i]] -= 1.0; // dLoss/dlogits
                if let (Some(layer), Some(input), Some(g)) =
                    (&lexical, lexical_input, grad_lex.as_mut())
                {
                    for &(bucket, value) in input {
                        touched.push(bucket);
                        let start = bucket as usize * classes;
                        for c in 0..classes {
                            g[start + c] += logits[c] * inv * value * layer.scale;
                        }
                    }
                }
                for c in 0..classes {
                    let g = logits[c] * inv;
                    if g == 0.0 {
                        continue;
                    }
                    grad_ob[c] += g;
                    let row = &mut grad_ow[c * width..(c + 1) * width];
                    for (w, f) in row.iter_mut().zip(features) {
                        *w += g * f;
                    }
                }
                if let (Some(layer), Some(ghw), Some(ghb)) =
                    (&hidden, grad_hw.as_mut(), grad_hb.as_mut())
                {
                    dh.iter_mut().for_each(|v| *v = 0.0);
                    for c in 0..classes {
                        let g = logits[c] * inv;
                        let row = &output.weights[c * width..(c + 1) * width];
                        for (d, w) in dh.iter_mut().zip(row) {
                            *d += g * w;
                        }
                    }
                    for j in 0..width {
                        if h[j] <= 0.0 {
                            continue;
                        }
                        let g = dh[j] / keep;
                        ghb[j] += g;
                        let row = &mut ghw[j * layer.inputs..(j + 1) * layer.inputs];
                        for (w, xi) in row.iter_mut().zip(&x) {
                            *w += g * xi;
                        }
                    }
                }
            }
            // Cosine learning-rate decay.
            let progress = step as f32 / total_steps;
            let lr = config.learning_rate * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
            step += 1;
            adam_ow.step(&mut output.weights, &grad_ow, lr, config.weight_decay);
            adam_ob.step(&mut output.bias, &grad_ob, lr, 0.0);
            if let (Some(layer), Some(adam), Some(g)) =
                (lexical.as_mut(), adam_lex.as_mut(), grad_lex.as_ref())
            {
                adam.step(&mut layer.weights, g, lr, config.weight_decay);
            }
            if let (Some(layer), Some(a), Some(b), Some(gw), Some(gb)) = (
                hidden.as_mut(),
                adam_hw.as_mut(),
                adam_hb.as_mut(),
                grad_hw.as_ref(),
                grad_hb.as_ref(),
            ) {
                a.step(&mut layer.weights, gw, lr, config.weight_decay);
                b.step(&mut layer.bias, gb, lr, 0.0);
            }
        }
    }
    let head = IntentHead {
        format: HEAD_FORMAT,
        labels: labels.to_vec(),
        dimension,
        feature_mean: mean,
        feature_scale: scale,
        hidden: hidden.take(),
        output,
        threshold: 0.0,
        lexical,
        centroids: None,
    };
    head.validate()
        .map_err(|e| ModelError::Training(format!("training diverged: {e}")))?;
    Ok(head)
}

/// Linear weights over hashed n-gram features of the turn text.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lexical {
    buckets: usize,
    classes: usize,
    scale: f32,
    /// Row-major `[buckets][classes]`, stored as base64 of little-endian f32 to keep heads small.
    #[serde(with = "f32_base64")]
    weights: Vec<f32>,
}

impl Lexical {
    fn add_logits(&self, features: &[(u32, f32)], logits: &mut [f32]) {
        for &(bucket, value) in features {
            let start = bucket as usize * self.classes;
            if let Some(row) = self.weights.get(start..start + self.classes) {
                for (logit, w) in logits.iter_mut().zip(row) {
                    *logit += w * value * self.scale;
                }
            }
        }
    }
}

mod f32_base64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(
                "weights are not a whole number of f32",
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

fn fnv1a(kind: u8, parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    };
    eat(kind);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            eat(0x1F);
        }
        part.bytes().for_each(&mut eat);
    }
    hash
}

/// Hashed lexical features of a text: word unigrams and bigrams (each CJK character is a word),
/// and character 3–5-grams inside Latin words; sublinear counts, L2-normalized.
pub(crate) fn lexical_features(text: &str, buckets: usize) -> Vec<(u32, f32)> {
    let lower = text.to_lowercase();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in lower.chars() {
        if is_cjk(c) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            words.push(c.to_string());
        } else if c.is_alphanumeric() {
            current.push(c);
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut counts: BTreeMap<u32, f32> = BTreeMap::new();
    let buckets = buckets.max(1) as u64;
    let mut add = |hash: u64| *counts.entry((hash % buckets) as u32).or_default() += 1.0;
    for (i, word) in words.iter().enumerate() {
        add(fnv1a(b'w', &[word]));
        if let Some(next) = words.get(i + 1) {
            add(fnv1a(b'b', &[word, next]));
        }
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > 1 && !chars.iter().any(|c| is_cjk(*c)) {
            let padded: Vec<char> = std::iter::once(' ')
                .chain(chars.iter().copied())
                .chain(std::iter::once(' '))
                .collect();
            for n in 3..=5 {
                for window in padded.windows(n) {
                    let gram: String = window.iter().collect();
                    add(fnv1a(b'c', &[&gram]));
                }
            }
        }
    }
    let mut features: Vec<(u32, f32)> =
        counts.into_iter().map(|(b, c)| (b, 1.0 + c.ln())).collect();
    let norm = features.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        features.iter_mut().for_each(|(_, v)| *v /= norm);
    }
    features
}

/// Embeds `examples` with the encoder (`query: ` policy) and trains a head on them.
pub fn train_on_texts(
    encoder: &Encoder,
    examples: &[Example],
    config: &TrainConfig,
) -> Result<(IntentHead, TrainReport)> {
    if examples.is_empty() {
        return Err(ModelError::Training("no examples".into()));
    }
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let embeddings = encoder.embed_blocking(&texts)?;
    let data: Vec<Sample<'_>> = embeddings
        .iter()
        .zip(examples)
        .map(|(e, x)| Sample {
            embedding: e.as_slice(),
            text: Some(x.text.as_str()),
            label: x.label.as_str(),
        })
        .collect();
    IntentHead::train_samples(&data, config)
}
