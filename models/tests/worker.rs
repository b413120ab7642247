//! Tenants' classifiers in a child process: the memory budget, the deadline, a broken child.
//!
//! This test binary is its own model worker (`harness = false`): started with `model-worker`
//! it serves a model on stdin/stdout as the server's `switchboard model-worker` does; started
//! by cargo it runs the tests below (an optional argument filters them by name).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchboard_models::worker::{serve_stdio, WORKER_SUBCOMMAND};
use switchboard_models::{parse_label_list, ClassifierModel, Encoder, ModelError, WorkerConfig};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("files/tokenizer.json")
}

fn labels() -> Vec<String> {
    parse_label_list("billing\nshipping\nother").expect("labels")
}

/// This binary as the worker, with a budget.
fn config(memory_mb: u64) -> WorkerConfig {
    WorkerConfig::new(std::env::current_exe().expect("exe"), memory_mb)
}

fn isolated(model: &str, memory_mb: u64) -> Result<ClassifierModel, ModelError> {
    ClassifierModel::isolated(
        &fixture(model),
        &tokenizer(),
        &labels(),
        config(memory_mb),
        true,
    )
}

/// A text of about `tokens` tokens for the e5 tokenizer.
fn text_of(tokens: usize) -> String {
    "parcel ".repeat(tokens)
}

fn alive(pid: u32) -> bool {
    // A killed and reaped child has no /proc entry (a zombie would still have one).
    Path::new(&format!("/proc/{pid}")).exists()
}

fn isolated_model_answers_like_in_process() {
    let in_process =
        ClassifierModel::validate(&fixture("tiny_classifier.onnx"), &tokenizer(), &labels())
            .expect("valid");
    let child = isolated("tiny_classifier.onnx", 512).expect("valid in a child");
    let pid = child.worker_pid().expect("started to validate");
    for text in ["where is my parcel", "转人工", ""] {
        let here = in_process.classify_blocking(text).expect("in process");
        let there = child.classify_blocking(text).expect("in the child");
        assert_eq!(here.label, there.label, "{text}");
        assert!((here.score - there.score).abs() < 1e-6, "{text}");
    }
    assert_eq!(child.worker_pid(), Some(pid), "one child serves every call");
    // A text longer than any customer message is cut before it is sent.
    child
        .classify_blocking(&"包裹".repeat(40_000))
        .expect("a long text");

    let rounds = 200;
    let time = |model: &ClassifierModel| {
        let started = Instant::now();
        for _ in 0..rounds {
            model
                .classify_blocking("where is my parcel")
                .expect("classify");
        }
        started.elapsed() / rounds
    };
    let (here, there) = (time(&in_process), time(&child));
    println!("    one classify: in process {here:?}, through the child {there:?}");

    drop(child);
    assert!(!alive(pid), "dropping the model kills and reaps its child");
}

fn validation_errors_come_back_typed() {
    let two = parse_label_list("billing\nshipping").expect("labels");
    let error = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &two,
        config(512),
        true,
    )
    .expect_err("label count");
    assert!(matches!(error, ModelError::Labels(_)), "{error:?}");
    let error = ClassifierModel::isolated(&tokenizer(), &tokenizer(), &labels(), config(512), true)
        .expect_err("not onnx");
    assert!(
        matches!(error, ModelError::InvalidModel { .. }),
        "{error:?}"
    );
    let error = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &fixture("tiny_classifier.onnx"),
        &labels(),
        config(512),
        true,
    )
    .expect_err("not a tokenizer");
    assert!(
        matches!(error, ModelError::InvalidTokenizer { .. }),
        "{error:?}"
    );
}

fn a_model_over_its_budget_fails_and_the_next_call_gets_a_new_child() {
    let model = isolated("hungry_classifier.onnx", 320).expect("the probe fits the budget");
    let first = model.worker_pid().expect("running");
    // 150 tokens: 600 MB for this model.
    let error = model
        .classify_blocking(&text_of(150))
        .expect_err("over the budget");
    assert!(
        matches!(error, ModelError::OutOfMemory { budget_mb: 320 }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the model needed more than its memory budget of 320 MB"
    );
    assert!(!alive(first), "the child that ran out is gone");
    model
        .classify_blocking("where is my parcel")
        .expect("a short text fits");
    let second = model.worker_pid().expect("a new child");
    assert_ne!(first, second);

    // Validation runs under the budget too: reading this tokenizer (250,000 pieces) takes more
    // than 48 MB, and the child's allocation fails (Rust aborts; its stderr says why).
    let error = isolated("tiny_classifier.onnx", 48).expect_err("over the budget");
    assert!(
        matches!(error, ModelError::OutOfMemory { budget_mb: 48 }),
        "{error:?}"
    );
}

fn a_slow_model_is_killed_at_the_deadline() {
    let mut model = isolated("slow_classifier.onnx", 512).expect("the probe is quick");
    model.set_deadline(Duration::from_millis(300));
    let first = model.worker_pid().expect("running");
    let started = Instant::now();
    let error = model
        .classify_blocking(&text_of(60))
        .expect_err("past the deadline");
    let took = started.elapsed();
    assert!(
        matches!(error, ModelError::Deadline { ms: 300 }),
        "{error:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(!alive(first), "the child was killed and reaped");
    model
        .classify_blocking("where is my parcel")
        .expect("a short text is quick");
    assert_ne!(model.worker_pid(), Some(first));
}

fn a_broken_worker_is_a_failed_run_and_three_set_the_model_aside() {
    // `true` ignores its arguments and exits: the model loads, so validation is skipped
    // (`validate_now: false`) and the first call finds no child to answer.
    let mut config = WorkerConfig::new("true", 64);
    config.args.clear();
    let model = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &labels(),
        config,
        false,
    )
    .expect("lazy");
    assert_eq!(
        model.worker_pid(),
        None,
        "nothing runs before the first call"
    );
    for _ in 0..3 {
        let error = model.classify_blocking("hello").expect_err("no answer");
        assert!(matches!(error, ModelError::Worker(_)), "{error:?}");
    }
    let error = model.classify_blocking("hello").expect_err("set aside");
    assert!(matches!(error, ModelError::Suspended), "{error:?}");

    // The child sees none of the server's environment but what loading needs: a shell as the
    // "worker" writes what it was given to a file.
    std::env::set_var("SWITCHBOARD__SECRETS__SIGNING_KEY", "do-not-leak");
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = dir.path().join("env.txt");
    let mut config = WorkerConfig::new("sh", 64);
    config.args = vec![
        "-c".into(),
        format!("env > '{}'", seen.display()).into(),
        "sh".into(),
    ];
    let model = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &labels(),
        config,
        false,
    )
    .expect("lazy");
    let error = model.classify_blocking("hello").expect_err("no answer");
    assert!(matches!(error, ModelError::Worker(_)), "{error:?}");
    let environment = std::fs::read_to_string(&seen).expect("the shell ran");
    assert!(
        !environment.contains("do-not-leak"),
        "the secret leaked: {environment}"
    );
    assert!(
        environment.contains("MIMALLOC_ARENA_EAGER_COMMIT=0"),
        "{environment}"
    );

    // `echo` answers with its arguments: not a frame the client accepts.
    let mut config = WorkerConfig::new("echo", 64);
    config.args = vec!["model-worker-speaks-nonsense".into()];
    let model = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &labels(),
        config,
        false,
    )
    .expect("lazy");
    let error = model.classify_blocking("hello").expect_err("nonsense");
    assert!(
        matches!(&error, ModelError::Worker(m) if m.contains("byte limit")),
        "{error:?}"
    );

    // A program that is not there.
    let error = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &labels(),
        WorkerConfig::new("/nonexistent/switchboard", 64),
        true,
    )
    .expect_err("no program");
    assert!(matches!(error, ModelError::FileMissing { .. }), "{error:?}");
}

fn calls_past_the_queue_are_refused_not_queued() {
    let mut config = config(512);
    config.max_waiting = 1;
    let mut model = ClassifierModel::isolated(
        &fixture("slow_classifier.onnx"),
        &tokenizer(),
        &labels(),
        config,
        true,
    )
    .expect("valid");
    model.set_deadline(Duration::from_millis(800));
    std::thread::scope(|scope| {
        let model = &model;
        // Several times the deadline's work on any machine (a 60-token text took 300 to 800 ms
        // on the ones seen).
        let slow = scope.spawn(move || model.classify_blocking(&text_of(240)));
        // However late the thread gets a core, the second call comes while the first runs.
        let since = Instant::now();
        while model.calls_in_flight() == 0 {
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "the slow call never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let error = model.classify_blocking("hello").expect_err("busy");
        assert!(matches!(error, ModelError::ModelBusy { .. }), "{error:?}");
        let slow = slow.join().expect("thread");
        assert!(matches!(slow, Err(ModelError::Deadline { .. })), "{slow:?}");
    });
}

fn an_idle_child_is_stopped_and_the_next_call_starts_one() {
    let mut config = config(512);
    config.idle_for = Duration::from_millis(300);
    let model = ClassifierModel::isolated(
        &fixture("tiny_classifier.onnx"),
        &tokenizer(),
        &labels(),
        config,
        true,
    )
    .expect("valid");
    let first = model.worker_pid().expect("running");
    // A child in use stays.
    for _ in 0..8 {
        model
            .classify_blocking("where is my parcel")
            .expect("classify");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(model.worker_pid(), Some(first));
    let started = Instant::now();
    while alive(first) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the idle child is still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(model.worker_pid(), None);
    model
        .classify_blocking("where is my parcel")
        .expect("again");
    assert!(model.worker_pid().is_some_and(|pid| pid != first));
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|arg| arg == WORKER_SUBCOMMAND) {
        return serve_stdio(args);
    }
    let args: Vec<String> = args.filter_map(|arg| arg.into_string().ok()).collect();
    let filter = args.iter().find(|arg| !arg.starts_with('-')).cloned();
    let list = args.iter().any(|arg| arg == "--list");
    if args.iter().any(|arg| arg == "--ignored") {
        // None of these is ignored.
        return std::process::ExitCode::SUCCESS;
    }
    let tests: [(&str, fn()); 7] = [
        (
            "isolated_model_answers_like_in_process",
            isolated_model_answers_like_in_process,
        ),
        (
            "validation_errors_come_back_typed",
            validation_errors_come_back_typed,
        ),
        (
            "a_model_over_its_budget_fails_and_the_next_call_gets_a_new_child",
            a_model_over_its_budget_fails_and_the_next_call_gets_a_new_child,
        ),
        (
            "a_slow_model_is_killed_at_the_deadline",
            a_slow_model_is_killed_at_the_deadline,
        ),
        (
            "a_broken_worker_is_a_failed_run_and_three_set_the_model_aside",
            a_broken_worker_is_a_failed_run_and_three_set_the_model_aside,
        ),
        (
            "calls_past_the_queue_are_refused_not_queued",
            calls_past_the_queue_are_refused_not_queued,
        ),
        (
            "an_idle_child_is_stopped_and_the_next_call_starts_one",
            an_idle_child_is_stopped_and_the_next_call_starts_one,
        ),
    ];
    if list {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return std::process::ExitCode::SUCCESS;
    }
    Encoder::load_default().expect("run scripts/setup-onnxruntime.sh first"); // the runtime is up
    let mut failed = 0;
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        let started = Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok ({:?})", started.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("\n{ran} tests, {failed} failed");
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
