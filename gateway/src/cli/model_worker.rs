//! `switchboard model-worker` (hidden): the child process that runs one tenant's ONNX
//! classifier for the server, under a memory budget, speaking frames on stdin/stdout
//! ([`switchboard_models::worker`]). The server starts it; nobody types it.

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the worker on this thread, before any async runtime or other thread exists, so the
/// memory budget it sets first covers everything the model does.
pub fn run(args: Vec<OsString>) -> ExitCode {
    engine::intents::serve_model_worker(args)
}

/// Reached only if the command was not taken before the runtime started (a bug in `main`).
pub fn run_under_runtime(args: Vec<OsString>) -> anyhow::Result<()> {
    anyhow::bail!(
        "model-worker must run before the async runtime starts ({} arguments)",
        args.len()
    )
}
