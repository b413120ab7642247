//! The sentence encoder: tokenizer.json + an ONNX graph that returns L2-normalized sentence
//! embeddings (mean pooling and normalization are inside the graph).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};
use crate::runtime::{init_runtime, lowercase_first};

/// File name of the committed int8 encoder graph.
pub const ENCODER_MODEL_FILE: &str = "encoder.int8.onnx";
/// Name of the graph output holding the pooled, normalized embeddings.
pub const ENCODER_OUTPUT: &str = "sentence_embedding";
/// File name of the committed tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// How a text is prefixed before encoding, per the e5 recipe.
///
/// e5 was trained with `query: ` on questions and `passage: ` on documents. Symmetric tasks
/// (intent classification, question-to-question matching) use `query: ` on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// A customer turn, an intent example or an FAQ question: `query: `.
    Query,
    /// A document or answer body for asymmetric retrieval: `passage: `.
    Passage,
    /// No prefix: the text is passed as is.
    Raw,
}

impl TextKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TextKind::Query => "query: ",
            TextKind::Passage => "passage: ",
            TextKind::Raw => "",
        }
    }
}

/// Paths of the two files an encoder needs.
#[derive(Debug, Clone)]
pub struct EncoderFiles {
    pub model: PathBuf,
    pub tokenizer: PathBuf,
}

impl EncoderFiles {
    /// `encoder.int8.onnx` and `tokenizer.json` inside `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        EncoderFiles {
            model: dir.join(ENCODER_MODEL_FILE),
            tokenizer: dir.join(TOKENIZER_FILE),
        }
    }
}

/// The folder holding the committed model files: `SWITCHBOARD_MODEL_DIR` if set, else
/// `models/files` under the current directory if it exists, else the folder this crate was
/// built from.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_MODEL_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models/files");
    if local.join(ENCODER_MODEL_FILE).is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("files")
}

/// Tuning of an [`Encoder`].
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// ONNX Runtime sessions kept; each run takes one (`Session::run` needs `&mut`).
    pub sessions: usize,
    /// Threads inside one run; 0 means all cores.
    pub intra_threads: usize,
    /// Whether those threads spin after a run waiting for the next one (ONNX Runtime's
    /// default) instead of sleeping. Off: on a 2-core machine the spinning threads take a
    /// core from whatever runs next (the second encoder, the store, another turn); measured
    /// in docs/bench-bot.md ("Where the second opinion's time went").
    pub intra_op_spinning: bool,
    /// Largest number of texts in one ONNX run; longer inputs are split.
    pub max_batch: usize,
    /// Tokens kept per text, including `<s>` and `</s>` (the model's limit is 512).
    pub max_tokens: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            sessions: 1,
            intra_threads: 0,
            intra_op_spinning: false,
            max_batch: 32,
            max_tokens: 512,
        }
    }
}

/// A loaded sentence encoder. `Send + Sync`: runs take one of the pooled sessions.
pub struct Encoder {
    tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    next_session: AtomicUsize,
    dimension: usize,
    pad_id: i64,
    config: EncoderConfig,
    files: EncoderFiles,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("files", &self.files)
            .field("dimension", &self.dimension)
            .field("config", &self.config)
            .finish()
    }
}

pub(crate) fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let mut tokenizer =
        Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::InvalidTokenizer {
            path: path.to_path_buf(),
            reason: lowercase_first(&e.to_string()),
        })?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| ModelError::InvalidTokenizer {
            path: path.to_path_buf(),
            reason: lowercase_first(&e.to_string()),
        })?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// A session over `path` with `intra_threads` threads per run (0: all cores) that spin
/// between runs when `spinning` is set.
pub(crate) fn load_session(path: &Path, intra_threads: usize, spinning: bool) -> Result<Session> {
    if !path.is_file() {
        return Err(ModelError::FileMissing {
            path: path.to_path_buf(),
        });
    }
    let env = init_runtime(None)?;
    let threads = if intra_threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        intra_threads
    };
    let invalid = |e: String| ModelError::InvalidModel {
        path: path.to_path_buf(),
        reason: lowercase_first(&e),
    };
    Session::builder(env)
        .map_err(|e| invalid(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_op_spinning(spinning)
        .map_err(|e| invalid(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| invalid(e.to_string()))
}

pub(crate) fn describe(value: &ValueType) -> String {
    match value {
        ValueType::Tensor { ty, shape, .. } => {
            format!("{ty:?}{:?}", shape.iter().collect::<Vec<_>>())
        }
        other => format!("{other:?}"),
    }
}

/// Token ids and masks of a batch, padded to its longest text.
pub(crate) struct Batch {
    pub rows: usize,
    pub columns: usize,
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
}

pub(crate) fn tokenize_batch<S: AsRef<str>>(
    tokenizer: &Tokenizer,
    texts: &[S],
    pad_id: i64,
) -> Result<Batch> {
    tokenize_batch_timed(tokenizer, texts, pad_id, None)
}

/// Time spent in each stage of [`Encoder::embed_kind_profiled`], summed over calls: where an
/// embedding's time goes (benchmarks, profiling).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Prefixing, trimming and sorting the texts by length.
    pub prepare: Duration,
    /// `tokenizers` encoding (normalization, pre-tokenization, the Unigram model).
    pub tokenize: Duration,
    /// Padding ids and masks into the input tensors.
    pub inputs: Duration,
    /// `Session::run` (ONNX Runtime).
    pub run: Duration,
    /// Reading the output tensor into one vector per text.
    pub outputs: Duration,
    /// ONNX runs.
    pub runs: u64,
}

impl StageTimes {
    /// The sum of all stages.
    pub fn total(&self) -> Duration {
        self.prepare + self.tokenize + self.inputs + self.run + self.outputs
    }
}

fn add_elapsed(
    times: &mut Option<&mut StageTimes>,
    field: fn(&mut StageTimes) -> &mut Duration,
    since: Instant,
) -> Instant {
    let now = Instant::now();
    if let Some(times) = times.as_deref_mut() {
        *field(times) += now - since;
    }
    now
}

fn tokenize_batch_timed<S: AsRef<str>>(
    tokenizer: &Tokenizer,
    texts: &[S],
    pad_id: i64,
    mut times: Option<&mut StageTimes>,
) -> Result<Batch> {
    let start = Instant::now();
    // `encode_fast`: the same ids as `encode` without tracking offsets, which nothing here reads.
    let mut encoded = Vec::with_capacity(texts.len());
    for text in texts {
        let encoding = tokenizer
            .encode_fast(text.as_ref(), true)
            .map_err(|e| ModelError::Tokenize(lowercase_first(&e.to_string())))?;
        encoded.push(encoding);
    }
    let start = add_elapsed(&mut times, |t| &mut t.tokenize, start);
    let columns = encoded.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
    let rows = encoded.len();
    let mut ids = vec![pad_id; rows * columns];
    let mut mask = vec![0_i64; rows * columns];
    for (row, encoding) in encoded.iter().enumerate() {
        let start = row * columns;
        let tokens = encoding.get_ids();
        for (slot, &token) in ids[start..start + tokens.len()].iter_mut().zip(tokens) {
            *slot = i64::from(token);
        }
        mask[start..start + tokens.len()].fill(1);
    }
    add_elapsed(&mut times, |t| &mut t.inputs, start);
    Ok(Batch {
        rows,
        columns,
        ids,
        mask,
    })
}

impl Encoder {
    /// Loads `encoder.int8.onnx` and `tokenizer.json` from `dir` with default settings.
    pub fn load(dir: impl AsRef<Path>) -> Result<Encoder> {
        Encoder::load_with(EncoderFiles::in_dir(dir), EncoderConfig::default())
    }

    /// Loads the committed model from [`default_model_dir`].
    pub fn load_default() -> Result<Encoder> {
        Encoder::load(default_model_dir())
    }

    /// Loads the given files, checks the graph's signature, and builds the session pool.
    pub fn load_with(files: EncoderFiles, config: EncoderConfig) -> Result<Encoder> {
        let config = EncoderConfig {
            sessions: config.sessions.max(1),
            max_batch: config.max_batch.max(1),
            max_tokens: config.max_tokens.clamp(8, 512),
            ..config
        };
        if !files.model.is_file() {
            return Err(ModelError::FileMissing {
                path: files.model.clone(),
            });
        }
        let tokenizer = load_tokenizer(&files.tokenizer, config.max_tokens)?;
        let pad_id = tokenizer.token_to_id("<pad>").map_or(1, i64::from);
        let mut sessions = Vec::with_capacity(config.sessions);
        for _ in 0..config.sessions {
            sessions.push(load_session(
                &files.model,
                config.intra_threads,
                config.intra_op_spinning,
            )?);
        }
        let dimension = check_encoder_signature(&sessions[0])?;
        let mut encoder = Encoder {
            tokenizer,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next_session: AtomicUsize::new(0),
            dimension,
            pad_id,
            config,
            files,
        };
        if encoder.dimension == 0 {
            let probe = encoder.embed_blocking(&["probe"])?;
            encoder.dimension = probe.first().map_or(0, Vec::len);
        }
        tracing::info!(model = %encoder.files.model.display(), dimension = encoder.dimension, "encoder loaded");
        Ok(encoder)
    }

    /// Length of every embedding (384 for the committed model).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn files(&self) -> &EncoderFiles {
        &self.files
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Embeds customer turns or intent examples (`query: ` prefix): one unit-length vector
    /// per text, in order.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_kind_blocking(TextKind::Query, texts)
    }

    /// Embeds with the given prefix policy. Runs on the calling thread: call it from a
    /// blocking pool, or use [`crate::EncoderService`] from async code.
    pub fn embed_kind_blocking(&self, kind: TextKind, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_kind_timed(kind, texts, None)
    }

    /// [`Encoder::embed_kind_blocking`], adding the time of each stage to `times`.
    pub fn embed_kind_profiled(
        &self,
        kind: TextKind,
        texts: &[&str],
        times: &mut StageTimes,
    ) -> Result<Vec<Vec<f32>>> {
        self.embed_kind_timed(kind, texts, Some(times))
    }

    fn embed_kind_timed(
        &self,
        kind: TextKind,
        texts: &[&str],
        mut times: Option<&mut StageTimes>,
    ) -> Result<Vec<Vec<f32>>> {
        let start = Instant::now();
        let prepared: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{}", kind.prefix(), t.trim()))
            .collect();
        if let Some(times) = times.as_deref_mut() {
            times.prepare += start.elapsed();
        }
        self.embed_prepared_timed(&prepared, times)
    }

    /// Embeds texts that already carry their prefix. Texts are sorted by length and run in
    /// batches of at most `max_batch`, so padding stays small.
    pub(crate) fn embed_prepared(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.embed_prepared_timed(texts, None)
    }

    fn embed_prepared_timed(
        &self,
        texts: &[String],
        mut times: Option<&mut StageTimes>,
    ) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        if let Some(times) = times.as_deref_mut() {
            times.prepare += start.elapsed();
        }
        for chunk in order.chunks(self.config.max_batch) {
            let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let vectors = self.run_batch(&batch_texts, times.as_deref_mut())?;
            for (&i, vector) in chunk.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn run_batch(
        &self,
        texts: &[&str],
        mut times: Option<&mut StageTimes>,
    ) -> Result<Vec<Vec<f32>>> {
        let batch =
            tokenize_batch_timed(&self.tokenizer, texts, self.pad_id, times.as_deref_mut())?;
        let start = Instant::now();
        let shape = [batch.rows, batch.columns];
        let ids = Tensor::from_array((shape, batch.ids))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let mask = Tensor::from_array((shape, batch.mask))
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let start = add_elapsed(&mut times, |t| &mut t.inputs, start);
        let mut session = self.take_session();
        let outputs = session
            .run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
            .map_err(|e| ModelError::Inference(lowercase_first(&e.to_string())))?;
        let start = add_elapsed(&mut times, |t| &mut t.run, start);
        let (out_shape, data) = outputs[ENCODER_OUTPUT]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Inference(lowercase_first(&e.to_string())))?;
        let dims: Vec<i64> = out_shape.iter().copied().collect();
        if dims.len() != 2 || dims[0] as usize != batch.rows {
            return Err(ModelError::Signature(format!(
                "encoder output has shape {dims:?}, expected [{}, dim]",
                batch.rows
            )));
        }
        let dim = dims[1] as usize;
        let vectors = data.chunks(dim).map(<[f32]>::to_vec).collect();
        if let Some(times) = times {
            times.outputs += start.elapsed();
            times.runs += 1;
        }
        Ok(vectors)
    }

    fn take_session(&self) -> std::sync::MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next_session.fetch_add(1, Ordering::Relaxed);
        for offset in 0..n {
            if let Ok(guard) = self.sessions[(start + offset) % n].try_lock() {
                return guard;
            }
        }
        // All busy: wait for the one whose turn it is. A poisoned session is still usable:
        // ONNX Runtime holds no Rust invariants across a panic.
        self.sessions[start % n]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Checks the encoder graph: int64 `input_ids` and `attention_mask` of rank 2, a float
/// `sentence_embedding` output of rank 2. Returns the embedding dimension when the graph declares it, else 0.
fn check_encoder_signature(session: &Session) -> Result<usize> {
    for name in ["input_ids", "attention_mask"] {
        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| ModelError::Signature(format!("encoder has no input named {name}")))?;
        match input.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Int64,
                shape,
                ..
            } if shape.len() == 2 => {}
            other => {
                return Err(ModelError::Signature(format!(
                    "input {name} is {}, expected int64 of rank 2",
                    describe(other)
                )))
            }
        }
    }
    if let Some(extra) = session
        .inputs()
        .iter()
        .find(|i| i.name() != "input_ids" && i.name() != "attention_mask")
    {
        return Err(ModelError::Signature(format!(
            "encoder has an unexpected input {}",
            extra.name()
        )));
    }
    let output = session
        .outputs()
        .iter()
        .find(|o| o.name() == ENCODER_OUTPUT)
        .ok_or_else(|| {
            ModelError::Signature(format!("encoder has no output named {ENCODER_OUTPUT}"))
        })?;
    match output.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } if shape.len() == 2 => Ok(usize::try_from(shape[1]).unwrap_or(0)),
        other => Err(ModelError::Signature(format!(
            "output {} is {}, expected float of rank 2",
            output.name(),
            describe(other)
        ))),
    }
}

/// Cosine similarity; for the unit vectors the encoder returns this is the dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
