//! Tenants' own ONNX classifiers run in `switchboard model-worker` children of the server (the
//! binary built for these tests), under a memory budget and a deadline: a hostile model fails
//! its own tenant's calls with a stable code, the bot falls back to the built-in intents, and
//! the server keeps serving every other tenant.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use engine::intents::TenantClassifier;
use gateway::config::Settings;
use serde_json::{json, Value};

const LABELS: &str = "handoff_request\nbilling\nother";

struct App {
    server: gateway::Server,
    http: reqwest::Client,
    keys: HashMap<&'static str, String>,
    _data_dir: tempfile::TempDir,
}

fn file(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).expect(path)
}

/// A text of about `tokens` tokens.
fn text_of(tokens: usize) -> String {
    "parcel ".repeat(tokens)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn start(memory_mb: u64) -> App {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::load(None, &HashMap::new()).expect("default settings");
    settings.addr = "127.0.0.1:0".parse().expect("addr");
    settings.data_dir = data_dir.path().to_path_buf();
    settings.demo = false;
    settings.log.filter = "warn".into();
    settings.bot.tenant_model_worker = Some(env!("CARGO_BIN_EXE_switchboard").into());
    settings.bot.tenant_model_memory_mb = memory_mb;
    let server = gateway::Server::start(settings)
        .await
        .expect("server starts");
    let mut keys = HashMap::new();
    for tenant in ["acme", "beta", "gamma"] {
        let key = gateway::demo::create_tenant(&server.state.store, tenant)
            .await
            .expect("tenant");
        keys.insert(tenant, key);
    }
    App {
        server,
        http: reqwest::Client::new(),
        keys,
        _data_dir: data_dir,
    }
}

impl App {
    async fn upload(&self, tenant: &str, model: &str) {
        self.server
            .state
            .chat
            .intents
            .upload_onnx(
                tenant,
                file(model),
                file("models/files/tokenizer.json"),
                LABELS.into(),
            )
            .await
            .expect("the upload validates");
    }

    async fn classify(&self, tenant: &str, text: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "http://{}/v1/tenants/{tenant}/intents/classify",
                self.server.addr
            ))
            .bearer_auth(&self.keys[tenant])
            .json(&json!({ "text": text }))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    async fn decide(&self, tenant: &str, text: &str) -> Value {
        let decision = self
            .server
            .state
            .chat
            .decide(tenant, text, 0, false)
            .await
            .expect("a decision");
        serde_json::to_value(&decision).expect("json")
    }

    async fn worker_pid(&self, tenant: &str) -> Option<u32> {
        match self.server.state.chat.intents.classifier(tenant).await {
            Ok(Some(TenantClassifier::Onnx(model))) => model.worker_pid(),
            _ => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_over_its_memory_budget_fails_alone_and_the_bot_falls_back() {
    let app = start(320).await;
    // Validated under the budget: its probe needs about 24 MB, 150 tokens 600 MB.
    app.upload("acme", "models/tests/fixtures/hungry_classifier.onnx")
        .await;
    app.upload("beta", "models/tests/fixtures/tiny_classifier.onnx")
        .await;
    let first = app.worker_pid("acme").await.expect("a child validated it");

    // Working, this model names every turn `handoff_request`.
    let decided = app.decide("acme", "parcel").await;
    assert_eq!(decided["reason"], "handoff_intent", "{decided}");

    let (status, body) = app.classify("acme", &text_of(150)).await;
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("model_out_of_memory")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("memory budget of 320 MB")),
        "{body}"
    );
    assert!(!alive(first), "the child that ran out is gone");

    // The server and the other tenants carry on.
    let (status, body) = app.classify("beta", "where is my parcel").await;
    assert_eq!((status, &body["model"]), (200, &json!("onnx")), "{body}");
    let (status, body) = app.classify("gamma", "转人工").await;
    assert_eq!(
        (status, &body["model"], &body["label"]),
        (200, &json!("builtin"), &json!("handoff_request")),
        "{body}"
    );

    // A bot turn the model cannot take uses the built-in intents.
    let decided = app.decide("acme", &text_of(150)).await;
    assert_ne!(decided["reason"], "handoff_intent", "{decided}");
    assert_ne!(decided["intent"]["label"], "handoff_request", "{decided}");

    // The next call starts a new child.
    let (status, body) = app.classify("acme", "where is my parcel").await;
    assert_eq!((status, &body["model"]), (200, &json!("onnx")), "{body}");
    let second = app.worker_pid("acme").await.expect("a new child");
    assert_ne!(first, second);

    // Replacing the model kills its child.
    app.upload("acme", "models/tests/fixtures/tiny_classifier.onnx")
        .await;
    let started = Instant::now();
    while alive(second) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the replaced model's child is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_is_killed_at_its_deadline() {
    let app = start(512).await;
    app.upload("gamma", "models/tests/fixtures/slow_classifier.onnx")
        .await;
    let first = app.worker_pid("gamma").await.expect("running");
    let started = Instant::now();
    // 200 tokens: several seconds of matrix products for this model; the deadline is 1 s.
    let (status, body) = app.classify("gamma", &text_of(200)).await;
    let took = started.elapsed();
    assert_eq!(
        (status, &body["code"]),
        (503, &json!("model_timeout")),
        "{body}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!alive(first), "the child was killed and reaped");
    // Meanwhile and after, the server answers.
    let (status, body) = app.classify("acme", "转人工").await;
    assert_eq!((status, &body["model"]), (200, &json!("builtin")), "{body}");
    let (status, body) = app.classify("gamma", "where is my parcel").await;
    assert_eq!((status, &body["model"]), (200, &json!("onnx")), "{body}");

    // Validation at upload runs under the budget too: reading this tokenizer alone takes more
    // than 48 MB, so the upload is refused and nothing is activated.
    let small = start(48).await;
    let error = small
        .server
        .state
        .chat
        .intents
        .upload_onnx(
            "beta",
            file("models/tests/fixtures/tiny_classifier.onnx"),
            file("models/files/tokenizer.json"),
            LABELS.into(),
        )
        .await
        .expect_err("over the budget");
    assert_eq!(error.code(), "model_out_of_memory", "{error:?}");
    let (status, body) = small.classify("beta", "转人工").await;
    assert_eq!((status, &body["model"]), (200, &json!("builtin")), "{body}");
}
