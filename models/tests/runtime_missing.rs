//! Runs in its own process: the runtime library is process-global, so these tests must see it
//! unloaded.

use std::path::Path;

use switchboard_models::{init_runtime, locate_runtime_library, ModelError};

#[test]
fn missing_runtime_library_names_the_fix() {
    let missing = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
    let err = locate_runtime_library(Some(missing)).expect_err("missing");
    assert!(matches!(err, ModelError::RuntimeMissing { .. }));
    let err = init_runtime(Some(missing)).expect_err("missing");
    let message = err.to_string();
    assert!(
        message.contains("run scripts/setup-onnxruntime.sh"),
        "{message}"
    );
    assert!(
        message.contains("/nonexistent/libonnxruntime.so.1.31.1"),
        "{message}"
    );
}

#[test]
fn unloadable_runtime_library_names_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&fake, b"not a shared library").expect("write");
    let err = init_runtime(Some(&fake)).expect_err("unloadable");
    assert!(matches!(err, ModelError::RuntimeUnusable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("run scripts/setup-onnxruntime.sh"),
        "{err}"
    );
}
