//! Finding and loading the ONNX Runtime shared library (`ort` with `load-dynamic`).
//!
//! The library is process-global: the first successful load wins and later calls reuse it.
//! Lookup order: an explicit path given to [`init_runtime`], then `ORT_DYLIB_PATH`, then
//! `.cache/onnxruntime/libonnxruntime.so.1.31.1` under the current directory, its ancestors,
//! the executable's ancestors and this crate's workspace (where `scripts/setup-onnxruntime.sh`
//! puts it).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::{ModelError, Result};

/// The ONNX Runtime version the setup script installs and `ort` (api-31) expects.
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";
/// File name of the shared library inside the cache folder.
pub const ONNXRUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";
/// Folder, relative to the repository root, where the setup script puts the library.
pub const ONNXRUNTIME_CACHE_DIR: &str = ".cache/onnxruntime";

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Where the runtime library would be loaded from, without loading it.
///
/// `explicit` wins, then `ORT_DYLIB_PATH`, then the default cache locations. A missing file is
/// [`ModelError::RuntimeMissing`] naming the path that was tried first.
pub fn locate_runtime_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return existing(path.to_path_buf());
    }
    if let Some(value) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return existing(PathBuf::from(value));
    }
    let candidates = default_candidates();
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(ModelError::RuntimeMissing {
        path: candidates
            .into_iter()
            .next()
            .unwrap_or_else(|| PathBuf::from(ONNXRUNTIME_CACHE_DIR).join(ONNXRUNTIME_LIBRARY)),
    })
}

fn existing(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::RuntimeMissing { path })
    }
}

fn default_candidates() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(dir) = std::env::current_dir() {
        roots.extend(dir.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    // The workspace this crate was built in (models/..): right for tests, examples and dev runs.
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let mut out: Vec<PathBuf> = Vec::new();
    for root in roots {
        let candidate = root.join(ONNXRUNTIME_CACHE_DIR).join(ONNXRUNTIME_LIBRARY);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// Loads the ONNX Runtime library (once per process) and returns the shared environment.
///
/// Safe to call many times; after the first success the path argument is ignored.
pub fn init_runtime(explicit: Option<&Path>) -> Result<&'static Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let path = locate_runtime_library(explicit)?;
    let path = path.canonicalize().map_err(|e| ModelError::io(&path, e))?;
    let builder = ort::init_from(&path).map_err(|e| ModelError::RuntimeUnusable {
        path: path.clone(),
        reason: lowercase_first(&e.to_string()),
    })?;
    let env = builder
        .with_name("switchboard")
        .with_telemetry(false)
        .build()
        .map_err(|e| ModelError::RuntimeUnusable {
            path: path.clone(),
            reason: lowercase_first(&e.to_string()),
        })?;
    tracing::info!(path = %path.display(), "onnx runtime loaded");
    Ok(ENVIRONMENT.get_or_init(|| env))
}

pub(crate) fn lowercase_first(message: &str) -> String {
    let trimmed = message.trim().trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
