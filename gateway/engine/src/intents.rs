//! The models as the gateway runs them: one encoder and built-in intent head per process (loaded
//! once, off the async executor), and each tenant's own intent classifier — a head trained here
//! on the shared encoder, or an ONNX classifier the tenant brought — kept in the store and cached
//! on each node (re-read when its stamp changes, checked at most every few seconds).
//!
//! A tenant's ONNX classifier never runs in this process: each one has a child process of its
//! own (the server's binary as `switchboard model-worker`, see [`switchboard_models::worker`])
//! with a memory budget, started on first use, killed at the run's deadline and when the model
//! is replaced or reset. A failed run fails the classify call with a stable code
//! (`model_out_of_memory`, `model_timeout`, `model_failed`, `model_suspended`, `busy`); a bot
//! turn uses the built-in intents instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
pub use switchboard_models::WorkerConfig;
use switchboard_models::{
    builtin, check_training_set, parse_examples, train_on_texts, ClassifierModel, Encoder,
    EncoderService, Example, IntentHead, ModelError, Prediction, ServiceConfig, TrainConfig,
    TrainReport, TrainingFileError, TrainingFormat,
};

use crate::error::{ServiceError, ServiceResult};
use store::util::now_ms;
use store::{IntentModelRecord, Store};

/// How long a node trusts its cached copy of a tenant's classifier before checking the store.
const STAMP_TTL: Duration = Duration::from_secs(2);

/// The process-wide models: loading takes a second or two and about 100 MB, so every server in
/// the process (tests start many) shares them.
pub struct Models {
    pub encoder: Arc<Encoder>,
    pub service: EncoderService,
    pub builtin: Arc<IntentHead>,
}

static MODELS: OnceLock<Result<Arc<Models>, String>> = OnceLock::new();

/// Loads the models on first use (blocking: call it from a blocking thread). A failure (no ONNX
/// Runtime, a missing model file) is remembered and returned with the fix it names.
pub fn models_blocking() -> Result<Arc<Models>, String> {
    MODELS
        .get_or_init(|| {
            let started = Instant::now();
            let encoder = Arc::new(Encoder::load_default().map_err(|e| e.to_string())?);
            let (head, _) = builtin::builtin_head(&encoder).map_err(|e| e.to_string())?;
            let service = EncoderService::start_shared(encoder.clone(), ServiceConfig::default())
                .map_err(|e| e.to_string())?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "models loaded (encoder, built-in intents)"
            );
            Ok(Arc::new(Models {
                encoder,
                service,
                builtin: Arc::new(head),
            }))
        })
        .clone()
}

/// [`models_blocking`] from async code.
pub async fn models() -> ServiceResult<Arc<Models>> {
    match MODELS.get() {
        Some(loaded) => loaded.clone(),
        None => tokio::task::spawn_blocking(models_blocking)
            .await
            .map_err(|error| {
                ServiceError::Internal(anyhow::anyhow!("model loading failed: {error}"))
            })?,
    }
    .map_err(|message| ServiceError::unavailable("models_unavailable", message))
}

/// A tenant's own classifier.
#[derive(Clone)]
pub enum TenantClassifier {
    /// Trained here on the shared encoder (includes the built-in intents).
    Head(Arc<IntentHead>),
    /// Brought by the tenant; runs in a child process of its own.
    Onnx(Arc<ClassifierModel>),
}

#[derive(Clone)]
struct Cached {
    checked: Instant,
    stamp: Option<i64>,
    classifier: Option<TenantClassifier>,
}

/// The classify answer of `POST .../intents/classify`.
#[derive(Debug, Clone, Serialize)]
pub struct Classified {
    pub label: String,
    pub score: f32,
    pub out_of_scope: bool,
    /// `builtin`, `trained` or `onnx`.
    pub model: &'static str,
}

/// What training reports back.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    #[serde(flatten)]
    pub report: TrainReport,
    /// The tenant's own examples (the built-in intents are added to them).
    pub tenant_examples: usize,
    /// Out-of-scope recall: of the generic out-of-scope questions (world knowledge,
    /// chit-chat), never trained on, the share the new head rejects; `None` when they were part
    /// of the training set (a tenant without examples).
    pub out_of_scope_recall: Option<f32>,
    /// How many such questions were asked.
    pub out_of_scope_probes: usize,
}

pub struct Intents {
    store: Store,
    dir: PathBuf,
    worker: WorkerConfig,
    cache: RwLock<HashMap<String, Cached>>,
}

fn model_error(error: ModelError) -> ServiceError {
    match error {
        ModelError::Busy { .. } => ServiceError::unavailable("busy", error.to_string()),
        ModelError::Training(_) => ServiceError::invalid("bad_training_set", error.to_string()),
        ModelError::Labels(_) => ServiceError::invalid("bad_labels", error.to_string()),
        ModelError::InvalidModel { .. } | ModelError::Signature(_) => {
            ServiceError::invalid("bad_model", error.to_string())
        }
        ModelError::InvalidTokenizer { .. } => {
            ServiceError::invalid("bad_tokenizer", error.to_string())
        }
        ModelError::ModelBusy { .. } => ServiceError::unavailable("busy", error.to_string()),
        ModelError::OutOfMemory { .. } => {
            ServiceError::unavailable("model_out_of_memory", error.to_string())
        }
        ModelError::Deadline { .. } => {
            ServiceError::unavailable("model_timeout", error.to_string())
        }
        ModelError::Suspended => ServiceError::unavailable("model_suspended", error.to_string()),
        ModelError::Worker(_) | ModelError::Inference(_) | ModelError::Tokenize(_) => {
            ServiceError::unavailable("model_failed", error.to_string())
        }
        other => ServiceError::Internal(anyhow::Error::new(other)),
    }
}

/// An upload's validation failing at run time is the model's fault: refused, with the code the
/// failure would have at classify time.
fn upload_error(error: ModelError) -> ServiceError {
    match error {
        ModelError::OutOfMemory { .. } => {
            ServiceError::invalid("model_out_of_memory", error.to_string())
        }
        ModelError::Deadline { .. } => ServiceError::invalid("model_timeout", error.to_string()),
        ModelError::Worker(_) | ModelError::Inference(_) | ModelError::Tokenize(_) => {
            ServiceError::invalid("bad_model", error.to_string())
        }
        other => model_error(other),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> ServiceResult<T> {
    crate::error::blocking("model", work).await
}

/// Parses a training file (JSON Lines or CSV `text,label`); every bad line is reported
/// (`bad_training_file`). A file over the bounds of a training set is refused while it is read,
/// at its first record too many: `too_many_examples` (over
/// [`switchboard_models::MAX_EXAMPLES`]), `too_many_labels` (over
/// [`switchboard_models::MAX_LABELS`]).
pub fn parse_training(content: &str, file_name: Option<&str>) -> ServiceResult<Vec<Example>> {
    let format = TrainingFormat::detect(file_name, content);
    parse_examples(content, format).map_err(training_file_error)
}

fn training_file_error(error: TrainingFileError) -> ServiceError {
    match error {
        TrainingFileError::Lines(errors) => {
            let lines: Vec<String> = errors
                .errors
                .iter()
                .take(20)
                .map(|error| error.to_string())
                .collect();
            ServiceError::invalid("bad_training_file", lines.join("; "))
        }
        over => ServiceError::invalid(over.code(), over.to_string()),
    }
}

impl Intents {
    /// `dir`: where tenants' model files are written; `worker`: how their classifiers run.
    pub fn new(store: Store, dir: &Path, worker: WorkerConfig) -> Arc<Intents> {
        Arc::new(Intents {
            store,
            dir: dir.to_path_buf(),
            worker,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The tenant's classifier (`None`: the built-in intents), re-read from the store when it
    /// changed there.
    pub async fn classifier(&self, tenant: &str) -> ServiceResult<Option<TenantClassifier>> {
        if let Some(cached) = self.cached(tenant) {
            if cached.checked.elapsed() < STAMP_TTL {
                return Ok(cached.classifier);
            }
        }
        let stamp = self.store.intent_model_stamp(tenant).await?;
        if let Some(cached) = self.cached(tenant) {
            if cached.stamp == stamp {
                self.remember(tenant, stamp, cached.classifier.clone());
                return Ok(cached.classifier);
            }
        }
        let classifier = match self.store.intent_model(tenant).await? {
            Some(record) => Some(self.load(record).await?),
            None => None,
        };
        self.remember(tenant, stamp, classifier.clone());
        Ok(classifier)
    }

    fn cached(&self, tenant: &str) -> Option<Cached> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    fn remember(&self, tenant: &str, stamp: Option<i64>, classifier: Option<TenantClassifier>) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                tenant.to_owned(),
                Cached {
                    checked: Instant::now(),
                    stamp,
                    classifier,
                },
            );
    }

    async fn load(&self, record: IntentModelRecord) -> ServiceResult<TenantClassifier> {
        match record.kind.as_str() {
            "head" => {
                let bytes = record.head.unwrap_or_default();
                let head = IntentHead::from_bytes(&bytes).map_err(model_error)?;
                Ok(TenantClassifier::Head(Arc::new(head)))
            }
            _ => {
                let dir = self
                    .dir
                    .join(&record.tenant_id)
                    .join(record.updated_at.to_string());
                let labels = switchboard_models::parse_label_list(
                    record.labels.as_deref().unwrap_or_default(),
                )
                .map_err(model_error)?;
                let model = record.model.unwrap_or_default();
                let tokenizer = record.tokenizer.unwrap_or_default();
                // Validated at its upload: the child starts on the first classify.
                let worker = self.worker.clone();
                let classifier = blocking(move || {
                    onnx_classifier(&dir, &model, &tokenizer, &labels, worker, false)
                })
                .await??;
                Ok(TenantClassifier::Onnx(Arc::new(classifier)))
            }
        }
    }

    /// Trains the tenant's head on its examples plus the built-in intents, then swaps it in.
    pub async fn train(&self, tenant: &str, examples: Vec<Example>) -> ServiceResult<TrainOutcome> {
        if examples.is_empty() {
            return Err(ServiceError::invalid("bad_training_set", "no examples"));
        }
        // Parsed files are within the bounds already; a set from elsewhere is held to them
        // before anything is embedded.
        check_training_set(&examples).map_err(training_file_error)?;
        let models = models().await?;
        let tenant_examples = examples.len();
        let (head, report, out_of_scope_recall) = blocking(move || {
            let set = builtin::training_set(&examples);
            let config = TrainConfig::for_examples(set.len());
            let (head, report) = train_on_texts(&models.encoder, &set, &config)?;
            // The generic out-of-scope questions are not in a tenant's training set: asking
            // them is a held-out measure of what the head rejects.
            let probes = builtin::generic_out_of_scope();
            let embeddings = models.encoder.embed_blocking(&probes)?;
            let mut rejected = 0;
            for (text, embedding) in probes.iter().zip(&embeddings) {
                if head.classify_turn(text, embedding)?.out_of_scope {
                    rejected += 1;
                }
            }
            let recall = (!probes.is_empty()).then(|| rejected as f32 / probes.len() as f32);
            Ok::<_, switchboard_models::ModelError>((head, report, recall))
        })
        .await?
        .map_err(model_error)?;
        let out_of_scope_probes = builtin::generic_out_of_scope().len();
        let record = IntentModelRecord {
            tenant_id: tenant.to_owned(),
            kind: "head".into(),
            head: Some(head.to_bytes()),
            model: None,
            tokenizer: None,
            labels: None,
            report: serde_json::to_value(&report).unwrap_or_default(),
            updated_at: now_ms(),
        };
        self.store.put_intent_model(&record).await?;
        let classifier = Some(TenantClassifier::Head(Arc::new(head)));
        self.remember(tenant, Some(record.updated_at), classifier);
        tracing::info!(tenant, examples = tenant_examples, accuracy = ?report.held_out_accuracy, "intent head trained");
        Ok(TrainOutcome {
            report,
            tenant_examples,
            out_of_scope_recall,
            out_of_scope_probes,
        })
    }

    /// Validates a tenant's own ONNX classifier and activates it (nothing changes on an error).
    pub async fn upload_onnx(
        &self,
        tenant: &str,
        model: Vec<u8>,
        tokenizer: Vec<u8>,
        labels_text: String,
    ) -> ServiceResult<serde_json::Value> {
        models().await?; // the runtime must be up
        let labels = switchboard_models::parse_label_list(&labels_text).map_err(model_error)?;
        let updated_at = now_ms();
        let dir = self.dir.join(tenant).join(updated_at.to_string());
        let (model_bytes, tokenizer_bytes) = (model.clone(), tokenizer.clone());
        let checked_labels = labels.clone();
        let worker = self.worker.clone();
        // Validated in the child that will run it, under its memory budget.
        let classifier = blocking(move || {
            onnx_classifier(
                &dir,
                &model_bytes,
                &tokenizer_bytes,
                &checked_labels,
                worker,
                true,
            )
        })
        .await??;
        let report = serde_json::json!({ "labels": labels, "model_bytes": model.len() });
        let record = IntentModelRecord {
            tenant_id: tenant.to_owned(),
            kind: "onnx".into(),
            head: None,
            model: Some(model),
            tokenizer: Some(tokenizer),
            labels: Some(serde_json::to_string(&labels).unwrap_or_default()),
            report: report.clone(),
            updated_at,
        };
        self.store.put_intent_model(&record).await?;
        let classifier = Some(TenantClassifier::Onnx(Arc::new(classifier)));
        self.remember(tenant, Some(updated_at), classifier);
        Ok(report)
    }

    /// Back to the built-in intents.
    pub async fn reset(&self, tenant: &str) -> ServiceResult<()> {
        if !self.store.delete_intent_model(tenant).await? {
            return Err(ServiceError::NotFound("intent model"));
        }
        self.remember(tenant, None, None);
        Ok(())
    }

    /// Classifies one text with the tenant's classifier (or the built-in intents).
    pub async fn classify(&self, tenant: &str, text: &str) -> ServiceResult<Classified> {
        let classifier = self.classifier(tenant).await?;
        let models = models().await?;
        let (prediction, model): (Prediction, &'static str) = match classifier {
            Some(TenantClassifier::Onnx(classifier)) => {
                let text = text.to_owned();
                let prediction = blocking(move || classifier.classify_blocking(&text))
                    .await?
                    .map_err(model_error)?;
                (prediction, "onnx")
            }
            other => {
                let (head, model) = match other {
                    Some(TenantClassifier::Head(head)) => (head, "trained"),
                    _ => (models.builtin.clone(), "builtin"),
                };
                let embedding = models.service.embed(text).await.map_err(model_error)?;
                let prediction = head.classify_turn(text, &embedding).map_err(model_error)?;
                (prediction, model)
            }
        };
        Ok(Classified {
            label: prediction.label,
            score: prediction.score,
            out_of_scope: prediction.out_of_scope,
            model,
        })
    }
}

/// Writes the files where ONNX Runtime can read them and makes the classifier that runs them in
/// a child process; with `validate_now` the child starts and validates them at once.
fn onnx_classifier(
    dir: &Path,
    model: &[u8],
    tokenizer: &[u8],
    labels: &[String],
    worker: WorkerConfig,
    validate_now: bool,
) -> ServiceResult<ClassifierModel> {
    std::fs::create_dir_all(dir).map_err(|error| {
        ServiceError::Internal(anyhow::anyhow!("cannot create {}: {error}", dir.display()))
    })?;
    let model_path = dir.join("model.onnx");
    let tokenizer_path = dir.join("tokenizer.json");
    for (path, bytes) in [(&model_path, model), (&tokenizer_path, tokenizer)] {
        std::fs::write(path, bytes).map_err(|error| {
            ServiceError::Internal(anyhow::anyhow!("cannot write {}: {error}", path.display()))
        })?;
    }
    let result =
        ClassifierModel::isolated(&model_path, &tokenizer_path, labels, worker, validate_now)
            .map_err(if validate_now {
                upload_error
            } else {
                model_error
            });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

/// What `switchboard intents eval` prints.
#[derive(Debug, Clone, Serialize)]
pub struct IntentEval {
    pub examples: usize,
    /// Correct over all examples (an out-of-scope decision counts as `out_of_scope`).
    pub accuracy: f32,
    pub per_label_recall: std::collections::BTreeMap<String, f32>,
    /// Out-of-scope examples rejected, when there were any.
    pub out_of_scope_recall: Option<f32>,
}

impl std::fmt::Display for IntentEval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "examples     {}", self.examples)?;
        writeln!(f, "accuracy     {:.2}%", self.accuracy * 100.0)?;
        match self.out_of_scope_recall {
            Some(recall) => writeln!(f, "oos recall   {:.2}%", recall * 100.0)?,
            None => writeln!(f, "oos recall   - (no out_of_scope examples)")?,
        }
        writeln!(f, "recall per label:")?;
        for (label, recall) in &self.per_label_recall {
            writeln!(f, "  {:>7.2}%  {label}", recall * 100.0)?;
        }
        Ok(())
    }
}

impl Intents {
    /// Classifies every example with the tenant's classifier and scores the answers.
    pub async fn evaluate(&self, tenant: &str, examples: &[Example]) -> ServiceResult<IntentEval> {
        let mut hits: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        let mut correct = 0;
        for example in examples {
            let classified = self.classify(tenant, &example.text).await?;
            let predicted = if classified.out_of_scope {
                switchboard_models::OUT_OF_SCOPE_LABEL
            } else {
                classified.label.as_str()
            };
            let entry = hits.entry(example.label.clone()).or_default();
            entry.0 += 1;
            if predicted == example.label {
                entry.1 += 1;
                correct += 1;
            }
        }
        let oos = hits.remove(switchboard_models::OUT_OF_SCOPE_LABEL);
        Ok(IntentEval {
            examples: examples.len(),
            accuracy: correct as f32 / examples.len().max(1) as f32,
            per_label_recall: hits
                .into_iter()
                .map(|(label, (total, right))| (label, right as f32 / total.max(1) as f32))
                .collect(),
            out_of_scope_recall: oos.map(|(total, right)| right as f32 / total.max(1) as f32),
        })
    }
}

/// The child's side of [`WorkerConfig`]: `switchboard model-worker` calls it with the
/// arguments after the program name.
pub fn serve_model_worker(args: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    switchboard_models::worker::serve_stdio(args)
}
