//! A tenant's classifier in a child process of its own, under a memory budget and a deadline.
//!
//! The child is the server's own binary (`switchboard model-worker`, which calls
//! [`serve_stdio`]). Before it loads anything it caps its data segment (`RLIMIT_DATA`: on Linux
//! 4.7 and later that counts every private writable mapping, so the heap, ONNX Runtime's arena,
//! the tokenizer and thread stacks, but not the read-only mapped libraries), so the validation
//! of an upload runs under the budget too. An allocation past the budget fails: ONNX Runtime
//! reports it as an error (the child answers `out_of_memory` and exits), Rust aborts with
//! "memory allocation ... failed" on stderr (the parent reads it there).
//!
//! The protocol, on the child's stdin and stdout: frames of a 4-byte big-endian length and that
//! many bytes of JSON, at most [`MAX_REQUEST_BYTES`] one way and [`MAX_REPLY_BYTES`] the other.
//! The first request is `load` (model, tokenizer, labels), answered `ready` or `error`; then
//! `scores` requests, answered `scores` or `error`. End of input ends the child.
//!
//! The parent ([`WorkerClient`], behind [`crate::ClassifierModel::isolated`]) starts the child
//! on first use, keeps the deadline itself (a reply that does not come in time: the child is
//! killed and the next call starts a new one), treats a dead child, an out-of-memory or a
//! malformed reply as a failed run, lets at most [`WorkerConfig::max_waiting`] calls wait for
//! one model, and kills the child when the model is dropped (replaced or reset) or has been idle
//! for [`WorkerConfig::idle_for`] (a reaper thread looks now and then; the next call starts a
//! new child). Calls block: async callers run them on blocking threads.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::byom::{cut, Loaded};
use crate::error::{ModelError, Result};
use crate::runtime::{init_runtime, locate_runtime_library};

/// The subcommand of the server's binary that runs [`serve_stdio`].
pub const WORKER_SUBCOMMAND: &str = "model-worker";
/// The memory budget of a tenant's model when nothing else is configured.
pub const DEFAULT_MEMORY_MB: u64 = 512;
/// The largest request frame (a `load`, or the texts of one `scores`).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The largest reply frame (scores for every label of every text).
pub const MAX_REPLY_BYTES: usize = 4 << 20;
/// How long a child may take to start and validate its model.
pub const START_DEADLINE: Duration = Duration::from_secs(15);
/// Calls that may wait for one tenant's model (the one running included).
pub const MAX_WAITING: usize = 8;
/// How long a child may wait for work before it is stopped (the next call starts another).
pub const IDLE_FOR: Duration = Duration::from_secs(300);
/// The variables of the server's environment a worker is given (no others: secrets stay out).
const CHILD_ENVIRONMENT: [&str; 5] = [
    "PATH",
    "LD_LIBRARY_PATH",
    "ORT_DYLIB_PATH",
    "TMPDIR",
    "RUST_BACKTRACE",
];
/// The tail of a child's stderr kept to explain its death.
const STDERR_TAIL: usize = 4096;

/// How to start a tenant's model worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The program: the server's own binary.
    pub program: PathBuf,
    /// Its arguments before the worker's own (`model-worker`).
    pub args: Vec<OsString>,
    /// The child's data segment limit.
    pub memory_mb: u64,
    /// How long the child may take to start and validate the model.
    pub start_deadline: Duration,
    /// Calls that may wait for the model (the running one included); more are refused with
    /// [`ModelError::ModelBusy`].
    pub max_waiting: usize,
    /// The ONNX Runtime library the child loads (the one this process found, by default).
    pub runtime: Option<PathBuf>,
    /// A child unused this long is stopped, so idle tenants' models hold no memory; the next
    /// call starts it again.
    pub idle_for: Duration,
}

impl WorkerConfig {
    /// `program model-worker` with the default start deadline and queue.
    pub fn new(program: impl Into<PathBuf>, memory_mb: u64) -> WorkerConfig {
        WorkerConfig {
            program: program.into(),
            args: vec![WORKER_SUBCOMMAND.into()],
            memory_mb,
            start_deadline: START_DEADLINE,
            max_waiting: MAX_WAITING,
            idle_for: IDLE_FOR,
            runtime: locate_runtime_library(None)
                .ok()
                .and_then(|path| path.canonicalize().ok()),
        }
    }

    /// This process's own executable as the worker (the `switchboard` binary).
    pub fn current_exe(memory_mb: u64) -> Result<WorkerConfig> {
        let exe = std::env::current_exe().map_err(|e| ModelError::io("current executable", e))?;
        Ok(WorkerConfig::new(exe, memory_mb))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Load {
        model: PathBuf,
        tokenizer: PathBuf,
        labels: Vec<String>,
    },
    Scores {
        texts: Vec<String>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Reply {
    Ready { labels: usize },
    Scores { scores: Vec<Vec<f32>> },
    Error(WireError),
}

/// A [`ModelError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireError {
    kind: String,
    message: String,
    #[serde(default)]
    path: Option<PathBuf>,
}

impl WireError {
    fn from_error(error: &ModelError) -> WireError {
        let (kind, message, path) = match error {
            ModelError::FileMissing { path } => ("file_missing", String::new(), Some(path)),
            ModelError::InvalidModel { path, reason } => {
                ("invalid_model", reason.clone(), Some(path))
            }
            ModelError::InvalidTokenizer { path, reason } => {
                ("invalid_tokenizer", reason.clone(), Some(path))
            }
            ModelError::Signature(message) => ("signature", message.clone(), None),
            ModelError::Labels(message) => ("labels", message.clone(), None),
            ModelError::Tokenize(message) if is_out_of_memory(message) => {
                ("out_of_memory", message.clone(), None)
            }
            ModelError::Tokenize(message) => ("tokenize", message.clone(), None),
            ModelError::Inference(message) if is_out_of_memory(message) => {
                ("out_of_memory", message.clone(), None)
            }
            ModelError::Inference(message) => ("inference", message.clone(), None),
            // The child could not load ONNX Runtime: the server's setup, not the model.
            ModelError::RuntimeMissing { path } => ("runtime", "not found".into(), Some(path)),
            ModelError::RuntimeUnusable { path, reason } => ("runtime", reason.clone(), Some(path)),
            other => ("other", other.to_string(), None),
        };
        WireError {
            kind: kind.into(),
            message,
            path: path.cloned(),
        }
    }

    fn into_error(self, budget_mb: u64) -> ModelError {
        let path = self.path.unwrap_or_default();
        match self.kind.as_str() {
            "file_missing" => ModelError::FileMissing { path },
            "invalid_model" if is_out_of_memory(&self.message) => {
                ModelError::OutOfMemory { budget_mb }
            }
            "invalid_model" => ModelError::InvalidModel {
                path,
                reason: self.message,
            },
            "invalid_tokenizer" => ModelError::InvalidTokenizer {
                path,
                reason: self.message,
            },
            "signature" => ModelError::Signature(self.message),
            "labels" => ModelError::Labels(self.message),
            "tokenize" => ModelError::Tokenize(self.message),
            "inference" => ModelError::Inference(self.message),
            "out_of_memory" => ModelError::OutOfMemory { budget_mb },
            "runtime" => ModelError::RuntimeUnusable {
                path,
                reason: format!("in the model worker: {}", self.message),
            },
            _ => ModelError::Worker(self.message),
        }
    }
}

/// Whether an error message (or a dead child's stderr) says an allocation failed.
fn is_out_of_memory(text: &str) -> bool {
    let text = text.to_lowercase();
    [
        "bad_alloc",
        "failed to allocate",
        "memory allocation of",
        "out of memory",
        "cannot allocate memory",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(value).map_err(|e| ModelError::Worker(e.to_string()))?;
    let length =
        u32::try_from(body.len()).map_err(|_| ModelError::Worker("frame too large".into()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// One frame's body; `None` at the end of input before a frame starts.
fn read_frame(input: &mut impl Read, max: usize) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut header = [0_u8; 4];
    let mut filled = 0;
    while filled < 4 {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err("the stream ended inside a frame header".into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let length = u32::from_be_bytes(header) as usize;
    if length > max {
        return Err(format!(
            "a frame of {length} bytes is over the {max} byte limit"
        ));
    }
    let mut body = vec![0_u8; length];
    input
        .read_exact(&mut body)
        .map_err(|e| format!("the stream ended inside a frame: {e}"))?;
    Ok(Some(body))
}

// ---------------------------------------------------------------------------------------------
// The child.

struct WorkerOptions {
    memory_mb: u64,
    runtime: Option<PathBuf>,
}

impl WorkerOptions {
    fn parse(args: impl IntoIterator<Item = OsString>) -> std::result::Result<Self, String> {
        let mut args = args.into_iter().peekable();
        if args.peek().is_some_and(|first| first == WORKER_SUBCOMMAND) {
            args.next();
        }
        let mut options = WorkerOptions {
            memory_mb: DEFAULT_MEMORY_MB,
            runtime: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{} needs a value", arg.to_string_lossy()))
            };
            match arg.to_str() {
                Some("--memory-mb") => {
                    let text = value()?;
                    options.memory_mb = text
                        .to_str()
                        .and_then(|t| t.parse().ok())
                        .filter(|mb| *mb > 0)
                        .ok_or_else(|| {
                            format!("--memory-mb {}: not a number of MB", text.to_string_lossy())
                        })?;
                }
                Some("--runtime") => options.runtime = Some(PathBuf::from(value()?)),
                _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
            }
        }
        Ok(options)
    }
}

/// The child's side: caps its memory, then serves one tenant's classifier on stdin/stdout until
/// its input ends. `args` are the arguments after the program name (`model-worker
/// --memory-mb N [--runtime PATH]`). Run it before any other thread or allocation of note.
pub fn serve_stdio(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let options = match WorkerOptions::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("model-worker: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = limit_memory(options.memory_mb) {
        eprintln!("model-worker: cannot set the memory budget: {error}");
        return ExitCode::from(2);
    }
    let output = match protocol_output() {
        Ok(output) => output,
        Err(error) => {
            eprintln!("model-worker: cannot set up stdout: {error}");
            return ExitCode::from(2);
        }
    };
    watch_parent();
    serve(std::io::stdin().lock(), output, &options)
}

fn serve(mut input: impl Read, mut output: impl Write, options: &WorkerOptions) -> ExitCode {
    let mut loaded: Option<Loaded> = None;
    loop {
        let frame = match read_frame(&mut input, MAX_REQUEST_BYTES) {
            Ok(Some(frame)) => frame,
            Ok(None) => return ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("model-worker: {message}");
                return ExitCode::from(2);
            }
        };
        let (reply, last) = match serde_json::from_slice::<Request>(&frame) {
            Err(error) => (
                Reply::Error(WireError {
                    kind: "other".into(),
                    message: format!("malformed request: {error}"),
                    path: None,
                }),
                true,
            ),
            Ok(Request::Load { .. }) if loaded.is_some() => (
                Reply::Error(WireError {
                    kind: "other".into(),
                    message: "a model is loaded already".into(),
                    path: None,
                }),
                true,
            ),
            Ok(Request::Load {
                model,
                tokenizer,
                labels,
            }) => match init_runtime(options.runtime.as_deref())
                .and_then(|_| Loaded::load(&model, &tokenizer, &labels, None))
            {
                Ok(model) => {
                    loaded = Some(model);
                    (
                        Reply::Ready {
                            labels: labels.len(),
                        },
                        false,
                    )
                }
                Err(error) => (Reply::Error(WireError::from_error(&error)), true),
            },
            Ok(Request::Scores { texts }) => match &loaded {
                None => (
                    Reply::Error(WireError {
                        kind: "other".into(),
                        message: "no model is loaded".into(),
                        path: None,
                    }),
                    true,
                ),
                Some(model) => {
                    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                    match model.run(&texts, None) {
                        Ok(scores) => (Reply::Scores { scores }, false),
                        Err(error) => {
                            let wire = WireError::from_error(&error);
                            // After a failed allocation nothing in here is to be trusted.
                            let last = wire.kind == "out_of_memory";
                            (Reply::Error(wire), last)
                        }
                    }
                }
            },
        };
        let written = encode(&reply).and_then(|frame| {
            output
                .write_all(&frame)
                .and_then(|()| output.flush())
                .map_err(|e| ModelError::Worker(e.to_string()))
        });
        if written.is_err() {
            return ExitCode::from(2);
        }
        if last {
            return ExitCode::from(3);
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn limit_memory(memory_mb: u64) -> std::io::Result<()> {
    let bytes = memory_mb.saturating_mul(1 << 20);
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct it is given and nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::RLIMIT_DATA, bytes)?;
    // A child that aborts on a failed allocation leaves no core file behind.
    set(libc::RLIMIT_CORE, 0)
}

#[cfg(not(target_os = "linux"))]
fn limit_memory(_memory_mb: u64) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "memory budgets for tenants' models need Linux (RLIMIT_DATA counting mappings)",
    ))
}

/// The protocol's own descriptor: a copy of stdout, with stdout itself pointed at stderr so
/// that nothing else the process prints (a library's message) can break a frame.
#[cfg(unix)]
#[allow(unsafe_code)]
fn protocol_output() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    let protocol = std::io::stdout().as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on two standard descriptors this process holds open; it only makes
    // descriptor 1 another name for descriptor 2.
    if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(std::fs::File::from(protocol))
}

#[cfg(not(unix))]
fn protocol_output() -> std::io::Result<std::io::Stdout> {
    Ok(std::io::stdout())
}

/// Ends the child when its parent is gone (a model stuck in a run reads no end of input).
#[cfg(unix)]
fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        });
}

#[cfg(not(unix))]
fn watch_parent() {}

// ---------------------------------------------------------------------------------------------
// The parent.

enum Incoming {
    Reply(Reply),
    /// The child's output ended or broke the protocol.
    Broken(String),
}

/// One running child with the threads that feed it and read it.
struct Worker {
    child: Child,
    requests: Option<Sender<Vec<u8>>>,
    replies: Receiver<Incoming>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    last_used: Instant,
}

impl Worker {
    fn send(&self, frame: Vec<u8>) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(frame).is_ok())
    }

    /// Why the child is gone: waits (briefly) for its exit and its last words.
    fn death(mut self, what: &str, budget_mb: u64) -> ModelError {
        let waited = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if waited.elapsed() < Duration::from_secs(1) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break None,
            }
        };
        let status = match status {
            Some(status) => status.to_string(),
            None => {
                let _ = self.child.kill();
                self.child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string())
            }
        };
        if let Some(reader) = self.stderr_reader.take() {
            let waited = Instant::now();
            while !reader.is_finished() && waited.elapsed() < Duration::from_millis(500) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let stderr = {
            let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).into_owned()
        };
        if is_out_of_memory(&stderr) {
            return ModelError::OutOfMemory { budget_mb };
        }
        let last_words = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        ModelError::Worker(if last_words.is_empty() {
            format!("{what} ({status})")
        } else {
            format!("{what} ({status}): {last_words}")
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.requests.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The parent's handle on one tenant's model: at most one child, started on demand.
pub(crate) struct WorkerClient {
    config: WorkerConfig,
    load: Vec<u8>,
    shared: Arc<Shared>,
    waiting: AtomicUsize,
}

/// The child of one model, shared with the idle reaper.
struct Shared {
    slot: Mutex<Option<Worker>>,
    pid: AtomicU32,
    idle_for: Duration,
}

impl Shared {
    fn clear(&self, slot: &mut Option<Worker>) -> Option<Worker> {
        self.pid.store(0, Ordering::Release);
        slot.take()
    }
}

/// Every model's child, weakly, for the reaper thread (started with the first model).
static WATCHED: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());
static REAPER: std::sync::Once = std::sync::Once::new();

fn watch(shared: &Arc<Shared>) {
    WATCHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::downgrade(shared));
    REAPER.call_once(|| {
        let started = std::thread::Builder::new()
            .name("model-worker-reaper".into())
            .spawn(|| loop {
                std::thread::sleep(reap_idle());
            });
        if let Err(error) = started {
            tracing::warn!(%error, "no reaper thread: idle model workers stay up");
        }
    });
}

/// Stops the children idle for longer than their model allows (a busy one is skipped) and
/// forgets dropped models; answers how long to sleep until the next look.
fn reap_idle() -> Duration {
    let mut next = Duration::from_secs(1);
    let mut watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
    watched.retain(|weak| {
        let Some(shared) = weak.upgrade() else {
            return false;
        };
        next = next.min(shared.idle_for / 2);
        if let Ok(mut slot) = shared.slot.try_lock() {
            if slot
                .as_ref()
                .is_some_and(|worker| worker.last_used.elapsed() >= shared.idle_for)
            {
                // Killed and reaped on drop.
                drop(shared.clear(&mut slot));
            }
        }
        true
    });
    next.max(Duration::from_millis(20))
}

/// A place among the calls waiting for a model, given back on drop.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WorkerClient {
    pub(crate) fn new(
        config: WorkerConfig,
        model: &Path,
        tokenizer: &Path,
        labels: &[String],
    ) -> WorkerClient {
        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.into());
        let load = Request::Load {
            model: absolute(model),
            tokenizer: absolute(tokenizer),
            labels: labels.to_vec(),
        };
        let shared = Arc::new(Shared {
            slot: Mutex::new(None),
            pid: AtomicU32::new(0),
            idle_for: config.idle_for,
        });
        watch(&shared);
        WorkerClient {
            config,
            // Paths and labels serialize; a label list too large for a frame fails at start.
            load: encode(&load).unwrap_or_default(),
            shared,
            waiting: AtomicUsize::new(0),
        }
    }

    /// The running child's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        Some(self.shared.pid.load(Ordering::Acquire)).filter(|pid| *pid != 0)
    }

    /// Calls running or waiting.
    pub(crate) fn in_flight(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Starts the child now (it validates the model as it loads it).
    pub(crate) fn start(&self) -> Result<()> {
        let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.spawn()?);
        }
        Ok(())
    }

    fn spawn(&self) -> Result<Worker> {
        if self.load.len() < 4 || self.load.len() - 4 > MAX_REQUEST_BYTES {
            return Err(ModelError::Labels("the label list is too large".into()));
        }
        let config = &self.config;
        let mut command = Command::new(&config.program);
        command
            .args(&config.args)
            .arg("--memory-mb")
            .arg(config.memory_mb.to_string());
        if let Some(runtime) = &config.runtime {
            command.arg("--runtime").arg(runtime);
        }
        // The server's environment holds its secrets: the child, which runs a stranger's
        // model, gets only what loading the runtime may need.
        command.env_clear();
        for name in CHILD_ENVIRONMENT {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        // mimalloc (the server's allocator) otherwise maps a 1 GiB arena writable at its first
        // allocation, which RLIMIT_DATA counts in full: reserved address space stays
        // inaccessible until committed, and only what is committed counts against the budget.
        command.env("MIMALLOC_ARENA_EAGER_COMMIT", "0");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ModelError::io(&config.program, e))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ModelError::Worker("the child has no pipes".into()));
        };
        let (requests, to_write) = mpsc::channel::<Vec<u8>>();
        let (replied, replies) = mpsc::channel::<Incoming>();
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let spawned = (|| {
            std::thread::Builder::new()
                .name("model-worker-in".into())
                .spawn(move || {
                    for frame in to_write {
                        if stdin
                            .write_all(&frame)
                            .and_then(|()| stdin.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                })?;
            std::thread::Builder::new()
                .name("model-worker-out".into())
                .spawn(move || loop {
                    let incoming = match read_frame(&mut stdout, MAX_REPLY_BYTES) {
                        Ok(Some(body)) => match serde_json::from_slice::<Reply>(&body) {
                            Ok(reply) => Incoming::Reply(reply),
                            Err(e) => Incoming::Broken(format!("malformed reply: {e}")),
                        },
                        Ok(None) => Incoming::Broken("the worker exited".into()),
                        Err(message) => Incoming::Broken(format!("broken reply: {message}")),
                    };
                    let last = matches!(incoming, Incoming::Broken(_));
                    if replied.send(incoming).is_err() || last {
                        break;
                    }
                })?;
            let keep = tail.clone();
            std::thread::Builder::new()
                .name("model-worker-err".into())
                .spawn(move || {
                    let mut buffer = [0_u8; 1024];
                    while let Ok(n) = stderr.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        let mut tail = keep.lock().unwrap_or_else(|p| p.into_inner());
                        tail.extend(&buffer[..n]);
                        let over = tail.len().saturating_sub(STDERR_TAIL);
                        tail.drain(..over);
                    }
                })
        })();
        let stderr_reader = match spawned {
            Ok(reader) => reader,
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ModelError::Worker(format!(
                    "cannot start a thread: {error}"
                )));
            }
        };
        let worker = Worker {
            child,
            requests: Some(requests),
            replies,
            stderr: tail,
            stderr_reader: Some(stderr_reader),
            last_used: Instant::now(),
        };
        let budget = config.memory_mb;
        if !worker.send(self.load.clone()) {
            return Err(worker.death("the worker did not take its model", budget));
        }
        match worker.replies.recv_timeout(config.start_deadline) {
            Ok(Incoming::Reply(Reply::Ready { .. })) => {
                self.shared.pid.store(worker.child.id(), Ordering::Release);
                let mut worker = worker;
                worker.last_used = Instant::now();
                Ok(worker)
            }
            Ok(Incoming::Reply(Reply::Error(error))) => {
                let error = error.into_error(budget);
                // Its last words may say more (an allocation that failed on the way out).
                match worker.death("the model did not load", budget) {
                    oom @ ModelError::OutOfMemory { .. } => Err(oom),
                    _ => Err(error),
                }
            }
            Ok(Incoming::Reply(_)) => Err(ModelError::Worker(
                "the worker answered its model with something else than ready".into(),
            )),
            Ok(Incoming::Broken(what)) => Err(worker.death(&what, budget)),
            Err(RecvTimeoutError::Timeout) => Err(ModelError::Deadline {
                ms: config.start_deadline.as_millis() as u64,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(worker.death("the worker exited", budget)),
        }
    }

    /// Scores of `texts` (cut to the length the tokenizer sees), within `deadline` from the
    /// moment the child has them.
    pub(crate) fn scores(&self, texts: &[&str], deadline: Duration) -> Result<Vec<Vec<f32>>> {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = Waiting(&self.waiting);
        if waiting >= self.config.max_waiting {
            return Err(ModelError::ModelBusy { waiting });
        }
        let frame = encode(&Request::Scores {
            texts: texts.iter().map(|text| cut(text)).collect(),
        })?;
        if frame.len() - 4 > MAX_REQUEST_BYTES {
            return Err(ModelError::Inference(format!(
                "{} texts are too many for one call",
                texts.len()
            )));
        }
        let budget = self.config.memory_mb;
        let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.spawn()?);
        }
        let Some(worker) = slot.as_mut() else {
            return Err(ModelError::Worker("no worker".into()));
        };
        let outcome = if worker.send(frame) {
            worker.replies.recv_timeout(deadline)
        } else {
            Ok(Incoming::Broken("the worker stopped reading".into()))
        };
        let result = match outcome {
            Ok(Incoming::Reply(Reply::Scores { scores })) if scores.len() == texts.len() => {
                worker.last_used = Instant::now();
                return Ok(scores);
            }
            Ok(Incoming::Reply(Reply::Scores { scores })) => Err(ModelError::Worker(format!(
                "{} rows of scores for {} texts",
                scores.len(),
                texts.len()
            ))),
            Ok(Incoming::Reply(Reply::Error(error))) => match error.into_error(budget) {
                // The child exits after a failed allocation.
                oom @ ModelError::OutOfMemory { .. } => Err(oom),
                // Otherwise it is fine: the model failed on this input.
                other => {
                    worker.last_used = Instant::now();
                    return Err(other);
                }
            },
            Ok(Incoming::Reply(_)) => Err(ModelError::Worker("an unexpected reply".into())),
            Ok(Incoming::Broken(what)) => {
                let worker = self.shared.clear(&mut slot);
                return Err(match worker {
                    Some(worker) => worker.death(&what, budget),
                    None => ModelError::Worker(what),
                });
            }
            Err(RecvTimeoutError::Timeout) => Err(ModelError::Deadline {
                ms: deadline.as_millis() as u64,
            }),
            Err(RecvTimeoutError::Disconnected) => {
                Err(ModelError::Worker("the worker's reader stopped".into()))
            }
        };
        // Past the deadline, out of memory or off the protocol: the child goes (killed and
        // reaped on drop) and the next call starts another.
        drop(self.shared.clear(&mut slot));
        result
    }
}

impl Drop for WorkerClient {
    fn drop(&mut self) {
        // The child goes now, not when the reaper lets go of its weak reference.
        let mut slot = self.shared.slot.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.shared.clear(&mut slot));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_are_bounded() {
        let frame = encode(&Request::Scores {
            texts: vec!["hello".into()],
        })
        .unwrap();
        let mut input = &frame[..];
        let body = read_frame(&mut input, MAX_REQUEST_BYTES).unwrap().unwrap();
        assert!(matches!(
            serde_json::from_slice::<Request>(&body).unwrap(),
            Request::Scores { texts } if texts == ["hello"]
        ));
        assert_eq!(read_frame(&mut input, MAX_REQUEST_BYTES).unwrap(), None);
        let error = read_frame(&mut &frame[..], 3).unwrap_err();
        assert!(error.contains("over the 3 byte limit"), "{error}");
        let error = read_frame(&mut &frame[..frame.len() - 1], 1024).unwrap_err();
        assert!(error.contains("inside a frame"), "{error}");
        let error = read_frame(&mut &frame[..2], 1024).unwrap_err();
        assert!(error.contains("header"), "{error}");
    }

    #[test]
    fn errors_cross_the_wire_with_their_kind() {
        let budget = 64;
        let cases = [
            ModelError::Labels("two".into()),
            ModelError::Signature("no input_ids".into()),
            ModelError::Inference("std::bad_alloc".into()),
            ModelError::InvalidModel {
                path: "m.onnx".into(),
                reason: "protobuf parsing failed".into(),
            },
        ];
        let back: Vec<ModelError> = cases
            .iter()
            .map(|error| {
                let wire = encode(&Reply::Error(WireError::from_error(error))).unwrap();
                match serde_json::from_slice::<Reply>(&wire[4..]).unwrap() {
                    Reply::Error(error) => error.into_error(budget),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert!(matches!(&back[0], ModelError::Labels(m) if m == "two"));
        assert!(matches!(&back[1], ModelError::Signature(_)));
        assert!(matches!(back[2], ModelError::OutOfMemory { budget_mb: 64 }));
        assert!(
            matches!(&back[3], ModelError::InvalidModel { path, .. } if path.ends_with("m.onnx"))
        );
    }

    #[test]
    fn worker_arguments_parse() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let options = WorkerOptions::parse(args(&[
            "model-worker",
            "--memory-mb",
            "300",
            "--runtime",
            "/x",
        ]))
        .unwrap();
        assert_eq!(options.memory_mb, 300);
        assert_eq!(options.runtime.as_deref(), Some(Path::new("/x")));
        assert!(WorkerOptions::parse(args(&["--memory-mb", "0"])).is_err());
        assert!(WorkerOptions::parse(args(&["--memory-mb"])).is_err());
        assert!(WorkerOptions::parse(args(&["--bogus"])).is_err());
    }
}
