//! # switchboard-models
//!
//! Owns ONNX inference through `ort` and `tokenizers`: the sentence encoder, the intent
//! classifiers, batching, and the model files with the scripts that made them.
//! It knows nothing about anything above it.
