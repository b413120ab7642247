//! # switchboard-models
//!
//! Owns ONNX inference through `ort` and `tokenizers`: the sentence encoder, the intent
//! classifiers, batching, and the model files with the scripts that made them.
//! It knows nothing about anything above it.
//!
//! ## Using it
//! ```no_run
//! use switchboard_models::{builtin, Encoder, EncoderService, ServiceConfig};
//! # async fn turn() -> switchboard_models::Result<()> {
//! let encoder = Encoder::load_default()?;                  // models/files, ONNX Runtime from .cache
//! let (head, report) = builtin::builtin_head(&encoder)?;   // or intent::train_on_texts(...)
//! let service = EncoderService::start(encoder, ServiceConfig::default())?;
//! let embedding = service.embed("我要转人工").await?;     // one encoder pass per turn
//! let prediction = head.classify(&embedding)?;             // ... and the same vector for rerank
//! assert_eq!(prediction.label, "handoff_request");
//! # Ok(()) }
//! ```
//!
//! ## Layout
//! - [`runtime`]: finds and loads `libonnxruntime.so.1.31.1` (`ORT_DYLIB_PATH`, else
//!   `.cache/onnxruntime/` put there by `scripts/setup-onnxruntime.sh`); clear errors, no panics.
//! - [`encoder`]: [`Encoder`], tokenizer.json + `encoder.int8.onnx` (multilingual-e5-small,
//!   mean pooling and L2 normalization in the graph), a pool of sessions, `query: `/`passage: `
//!   prefix policy.
//! - [`service`]: [`EncoderService`], the async front: bounded queue, worker threads,
//!   micro-batching, LRU cache.
//! - [`intent`]: [`IntentHead`], trained in Rust on embeddings (softmax regression, or an MLP
//!   with [`TrainConfig::large`]; optional hashed n-gram text features, which then need
//!   [`IntentHead::classify_turn`]), out-of-scope class and calibrated threshold, JSON
//!   serialization, evaluation.
//! - [`builtin`]: intents every tenant has (`handoff_request`, `greeting`, `thanks`,
//!   `complaint`, `goodbye`) with Chinese and English examples.
//! - [`use_encoder`]: [`UseEncoder`], Universal Sentence Encoder multilingual v3 (int8,
//!   `use.int8.onnx` + `use.tokenizer.json`, made by `models/export/export_use.sh`), one
//!   sentence per run; measured as a second opinion for the bot (docs/bench-bot.md).
//! - [`byom`]: validating a tenant's own ONNX classifier before activation.
//! - [`worker`]: running a tenant's classifier in a child process under a memory budget and a
//!   deadline (`switchboard model-worker` is the child; [`ClassifierModel::isolated`] the parent).
//! - [`training_data`]: JSON Lines and CSV training files with per-line errors.
//!
//! Model files live in `models/files/` (committed); `models/export/` re-makes them from PyPI
//! packages (see `models/README.md`).

pub mod builtin;
pub mod byom;
pub mod encoder;
pub mod error;
pub mod intent;
pub mod runtime;
pub mod service;
pub mod training_data;
pub mod use_encoder;
pub mod worker;

pub use byom::{parse_label_list, ClassifierModel};
pub use encoder::{
    cosine, default_model_dir, Encoder, EncoderConfig, EncoderFiles, StageTimes, TextKind,
};
pub use error::{ModelError, Result};
pub use intent::{
    train_on_texts, EvalReport, IntentHead, LabelCount, LabelScore, Prediction, Sample,
    ThresholdPolicy, TrainConfig, TrainReport, OUT_OF_SCOPE_LABEL,
};
pub use runtime::{init_runtime, locate_runtime_library};
pub use service::{Embedding, EncoderService, ServiceConfig, ServiceStats};
pub use training_data::{
    check_training_set, parse_examples, Example, LineError, ParseErrors, TrainingFileError,
    TrainingFormat, MAX_EXAMPLES, MAX_LABELS,
};
pub use use_encoder::UseEncoder;
pub use worker::WorkerConfig;
