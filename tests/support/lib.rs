//! Helpers shared by the end-to-end tests: a real server on port 0 with its own data directory,
//! an HTTP client, WebSocket clients that read JSON frames with timeouts, and a fresh PostgreSQL
//! database per test.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use gateway::config::Settings;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The tenants' model worker built with these tests (`support/model_worker.rs`): beside the
/// test binary's `deps/` folder, where cargo puts this package's binaries.
pub fn model_worker() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let name = "switchboard-test-model-worker";
    let worker = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not built beside {} (cargo build -p switchboard-tests --bins, with --release for a release example)",
                exe.display()
            )
        });
    worker
}

pub struct TestApp {
    pub server: gateway::Server,
    pub base: String,
    pub http: reqwest::Client,
    /// The tenant every test gets, and its admin key.
    pub tenant: String,
    pub admin_key: String,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server on SQLite in a fresh directory; `configure` may change the settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::load(None, &HashMap::new()).expect("default settings");
        settings.addr = "127.0.0.1:0".parse().expect("addr");
        settings.data_dir = data_dir.path().to_path_buf();
        settings.demo = false;
        settings.agent_grace_ms = 300;
        settings.poll_timeout_ms = 3_000;
        settings.log.filter = "warn".into();
        settings.bot.tenant_model_worker = Some(model_worker());
        configure(&mut settings);
        let server = gateway::Server::start(settings)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.addr);
        let admin_key = gateway::demo::create_tenant(&server.state.store, "acme")
            .await
            .expect("tenant");
        set_human_first(&server.state.store, "acme").await;
        TestApp {
            server,
            base,
            http: reqwest::Client::new(),
            tenant: "acme".into(),
            admin_key,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.server.addr, path)
    }

    /// Creates another tenant and returns its admin key.
    pub async fn create_tenant(&self, name: &str) -> String {
        let key = gateway::demo::create_tenant(&self.server.state.store, name)
            .await
            .expect("tenant");
        set_human_first(&self.server.state.store, name).await;
        key
    }

    /// A server whose tenant `acme` is bot-first (the product default) with the bundled demo
    /// knowledge base and synonyms, loaded through the API.
    pub async fn spawn_bot_first() -> TestApp {
        Self::spawn_bot_first_with(|_| {}).await
    }

    /// [`TestApp::spawn_bot_first`] with changed settings.
    pub async fn spawn_bot_first_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let app = Self::spawn_with(configure).await;
        app.server
            .state
            .store
            .set_tenant_settings("acme", &json!({}))
            .await
            .expect("bot-first settings");
        app.server.state.chat.forget_tenant_settings("acme");
        let response = app
            .http
            .post(app.url("/v1/tenants/acme/kb/import?format=jsonl"))
            .bearer_auth(&app.admin_key)
            .body(include_bytes!("../../knowledge/demo/faqs.jsonl").to_vec())
            .send()
            .await
            .expect("import");
        assert_eq!(response.status(), 200, "demo kb import");
        let response = app
            .http
            .put(app.url("/v1/tenants/acme/kb/synonyms"))
            .bearer_auth(&app.admin_key)
            .body(include_str!("../../knowledge/demo/synonyms.txt"))
            .send()
            .await
            .expect("synonyms");
        assert!(response.status().is_success(), "demo synonyms");
        // The bot's embeddings follow the knowledge base in the background: wait for them, so
        // decisions are the same on every run.
        let chat = app.server.state.chat.clone();
        chat.bot.ready().await.expect("the bot loads");
        let started = std::time::Instant::now();
        while chat.bot_dense_lag() != Some(0) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the bot's embeddings never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app
    }

    /// A question the bot of `acme` (bot-first, demo knowledge base) is unsure about — it asks
    /// back with FAQ buttons — and that dry-run decision. The calibration moves which vague
    /// questions it answers, so the tests that need a clarify find one instead of naming it.
    pub async fn clarified_question(&self) -> (String, Value) {
        let mut tried = Vec::new();
        for text in [
            "关于配送的问题",
            "question about my order",
            "我想问一下订单的事",
            "about my refund",
            "关于发票",
            "账户的问题",
            "a question about delivery",
        ] {
            let (status, decision) = self
                .admin_post("/v1/tenants/acme/bot/ask", json!({ "text": text }))
                .await;
            assert_eq!(status, 200, "{decision}");
            if decision["decision"] == "clarify" {
                return (text.to_owned(), decision);
            }
            tried.push(format!("{text}: {}", decision["decision"]));
        }
        panic!("the bot clarified none of the vague questions: {tried:?}");
    }

    /// Adds a member to `tenant` with a password of its own; returns the password.
    pub async fn add_member(&self, tenant: &str, email: &str, role: store::MemberRole) -> String {
        let password = format!("pw-{}-{}", role.as_str(), uuid::Uuid::new_v4().simple());
        let slots = tokio::sync::Semaphore::new(1);
        gateway::add_member(
            &self.server.state.store,
            &slots,
            tenant,
            email,
            email,
            role,
            Some(password.clone()),
        )
        .await
        .expect("member added");
        password
    }

    /// Signs in to the operator console: the session, or the refusal (status, body).
    pub async fn sign_in(
        &self,
        tenant: &str,
        email: &str,
        password: &str,
    ) -> Result<MemberSession, (u16, Value)> {
        let response = self
            .http
            .post(self.url(&format!("/v1/tenants/{tenant}/auth/login")))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err((status, body));
        }
        let cookie = set_cookie
            .split(';')
            .next()
            .expect("a session cookie")
            .to_owned();
        Ok(MemberSession {
            http: self.http.clone(),
            base: self.base.clone(),
            cookie,
            set_cookie,
            csrf: body["csrf_token"].as_str().expect("csrf token").to_owned(),
            body,
        })
    }

    /// Polls a background job with the admin key until it ends; returns its row.
    pub async fn wait_job(&self, tenant: &str, id: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let (status, body) = self
                .admin_get(&format!("/v1/tenants/{tenant}/jobs/{id}"))
                .await;
            assert_eq!(status, 200, "{body}");
            if body["job"]["state"] != "running" {
                return body["job"].clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "job {id} never ended: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POST a JSON body with the admin key: (status, body).
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// PUT a body with the admin key: (status, body).
    pub async fn admin_put(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .put(self.url(path))
            .bearer_auth(&self.admin_key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates an agent in `tenant` with the admin key; returns (id, token).
    pub async fn create_agent_in(
        &self,
        tenant: &str,
        admin_key: &str,
        name: &str,
        skills: &[&str],
        max: i64,
    ) -> (String, String) {
        let response = self
            .http
            .post(self.url(&format!("/v1/tenants/{tenant}/agents")))
            .bearer_auth(admin_key)
            .json(&json!({ "name": name, "skills": skills, "max_concurrent": max }))
            .send()
            .await
            .expect("create agent");
        assert_eq!(response.status(), 201, "create agent");
        let body: Value = response.json().await.expect("json");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    pub async fn create_agent(&self, name: &str, skills: &[&str], max: i64) -> (String, String) {
        self.create_agent_in(
            &self.tenant.clone(),
            &self.admin_key.clone(),
            name,
            skills,
            max,
        )
        .await
    }

    /// A new anonymous visitor of `tenant`: (token, session body).
    pub async fn visitor_in(&self, tenant: &str) -> (String, Value) {
        let response = self
            .http
            .post(self.url("/v1/web/session"))
            .json(&json!({ "tenant": tenant }))
            .send()
            .await
            .expect("session");
        assert_eq!(response.status(), 200, "visitor session");
        let body: Value = response.json().await.expect("json");
        (body["token"].as_str().expect("token").to_owned(), body)
    }

    pub async fn visitor(&self) -> String {
        self.visitor_in(&self.tenant.clone()).await.0
    }

    pub async fn customer_ws(&self, token: &str) -> WsClient {
        WsClient::connect(&self.ws_url(&format!("/v1/web/ws?token={token}")))
            .await
            .expect("customer ws")
    }

    /// An agent connection, after its hello frame.
    pub async fn agent_ws(&self, token: &str) -> WsClient {
        let mut ws = WsClient::connect(&self.ws_url(&format!("/v1/agent/ws?token={token}")))
            .await
            .expect("agent ws");
        ws.expect_type("hello").await;
        ws
    }

    /// `GET /metrics` as text (this machine may read it without a token).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &self.admin_key).await
    }

    /// A request without a body, with `token` as the bearer: (status, body).
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A WebSocket client speaking JSON text frames.
/// A member signed in to the operator console, calling the API as the console does: the
/// session cookie on every request, the CSRF token on every change.
pub struct MemberSession {
    pub http: reqwest::Client,
    pub base: String,
    /// `sb_session=...`
    pub cookie: String,
    /// The whole `Set-Cookie` header of the sign-in.
    pub set_cookie: String,
    pub csrf: String,
    /// The sign-in's answer (`member`, `permissions`, ...).
    pub body: Value,
}

impl MemberSession {
    /// A request with the cookie and, when `csrf`, the CSRF header: (status, body).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("cookie", &self.cookie);
        if csrf {
            request = request.header("x-csrf-token", &self.csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, false).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), true)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body), true)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body), true)
            .await
    }
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn connect(url: &str) -> anyhow::Result<WsClient> {
        Self::connect_with(url, &[]).await
    }

    /// Connects with extra request headers (a cookie, an origin).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<WsClient> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
                value.parse()?,
            );
        }
        // Small frames go out at once (no Nagle), as a real chat client's should.
        let (stream, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .with_context(|| format!("connect {url}"))?;
        Ok(WsClient { stream })
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send frame");
    }

    /// The raw stream, for a caller that reads and writes at once (split it).
    pub fn into_stream(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.stream
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send raw");
    }

    /// The next JSON frame, or an error after `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        loop {
            let message = tokio::time::timeout(timeout, self.stream.next())
                .await
                .map_err(|_| anyhow!("no frame within {timeout:?}"))?
                .ok_or_else(|| anyhow!("socket closed"))??;
            match message {
                Message::Text(text) => return Ok(serde_json::from_str(&text)?),
                Message::Close(_) => bail!("socket closed"),
                _ => continue,
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(FRAME_TIMEOUT).await.expect("frame")
    }

    /// Reads frames until one matches; panics with the frames seen if none does in time.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Ok(frame) if matches(&frame) => return frame,
                Ok(frame) => seen.push(frame),
                Err(error) => panic!("expected {what}: {error}; frames seen: {seen:#?}"),
            }
        }
    }

    pub async fn expect_type(&mut self, frame_type: &str) -> Value {
        self.expect(frame_type, |frame| frame["type"] == frame_type)
            .await
    }

    /// The next message frame whose text is `text`.
    pub async fn expect_text(&mut self, text: &str) -> Value {
        self.expect(&format!("message {text:?}"), |frame| {
            frame["type"] == "message" && frame["text"] == text
        })
        .await
    }

    /// Collects every frame that arrives within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Ok(frame) = self.next_within(window).await {
            frames.push(frame);
        }
        frames
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

pub use store::testing::{postgres_admin_url, PostgresDatabase};

/// The foundation's tests run conversations straight to agents, as a human-first tenant does.
async fn set_human_first(store: &store::Store, tenant: &str) {
    store
        .set_tenant_settings(tenant, &json!({ "work_mode": "human_first" }))
        .await
        .expect("human-first settings");
}

/// A tenant's intent training file (JSON Lines): 24 examples of three intents in Chinese and
/// English (`order_status`, `invoice`, `cancel_order`).
pub fn intent_training_lines() -> String {
    let mut lines = String::new();
    let sets: [(&str, &[&str]); 3] = [
        (
            "order_status",
            &[
                "where is my order",
                "has my order shipped",
                "track my package",
                "我的订单到哪了",
                "订单状态怎么查",
                "包裹什么时候到",
                "when will my parcel arrive",
                "物流到哪一步了",
            ],
        ),
        (
            "invoice",
            &[
                "I need an invoice",
                "can you send me a receipt",
                "怎么开发票",
                "发票什么时候寄",
                "我要开增值税发票",
                "invoice for my purchase",
                "电子发票在哪下载",
                "need a VAT invoice",
            ],
        ),
        (
            "cancel_order",
            &[
                "cancel my order",
                "I want to cancel the purchase",
                "取消订单",
                "我不想要了，帮我取消",
                "怎么取消订单",
                "please cancel it",
                "订单能撤销吗",
                "stop my order",
            ],
        ),
    ];
    for (label, texts) in sets {
        for text in texts {
            lines.push_str(&json!({ "text": text, "label": label }).to_string());
            lines.push('\n');
        }
    }
    lines
}
