//! The one error type at this crate's boundary.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model. Messages are lowercase, without a
/// trailing period, and name the fix where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library is not where we looked.
    #[error("onnx runtime library not found at {path}: run scripts/setup-onnxruntime.sh or set ORT_DYLIB_PATH")]
    RuntimeMissing { path: PathBuf },
    /// The library exists but could not be loaded or is the wrong version.
    #[error("onnx runtime library at {path} is unusable ({reason}): run scripts/setup-onnxruntime.sh to install onnxruntime 1.31.1")]
    RuntimeUnusable { path: PathBuf, reason: String },
    /// A model, tokenizer or head file is missing.
    #[error("model file not found: {path}")]
    FileMissing { path: PathBuf },
    /// A model file exists but ONNX Runtime rejected it.
    #[error("invalid onnx model {path}: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    /// A tokenizer.json could not be parsed.
    #[error("invalid tokenizer {path}: {reason}")]
    InvalidTokenizer { path: PathBuf, reason: String },
    /// The model's inputs or outputs are not the expected ones.
    #[error("model signature mismatch: {0}")]
    Signature(String),
    /// The label list does not fit the model.
    #[error("label list mismatch: {0}")]
    Labels(String),
    /// Tokenization of an input text failed.
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    /// ONNX Runtime failed while running the model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A serialized intent head is malformed.
    #[error("invalid intent head: {0}")]
    InvalidHead(String),
    /// Training data cannot produce a head (no examples, one label, wrong dimensions).
    #[error("cannot train: {0}")]
    Training(String),
    /// An embedding has the wrong dimension for the head or contains non-finite values.
    #[error("invalid embedding: {0}")]
    InvalidEmbedding(String),
    /// The encoder service's queue is full: the caller should shed or retry later.
    #[error("encoder busy: queue of {capacity} requests is full")]
    Busy { capacity: usize },
    /// A run took longer than its deadline and was stopped (or its worker killed).
    #[error("the model ran past its {ms} ms deadline")]
    Deadline { ms: u64 },
    /// A tenant's model needed more memory than its budget.
    #[error("the model needed more than its memory budget of {budget_mb} MB")]
    OutOfMemory { budget_mb: u64 },
    /// A tenant's model failed repeatedly and is set aside for a while.
    #[error("the model is set aside after repeated failures")]
    Suspended,
    /// Too many calls are already waiting for a tenant's model.
    #[error("the model is busy: {waiting} calls are already waiting for it")]
    ModelBusy { waiting: usize },
    /// The child process running a tenant's model died, answered nonsense or could not start.
    #[error("the model's worker process failed: {0}")]
    Worker(String),
    /// The encoder service has shut down.
    #[error("encoder service stopped")]
    Stopped,
    /// Reading a file failed for another reason.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::FileMissing { path }
        } else {
            ModelError::Io { path, source }
        }
    }
}
