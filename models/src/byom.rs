//! Bring your own model: a tenant's ONNX text classifier with its tokenizer.json and label
//! list, validated before activation.
//!
//! Accepted signature: an int64 `input_ids` input of rank 2, optionally int64 `attention_mask`
//! and `token_type_ids` of rank 2, and a first output of float logits (or probabilities) shaped
//! `[batch, labels]`. Validation loads both files, checks the signature and runs one probe text.
//!
//! A tenant's model is held to a deadline: a run longer than [`TENANT_MODEL_DEADLINE`] fails,
//! and after [`FAILURES_BEFORE_SUSPEND`] failures in a row the model is set aside for
//! [`SUSPENDED_FOR`]: its turns use the built-in intents meanwhile. Texts are cut to
//! [`MAX_TEXT_CHARS`] before the tokenizer sees them. A server runs each tenant's model in a
//! child process under a memory budget ([`ClassifierModel::isolated`], [`crate::worker`]): the
//! child is killed at the deadline. In process ([`ClassifierModel::validate`], for tests and
//! tools) ONNX Runtime's terminate flag, set by a watchdog, stops the run, and nothing bounds
//! its memory.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::{RunOptions, Session};
use ort::value::{Tensor, TensorElementType, ValueType};
use tokenizers::Tokenizer;

use crate::encoder::{describe, load_session, load_tokenizer, tokenize_batch};
use crate::error::{ModelError, Result};
use crate::intent::{LabelScore, Prediction, OUT_OF_SCOPE_LABEL};
use crate::runtime::lowercase_first;
use crate::worker::{WorkerClient, WorkerConfig};

/// Parses a label list: a JSON array of strings, or one label per line.
pub fn parse_label_list(content: &str) -> Result<Vec<String>> {
    let trimmed = content.trim_start_matches('\u{feff}').trim();
    let labels: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed)
            .map_err(|e| ModelError::Labels(format!("invalid json label list: {e}")))?
    } else {
        trimmed
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    check_labels(&labels)?;
    Ok(labels)
}

pub(crate) fn check_labels(labels: &[String]) -> Result<()> {
    if labels.len() < 2 {
        return Err(ModelError::Labels(format!(
            "need at least two labels, got {}",
            labels.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, label) in labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(ModelError::Labels(format!("label {i} is empty")));
        }
        if !seen.insert(label.as_str()) {
            return Err(ModelError::Labels(format!("label {label} appears twice")));
        }
    }
    Ok(())
}

/// How long one run of a tenant's model may take.
pub const TENANT_MODEL_DEADLINE: Duration = Duration::from_secs(1);
/// Failed runs in a row after which a tenant's model is set aside.
pub const FAILURES_BEFORE_SUSPEND: u32 = 3;
/// How long a failing model is set aside.
pub const SUSPENDED_FOR: Duration = Duration::from_secs(60);
/// The longest text a tenant's tokenizer is given (a customer message is at most 64 KiB).
pub const MAX_TEXT_CHARS: usize = 2_000;

/// A tenant's classifier loaded in this process: tokenizer, session and what its inputs are.
pub(crate) struct Loaded {
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    has_attention_mask: bool,
    has_token_type_ids: bool,
    pad_id: i64,
}

/// Where a tenant's model runs.
enum Backend {
    /// In this process (tests, tools): held to the deadline by ONNX Runtime's terminate flag.
    InProcess(Box<Loaded>),
    /// In a child process with a memory budget, killed at the deadline.
    Worker(WorkerClient),
}

/// A validated tenant classifier, ready to activate.
pub struct ClassifierModel {
    backend: Backend,
    labels: Vec<String>,
    threshold: f32,
    deadline: Duration,
    failures: AtomicU32,
    suspended_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for ClassifierModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassifierModel")
            .field("labels", &self.labels)
            .field("isolated", &matches!(self.backend, Backend::Worker(_)))
            .finish()
    }
}

fn int64_rank2(value: &ValueType) -> bool {
    matches!(value, ValueType::Tensor { ty: TensorElementType::Int64, shape, .. } if shape.len() == 2)
}

impl Loaded {
    /// Loads both files, checks the signature against the labels and runs the probe text
    /// (`deadline`: for the probe, `None` when someone else keeps the time).
    pub(crate) fn load(
        model: &Path,
        tokenizer: &Path,
        labels: &[String],
        deadline: Option<Duration>,
    ) -> Result<Loaded> {
        check_labels(labels)?;
        let tokenizer = load_tokenizer(tokenizer, 512)?;
        let session = load_session(model, 1, false)?;
        let mut has_input_ids = false;
        let mut has_attention_mask = false;
        let mut has_token_type_ids = false;
        for input in session.inputs() {
            let ok = int64_rank2(input.dtype());
            match input.name() {
                "input_ids" | "attention_mask" | "token_type_ids" if !ok => {
                    return Err(ModelError::Signature(format!(
                        "input {} is {}, expected int64 of rank 2",
                        input.name(),
                        describe(input.dtype())
                    )))
                }
                "input_ids" => has_input_ids = true,
                "attention_mask" => has_attention_mask = true,
                "token_type_ids" => has_token_type_ids = true,
                other => {
                    return Err(ModelError::Signature(format!(
                        "unsupported input {other}: allowed inputs are input_ids, attention_mask, token_type_ids"
                    )))
                }
            }
        }
        if !has_input_ids {
            return Err(ModelError::Signature(
                "model has no input named input_ids".into(),
            ));
        }
        let output = session
            .outputs()
            .first()
            .ok_or_else(|| ModelError::Signature("model has no output".into()))?;
        match output.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } if shape.len() == 2 => {
                if shape[1] > 0 && shape[1] as usize != labels.len() {
                    return Err(ModelError::Labels(format!(
                        "model has {} outputs per text but {} labels were given",
                        shape[1],
                        labels.len()
                    )));
                }
            }
            other => {
                return Err(ModelError::Signature(format!(
                    "output {} is {}, expected float of shape [batch, labels]",
                    output.name(),
                    describe(other)
                )))
            }
        }
        let pad_id = tokenizer
            .token_to_id("<pad>")
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .map_or(0, i64::from);
        let loaded = Loaded {
            tokenizer,
            session: Mutex::new(session),
            has_attention_mask,
            has_token_type_ids,
            pad_id,
        };
        // Probe: the dynamic dimension must match the label count too.
        let scores = loaded.run(&[PROBE_TEXT], deadline)?;
        if scores.first().map(Vec::len) != Some(labels.len()) {
            return Err(ModelError::Labels(format!(
                "model returned {} scores per text but {} labels were given",
                scores.first().map_or(0, Vec::len),
                labels.len()
            )));
        }
        Ok(loaded)
    }

    /// Probabilities per text, texts cut to [`MAX_TEXT_CHARS`]; with a deadline, a watchdog
    /// stops the run when it passes.
    pub(crate) fn run(&self, texts: &[&str], deadline: Option<Duration>) -> Result<Vec<Vec<f32>>> {
        let owned: Vec<String> = texts.iter().map(|t| cut(t)).collect();
        let batch = tokenize_batch(&self.tokenizer, &owned, self.pad_id)?;
        let shape = [batch.rows, batch.columns];
        let tensor = |data: Vec<i64>| {
            Tensor::from_array((shape, data)).map_err(|e| ModelError::Inference(e.to_string()))
        };
        let mut inputs = ort::inputs!["input_ids" => tensor(batch.ids)?];
        if self.has_attention_mask {
            inputs.push(("attention_mask".into(), tensor(batch.mask)?.into()));
        }
        if self.has_token_type_ids {
            inputs.push((
                "token_type_ids".into(),
                tensor(vec![0; batch.rows * batch.columns])?.into(),
            ));
        }
        let options = RunOptions::new().map_err(|e| ModelError::Inference(e.to_string()))?;
        if deadline.is_some_and(|d| d.is_zero()) {
            // No time at all: stopped before it starts.
            let _ = options.terminate();
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = std::thread::scope(|scope| {
            // The watchdog stops the run at the deadline, or ends when the run does.
            let (done, finished) = std::sync::mpsc::channel::<()>();
            let options = &options;
            if let Some(deadline) = deadline {
                scope.spawn(move || {
                    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        finished.recv_timeout(deadline)
                    {
                        let _ = options.terminate();
                    }
                });
            }
            let started = Instant::now();
            let outputs = session.run_with_options(inputs, options);
            drop(done);
            outputs.map_err(|e| match deadline {
                Some(deadline) if started.elapsed() >= deadline => ModelError::Deadline {
                    ms: deadline.as_millis() as u64,
                },
                _ => ModelError::Inference(lowercase_first(&e.to_string())),
            })
        })?;
        let (out_shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Inference(lowercase_first(&e.to_string())))?;
        let dims: Vec<i64> = out_shape.iter().copied().collect();
        if dims.len() != 2 || dims[0] as usize != batch.rows || dims[1] <= 0 {
            return Err(ModelError::Signature(format!(
                "output has shape {dims:?}, expected [{}, labels]",
                batch.rows
            )));
        }
        Ok(data
            .chunks(dims[1] as usize)
            .map(to_probabilities)
            .collect())
    }
}

/// The text a classifier is checked with before it is accepted.
const PROBE_TEXT: &str = "hello 你好";

/// A text as the tokenizer sees it: trimmed and cut to [`MAX_TEXT_CHARS`].
pub(crate) fn cut(text: &str) -> String {
    text.trim().chars().take(MAX_TEXT_CHARS).collect()
}

impl ClassifierModel {
    /// Loads and validates a classifier in this process; any problem is a typed error and
    /// nothing is activated. A server runs tenants' models with [`ClassifierModel::isolated`].
    pub fn validate(model: &Path, tokenizer: &Path, labels: &[String]) -> Result<ClassifierModel> {
        let loaded = Loaded::load(model, tokenizer, labels, Some(TENANT_MODEL_DEADLINE))?;
        Ok(Self::with_backend(
            Backend::InProcess(Box::new(loaded)),
            labels,
        ))
    }

    /// A classifier that runs in a child process under `config`'s memory budget. With
    /// `validate_now` the child starts at once and validates the files (the error is the
    /// validation's); otherwise it starts on the first use (files validated before, e.g. at
    /// upload), and a failure there is a failed run.
    pub fn isolated(
        model: &Path,
        tokenizer: &Path,
        labels: &[String],
        config: WorkerConfig,
        validate_now: bool,
    ) -> Result<ClassifierModel> {
        check_labels(labels)?;
        for path in [model, tokenizer] {
            if !path.is_file() {
                return Err(ModelError::FileMissing {
                    path: path.to_path_buf(),
                });
            }
        }
        let client = WorkerClient::new(config, model, tokenizer, labels);
        if validate_now {
            client.start()?;
        }
        Ok(Self::with_backend(Backend::Worker(client), labels))
    }

    fn with_backend(backend: Backend, labels: &[String]) -> ClassifierModel {
        ClassifierModel {
            backend,
            labels: labels.to_vec(),
            threshold: 0.0,
            deadline: TENANT_MODEL_DEADLINE,
            failures: AtomicU32::new(0),
            suspended_until: Mutex::new(None),
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The child process running the model, while one runs (`None` in process).
    pub fn worker_pid(&self) -> Option<u32> {
        match &self.backend {
            Backend::Worker(client) => client.pid(),
            Backend::InProcess(_) => None,
        }
    }

    /// Calls running or waiting for the child (always 0 in process).
    pub fn calls_in_flight(&self) -> usize {
        match &self.backend {
            Backend::Worker(client) => client.in_flight(),
            Backend::InProcess(_) => 0,
        }
    }

    /// Minimum top probability for an in-scope decision (default 0: never reject by score).
    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold.clamp(0.0, 1.0);
    }

    /// How long one run may take (default [`TENANT_MODEL_DEADLINE`]).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Probabilities per text: softmax of the outputs, unless they already are probabilities.
    /// Fails at once while the model is set aside after repeated failures.
    pub fn scores_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let suspended = *self
            .suspended_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if suspended.is_some_and(|until| Instant::now() < until) {
            return Err(ModelError::Suspended);
        }
        let result = match &self.backend {
            Backend::InProcess(loaded) => loaded.run(texts, Some(self.deadline)),
            Backend::Worker(client) => client.scores(texts, self.deadline),
        };
        match &result {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            // Waiting callers past the bound say nothing about the model.
            Err(ModelError::ModelBusy { .. }) => {}
            Err(_) => {
                if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= FAILURES_BEFORE_SUSPEND {
                    self.failures.store(0, Ordering::Relaxed);
                    *self
                        .suspended_until
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + SUSPENDED_FOR);
                }
            }
        }
        result
    }

    /// Classifies one text.
    pub fn classify_blocking(&self, text: &str) -> Result<Prediction> {
        let scores = self.scores_blocking(&[text])?;
        let probs = scores
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Inference("no output".into()))?;
        if probs.len() != self.labels.len() {
            return Err(ModelError::Labels(format!(
                "model returned {} scores but has {} labels",
                probs.len(),
                self.labels.len()
            )));
        }
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let best = order[0];
        let label = self.labels[best].clone();
        Ok(Prediction {
            out_of_scope: label == OUT_OF_SCOPE_LABEL || probs[best] < self.threshold,
            score: probs[best],
            alternatives: order
                .iter()
                .take(3)
                .map(|&i| LabelScore {
                    label: self.labels[i].clone(),
                    score: probs[i],
                })
                .collect(),
            label,
        })
    }
}

fn to_probabilities(row: &[f32]) -> Vec<f32> {
    let sum: f32 = row.iter().sum();
    if row.iter().all(|v| (0.0..=1.0).contains(v)) && (sum - 1.0).abs() < 1e-3 {
        return row.to_vec();
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|v| v / total).collect()
}
