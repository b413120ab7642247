//! # switchboard-models
//!
//! Owns ONNX inference through `ort` and `tokenizers`: the sentence encoder, the intent
//! classifiers, batching, and the model files with the scripts that made them.
//! It knows nothing about anything above it.

pub mod encoder;
pub mod error;
pub mod runtime;

pub use encoder::{cosine, default_model_dir, Encoder, EncoderConfig, EncoderFiles, TextKind};
pub use error::{ModelError, Result};
pub use runtime::{init_runtime, locate_runtime_library};
