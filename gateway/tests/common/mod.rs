//! What the tests with real `switchboard` processes share: a cluster of nodes on a fresh
//! PostgreSQL database and the local Redis, WebSocket helpers, and the HTTP calls they make.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn admin_exec(statement: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&postgres_admin_url())
        .await
        .expect("postgres");
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut connection)
        .await
        .expect(statement);
}

/// A node process, killed (SIGKILL) when dropped, with the log lines it wrote (JSON).
pub struct Node {
    pub child: Child,
    pub log: Arc<Mutex<Vec<Value>>>,
}

impl Node {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (a few seconds at most) for a log line with this message and trace id.
    pub async fn logged(&self, message: &str, trace: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|line| {
                    line["fields"]["message"] == message && line["fields"]["trace"] == trace
                })
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no `{message}` line with trace {trace} in {:#?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub database: String,
    pub url: String,
    pub signing: String,
    pub encryption: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn new() -> Cluster {
        let database = format!("sb_cluster_{}", uuid::Uuid::new_v4().simple());
        admin_exec(&format!("CREATE DATABASE {database}")).await;
        let admin = postgres_admin_url();
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .unwrap();
        let key = || {
            use base64::Engine;
            let bytes: [u8; 32] = rand::random();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        Cluster {
            url: format!("{base}/{database}"),
            database,
            signing: key(),
            encryption: key(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `switchboard <args>` as a node of this cluster.
    pub fn command(&self, node: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command.args(args);
        for (name, _) in std::env::vars() {
            if name.starts_with("SWITCHBOARD__") {
                command.env_remove(name);
            }
        }
        command
            .env("SWITCHBOARD__SECRETS__SIGNING_KEY", &self.signing)
            .env("SWITCHBOARD__SECRETS__ENCRYPTION_KEY", &self.encryption)
            .env("SWITCHBOARD__DEMO", "false")
            .env("SWITCHBOARD__BOT__PRELOAD", "false")
            .env("SWITCHBOARD__AGENT_GRACE_MS", "3000")
            // Every client of these tests comes from this machine's one address.
            .env("SWITCHBOARD__LIMITS__MESSAGES__PER_SECOND", "100000")
            .env("SWITCHBOARD__LIMITS__MESSAGES__BURST", "100000")
            .env("SWITCHBOARD__LIMITS__CONNECTIONS", "100000")
            // Stored and delivered lines carry each message's trace id.
            .env(
                "SWITCHBOARD__LOG__FILTER",
                "warn,engine::chat=debug,gateway::session=debug",
            )
            .env("SWITCHBOARD__LOG__FORMAT", "json")
            .args(["--database-url", &self.url, "--redis-url", &redis_url()])
            .args(["--data-dir", self.dir.path().join(node).to_str().unwrap()]);
        command
    }

    /// Starts a node; returns the process (killed when dropped, also when the test fails) and
    /// its address.
    pub fn node(&self, name: &str) -> (Node, String) {
        let mut child = self
            .command(name, &["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines, kept) = (
            BufReader::new(child.stderr.take().unwrap()).lines(),
            log.clone(),
        );
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(line) => kept.lock().unwrap().push(line),
                    Err(_) => eprintln!("{line}"),
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("a line").expect("utf-8");
        let addr = line
            .trim_start_matches("switchboard listening on http://")
            .to_owned();
        // Keep reading stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (Node { child, log }, addr)
    }

    /// Creates the tenant `acme` with the CLI, as an operator would; returns its admin key.
    pub fn create_tenant(&self) -> String {
        let output = self
            .command(
                "cli",
                &[
                    "tenant",
                    "create",
                    "acme",
                    "--admin-email",
                    "ops@acme.example",
                    "--json",
                ],
            )
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        created["admin_key"].as_str().unwrap().to_owned()
    }

    pub async fn drop_database(&self) {
        admin_exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ))
        .await;
    }
}

pub async fn connect(url: &str) -> Socket {
    tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .unwrap_or_else(|error| panic!("connect {url}: {error}"))
        .0
}

pub async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

pub async fn expect(socket: &mut Socket, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if matches(&frame) {
                    return frame;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("waiting for {what}: {other:?}"),
        }
    }
}

/// GET with a bearer token (an admin key or an agent token), as JSON.
pub async fn get_json(http: &reqwest::Client, key: &str, url: &str) -> Value {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `token` of a JSON answer.
pub async fn token(request: reqwest::RequestBuilder) -> String {
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

pub async fn visitor(http: &reqwest::Client, addr: &str) -> String {
    token(
        http.post(format!("http://{addr}/v1/web/session"))
            .json(&json!({"tenant": "acme"})),
    )
    .await
}

pub async fn agent(http: &reqwest::Client, addr: &str, key: &str, name: &str, max: i64) -> String {
    token(
        http.post(format!("http://{addr}/v1/tenants/acme/agents"))
            .bearer_auth(key)
            .json(&json!({"name": name, "skills": ["general"], "max_concurrent": max})),
    )
    .await
}
