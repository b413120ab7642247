//! A second sentence encoder: Universal Sentence Encoder multilingual v3 (Google, Apache-2.0),
//! int8, as exported by `models/export/export_use.sh` (the tokenizer node cut off the graph,
//! its SentencePiece model written as `use.tokenizer.json`).
//!
//! Graph: `input_ids` (int32, the ids of every sentence of the call concatenated, `<s> … </s>`
//! around each), `row_splits` (int64, `[sentences + 1]`), output `sentence_embedding` (float,
//! `[sentences, 512]`, unit length). No prefixes.
//!
//! The int8 graph quantizes its activations per call, so a sentence's vector moves a little
//! with the other sentences of the call (up to 0.014 per coordinate): [`UseEncoder`] embeds one
//! sentence per call, so a text always gets the same vector.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};
use tokenizers::Tokenizer;

use crate::encoder::{describe, load_session, load_tokenizer, ENCODER_OUTPUT};
use crate::error::{ModelError, Result};
use crate::runtime::lowercase_first;

/// File name of the USE graph.
pub const USE_MODEL_FILE: &str = "use.int8.onnx";
/// File name of its tokenizer.
pub const USE_TOKENIZER_FILE: &str = "use.tokenizer.json";
/// Tokens kept per sentence (with `<s>` and `</s>`): customer turns and FAQ questions are short.
const USE_MAX_TOKENS: usize = 256;

/// A loaded USE encoder: one session, one thread per run, one sentence per run.
pub struct UseEncoder {
    tokenizer: Tokenizer,
    session: Mutex<Session>,
    dimension: usize,
    model: PathBuf,
}

impl std::fmt::Debug for UseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseEncoder")
            .field("model", &self.model)
            .field("dimension", &self.dimension)
            .finish()
    }
}

impl UseEncoder {
    /// Loads `use.int8.onnx` and `use.tokenizer.json` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<UseEncoder> {
        let dir = dir.as_ref();
        let model = dir.join(USE_MODEL_FILE);
        if !model.is_file() {
            return Err(ModelError::FileMissing { path: model });
        }
        let tokenizer = load_tokenizer(&dir.join(USE_TOKENIZER_FILE), USE_MAX_TOKENS)?;
        let session = load_session(&model, 1, false)?;
        let dimension = check_signature(&session)?;
        let encoder = UseEncoder {
            tokenizer,
            session: Mutex::new(session),
            dimension,
            model,
        };
        tracing::info!(model = %encoder.model.display(), dimension, "USE encoder loaded");
        Ok(encoder)
    }

    /// Length of every vector (512).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit vector per text, in order, each from its own run.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }

    /// The vector of one text (trimmed; an empty text gets the vector of `<s> </s>`).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let encoding = self
            .tokenizer
            .encode(text.trim(), true)
            .map_err(|e| ModelError::Tokenize(lowercase_first(&e.to_string())))?;
        let ids: Vec<i32> = encoding
            .get_ids()
            .iter()
            .map(|&id| i32::try_from(id).unwrap_or(0))
            .collect();
        let n = ids.len();
        let ids =
            Tensor::from_array(([n], ids)).map_err(|e| ModelError::Inference(e.to_string()))?;
        let splits = Tensor::from_array(([2_usize], vec![0_i64, n as i64]))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "row_splits" => splits])
            .map_err(|e| ModelError::Inference(lowercase_first(&e.to_string())))?;
        let (shape, data) = outputs[ENCODER_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Inference(lowercase_first(&e.to_string())))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims.len() != 2 || dims[0] != 1 || data.len() != dims[1] as usize {
            return Err(ModelError::Signature(format!(
                "USE output has shape {dims:?}, expected [1, dim]"
            )));
        }
        Ok(data.to_vec())
    }
}

/// Checks the cut USE graph: int32 `input_ids` and int64 `row_splits` of rank 1, a float
/// `sentence_embedding` of rank 2. Returns its dimension (512 when the graph does not say).
fn check_signature(session: &Session) -> Result<usize> {
    for (name, ty) in [
        ("input_ids", TensorElementType::Int32),
        ("row_splits", TensorElementType::Int64),
    ] {
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| ModelError::Signature(format!("USE graph has no input named {name}")))?;
        match input.dtype() {
            ValueType::Tensor { ty: t, shape, .. } if *t == ty && shape.len() == 1 => {}
            other => {
                return Err(ModelError::Signature(format!(
                    "USE input {name} is {}, expected {ty:?} of rank 1",
                    describe(other)
                )))
            }
        }
    }
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == ENCODER_OUTPUT)
        .ok_or_else(|| {
            ModelError::Signature(format!("USE graph has no output named {ENCODER_OUTPUT}"))
        })?;
    match output.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } if shape.len() == 2 => Ok(usize::try_from(shape[1]).unwrap_or(512)),
        other => Err(ModelError::Signature(format!(
            "USE output is {}, expected float of rank 2",
            describe(other)
        ))),
    }
}
