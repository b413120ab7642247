//! The load generator of `switchboard bench`: a load generator on loopback against a server it starts itself (SQLite
//! in a temporary directory, a human-first tenant with limits out of the way), beside a bare
//! tokio WebSocket echo server under the same load, so the figures come as ratios that mean
//! something on a noisy machine.
//!
//! Relay: N customer–agent pairs; each customer keeps `inflight` messages unacknowledged (a
//! receipt means stored); the agent side measures send→delivery latency. Then the same with
//! client acks: each side acks the highest seq it has received every 150 ms, as the widget and
//! the agent console do. Echo: N connections,
//! `inflight` frames each, round trips measured the same way. Idle: RSS per idle customer
//! connection of a server running as a child process, so only the server's end is counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use gateway::config::Settings;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub pairs: usize,
    pub inflight: usize,
    pub seconds: u64,
    pub message_bytes: usize,
    pub idle: usize,
    /// `postgres://...` to measure on PostgreSQL instead of SQLite in a temporary directory.
    pub database_url: Option<String>,
}

/// The bench's tenant: new on every run, so a shared PostgreSQL database can be reused.
pub(super) fn tenant() -> String {
    format!("bench{}", std::process::id())
}

pub(super) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(super) async fn connect(url: &str) -> anyhow::Result<Socket> {
    // Small client buffers, like the server's, so the idle figure is not the client's 128 KiB.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connect {url}"))?;
    Ok(socket)
}

pub(super) async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(&text)?),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(error))) => return Err(error.into()),
            Ok(None) => anyhow::bail!("socket closed"),
            Err(_) => anyhow::bail!("no frame within 30 s"),
        }
    }
}

/// CPU time of this process (user + system), from /proc.
pub(super) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .unwrap_or("?")
        .to_owned()
}

/// Latencies in microseconds, and how many.
#[derive(Default)]
pub(super) struct Samples {
    micros: Mutex<Vec<u64>>,
    pub(super) count: AtomicU64,
}

impl Samples {
    pub(super) fn record(&self, micros: u64, keep: bool) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if keep {
            self.micros
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(micros);
        }
    }

    pub(super) fn percentiles(&self) -> (f64, f64, f64) {
        let mut all = self
            .micros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.sort_unstable();
        let at = |p: f64| -> f64 {
            if all.is_empty() {
                return 0.0;
            }
            all[((all.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
        };
        (at(0.5), at(0.99), at(0.999))
    }
}

/// One phase's result.
struct Phase {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    cpu_us_per_message: f64,
}

impl Phase {
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>10.0} msgs/s   p50 {:>7.3} ms   p99 {:>7.3} ms   p99.9 {:>7.3} ms   cpu {:>6.1} µs/msg",
            self.per_second, self.p50_ms, self.p99_ms, self.p999_ms, self.cpu_us_per_message
        )
    }
}

pub(super) fn payload(started: Instant, bytes: usize) -> String {
    let stamp = started.elapsed().as_micros();
    let mut text = format!("{stamp};");
    while text.len() < bytes {
        text.push('x');
    }
    text
}

pub(super) fn latency_of(text: &str, started: Instant) -> Option<u64> {
    let stamp: u128 = text.split(';').next()?.parse().ok()?;
    Some((started.elapsed().as_micros().saturating_sub(stamp)) as u64)
}

/// The settings of a bench server: `SWITCHBOARD__*` variables apply (for example
/// `SWITCHBOARD__SQLITE_SYNCHRONOUS=normal`), then limits out of the way of one machine's load.
pub(super) fn server_settings(
    dir: &std::path::Path,
    database_url: Option<String>,
) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("SWITCHBOARD__"))
        .collect();
    let mut settings = Settings::load(None, &env)?;
    settings.addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.to_path_buf();
    settings.database_url = database_url;
    settings.demo = false;
    settings.bot.preload = false;
    // A phase's agents go away when it ends: their chats must not go back to the queue while
    // the next phase runs (1,000 requeued chats that no agent can take would keep the
    // dispatcher and the pool busy, and measure that).
    settings.agent_grace_ms = 3_600_000;
    settings.log.filter = "error".into();
    // Every load generator connection comes from this machine's one address: the per-IP
    // limits would measure themselves, not the relay.
    settings.limits.sessions =
        serde_json::from_value(json!({"per_second": 1_000_000, "burst": 1_000_000}))?;
    settings.limits.messages =
        serde_json::from_value(json!({"per_second": 10_000_000, "burst": 10_000_000}))?;
    settings.limits.connections = u32::MAX;
    Ok(settings)
}

/// A human-first tenant without message limits.
pub(super) async fn create_tenant(store: &store::Store, tenant: &str) -> anyhow::Result<()> {
    gateway::demo::create_tenant(store, tenant).await?;
    let unlimited = json!({"per_second": 10_000_000, "burst": 10_000_000});
    store
        .set_tenant_settings(
            tenant,
            &json!({"work_mode": "human_first", "limits": {"customer": unlimited, "agent": unlimited, "tenant": unlimited}}),
        )
        .await?;
    Ok(())
}

/// Runs the whole benchmark and returns the report.
pub async fn run(options: BenchOptions) -> anyhow::Result<String> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = server_settings(&dir, options.database_url.clone())?;
    let server = gateway::Server::start(settings).await?;
    let state = server.state.clone();
    create_tenant(&state.store, &tenant()).await?;
    let mut report = vec![format!(
        "switchboard bench on {}: {} pairs, {} in flight each, {} s, {}-byte messages; open files limit {}",
        if options.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
        options.pairs,
        options.inflight,
        options.seconds,
        options.message_bytes,
        open_files_limit()
    )];

    let relay = relay_phase(&options, &server, None).await?;
    let acks = Arc::new(AckLog::default());
    let acked = relay_phase(&options, &server, Some(acks.clone())).await?;
    let echo = echo_phase(&options).await?;
    report.push(relay.line("relay (stored, delivered)"));
    report.push(acked.line("relay, clients ack /150 ms"));
    report.push(echo.line("bare WebSocket echo"));
    report.push(format!(
        "ratio relay/echo: throughput {:.3}, p50 latency {:.2}×, cpu per message {:.2}×",
        relay.per_second / echo.per_second.max(1.0),
        relay.p50_ms / echo.p50_ms.max(1e-6),
        relay.cpu_us_per_message / echo.cpu_us_per_message.max(1e-6)
    ));
    report.push(format!(
        "ratio relay with acks/without: throughput {:.3}, p50 latency {:.2}×, cpu per message {:.2}×",
        acked.per_second / relay.per_second.max(1.0),
        acked.p50_ms / relay.p50_ms.max(1e-6),
        acked.cpu_us_per_message / relay.cpu_us_per_message.max(1e-6)
    ));
    report.push(acks.stored(&state.store).await?);
    let unloaded = unloaded_latency(&server).await?;
    report.push(format!(
        "unloaded one-way customer→agent: p50 {:.3} ms, p99 {:.3} ms (200 messages, one at a time)",
        unloaded.0, unloaded.1
    ));
    if options.idle > 0 {
        report.push(idle_phase(options.idle, &dir).await?);
    }
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report.join("\n"))
}

pub(super) async fn visitor(
    http: &reqwest::Client,
    base: &str,
    tenant: &str,
) -> anyhow::Result<String> {
    let body: Value = http
        .post(format!("{base}/v1/web/session"))
        .json(&json!({"tenant": tenant}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["token"].as_str().context("token")?.to_owned())
}

/// One pair: the customer's socket and the agent's, and the agent's node.
pub(super) struct Pair {
    pub(super) customer: Socket,
    pub(super) agent: Socket,
    pub(super) agent_node: usize,
}

/// Pairs a customer with an agent each on `nodes`, sticky-free: agent `i` on node `i % n`, its customer on
/// node `(i + 1) % n`.
pub(super) async fn pair_up(
    nodes: &[gateway::Server],
    tenant: &str,
    count: usize,
) -> anyhow::Result<Vec<Pair>> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for index in 0..count {
        let (agent_node, customer_node) = (index % nodes.len(), (index + 1) % nodes.len());
        let state = &nodes[agent_node].state;
        let agent = state
            .store
            .create_agent(
                tenant,
                &format!("agent {index}"),
                &["general".to_owned()],
                1,
            )
            .await?;
        let token = gateway::agent_token(state, &agent);
        let mut agent_ws = connect(&format!(
            "ws://{}/v1/agent/ws?token={token}",
            nodes[agent_node].addr
        ))
        .await?;
        while next_json(&mut agent_ws).await?["type"] != "hello" {}
        let base = format!("http://{}", nodes[customer_node].addr);
        let token = visitor(&http, &base, tenant).await?;
        let mut customer = connect(&format!(
            "ws://{}/v1/web/ws?token={token}",
            nodes[customer_node].addr
        ))
        .await?;
        customer
            .send(Message::Text(
                json!({"type":"send","client_msg_id":"open","text":"hello"})
                    .to_string()
                    .into(),
            ))
            .await?;
        while next_json(&mut agent_ws).await?["type"] != "assigned" {}
        out.push(Pair {
            customer,
            agent: agent_ws,
            agent_node,
        });
    }
    Ok(out)
}

/// How often the clients ack in the phase with acks (the widget's and the console's pace).
const ACK_EVERY: Duration = Duration::from_millis(150);

/// The acks the clients sent: how many, and per conversation the highest of each side.
#[derive(Default)]
struct AckLog {
    sent: AtomicU64,
    highest: Mutex<HashMap<String, [i64; 2]>>,
}

impl AckLog {
    fn sent(&self, conversation_id: &str, side: usize, seq: i64) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut highest = self.highest.lock().unwrap_or_else(|p| p.into_inner());
        let entry = highest.entry(conversation_id.to_owned()).or_default();
        entry[side] = entry[side].max(seq);
    }

    /// The report line: how many conversation sides the store holds an ack for, once the
    /// pending acks are written.
    async fn stored(&self, store: &store::Store) -> anyhow::Result<String> {
        // Acks still on their way to the server's sessions.
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.flush_acks().await?;
        let highest = self
            .highest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (mut sides, mut stored) = (0, 0);
        for (conversation_id, seqs) in &highest {
            let Some(conversation) = store.conversation(conversation_id).await? else {
                continue;
            };
            for (side, value) in [
                conversation.customer_acked_seq,
                conversation.agent_acked_seq,
            ]
            .into_iter()
            .enumerate()
            {
                if seqs[side] > 0 {
                    sides += 1;
                    if value > 0 && value <= seqs[side] {
                        stored += 1;
                    }
                }
            }
        }
        Ok(format!(
            "acks: {} sent; stored for {stored} of {sides} conversation sides acked",
            self.sent.load(Ordering::Relaxed)
        ))
    }
}

/// `acks`: the clients ack every [`ACK_EVERY`] and log what they sent there.
async fn relay_phase(
    options: &BenchOptions,
    server: &gateway::Server,
    acks: Option<Arc<AckLog>>,
) -> anyhow::Result<Phase> {
    let pairs = pair_up(std::slice::from_ref(server), &tenant(), options.pairs).await?;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let (stop_all, all_samples, measuring_all) = (stop.clone(), samples.clone(), measuring.clone());
    for Pair {
        customer,
        mut agent,
        ..
    } in pairs
    {
        let (mut sink, mut stream) = customer.split();
        let stop = stop_all.clone();
        let inflight = options.inflight;
        let bytes = options.message_bytes;
        let customer_acks = acks.clone();
        // The customer: `inflight` sends outstanding, a receipt frees a slot.
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut outstanding = 0;
            let (mut highest, mut acked, mut last_ack) = (0i64, 0i64, Instant::now());
            let mut conversation = String::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(log) = &customer_acks {
                    if highest > acked && last_ack.elapsed() >= ACK_EVERY {
                        let frame = json!({"type":"ack","seq":highest}).to_string();
                        if sink.send(Message::Text(frame.into())).await.is_err() {
                            return;
                        }
                        log.sent(&conversation, 0, highest);
                        (acked, last_ack) = (highest, Instant::now());
                    }
                }
                while outstanding < inflight {
                    let frame = json!({"type":"send","client_msg_id":format!("m{sent}"),"text":payload(started, bytes)});
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                        return;
                    }
                    sent += 1;
                    outstanding += 1;
                }
                match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        if text.contains("\"receipt\"") {
                            outstanding -= 1;
                            if customer_acks.is_some() {
                                let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                                highest = highest.max(frame["seq"].as_i64().unwrap_or(0));
                                if conversation.is_empty() {
                                    conversation =
                                        frame["conversation_id"].as_str().unwrap_or("").to_owned();
                                }
                            }
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return,
                }
            }
        }));
        // The agent: every customer message delivered, with its latency.
        let (stop, samples, measuring) =
            (stop_all.clone(), all_samples.clone(), measuring_all.clone());
        let agent_acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let (mut highest, mut acked, mut last_ack) = (0i64, 0i64, Instant::now());
            let mut conversation = String::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(log) = &agent_acks {
                    if highest > acked && last_ack.elapsed() >= ACK_EVERY {
                        let frame =
                            json!({"type":"ack","conversation_id":conversation,"seq":highest});
                        if agent
                            .send(Message::Text(frame.to_string().into()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        log.sent(&conversation, 1, highest);
                        (acked, last_ack) = (highest, Instant::now());
                    }
                }
                match tokio::time::timeout(Duration::from_secs(5), agent.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                            continue;
                        };
                        if frame["type"] == "message" {
                            highest = highest.max(frame["seq"].as_i64().unwrap_or(0));
                            if conversation.is_empty() {
                                conversation =
                                    frame["conversation_id"].as_str().unwrap_or("").to_owned();
                            }
                        }
                        if frame["type"] == "message" && frame["sender"] == "customer" {
                            if let Some(micros) =
                                latency_of(frame["text"].as_str().unwrap_or(""), started)
                            {
                                if measuring.load(Ordering::Relaxed) {
                                    samples.record(
                                        micros,
                                        samples.count.load(Ordering::Relaxed) % 7 == 0,
                                    );
                                }
                            }
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return,
                }
            }
        }));
    }
    measure(options.seconds, stop, measuring, samples, tasks).await
}

/// Warms up one second, measures `seconds`, then stops the tasks.
async fn measure(
    seconds: u64,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
    samples: Arc<Samples>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Phase> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cpu_time();
    let window = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = window.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    let count = samples.count.load(Ordering::Relaxed);
    let (p50_ms, p99_ms, p999_ms) = samples.percentiles();
    Ok(Phase {
        per_second: count as f64 / elapsed.as_secs_f64(),
        p50_ms,
        p99_ms,
        p999_ms,
        cpu_us_per_message: cpu.as_micros() as f64 / count.max(1) as f64,
    })
}

/// The baseline: a bare tokio-tungstenite echo server, the same clients and load.
async fn echo_phase(options: &BenchOptions) -> anyhow::Result<Phase> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    let measuring = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..options.pairs {
        let socket = connect(&format!("ws://{addr}/")).await?;
        let (mut sink, mut stream) = socket.split();
        let (stop, samples, measuring) = (stop.clone(), samples.clone(), measuring.clone());
        let inflight = options.inflight;
        let bytes = options.message_bytes;
        tasks.push(tokio::spawn(async move {
            let mut outstanding = 0;
            while !stop.load(Ordering::Relaxed) {
                while outstanding < inflight {
                    if sink
                        .send(Message::Text(payload(started, bytes).into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    outstanding += 1;
                }
                match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        outstanding -= 1;
                        if let Some(micros) = latency_of(&text, started) {
                            if measuring.load(Ordering::Relaxed) {
                                samples
                                    .record(micros, samples.count.load(Ordering::Relaxed) % 7 == 0);
                            }
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return,
                }
            }
        }));
    }
    let phase = measure(options.seconds, stop, measuring, samples, tasks).await;
    server.abort();
    phase
}

/// One message at a time from a customer to its agent: the relay's latency without load.
async fn unloaded_latency(server: &gateway::Server) -> anyhow::Result<(f64, f64)> {
    let Pair {
        mut customer,
        mut agent,
        ..
    } = pair_up(std::slice::from_ref(server), &tenant(), 1)
        .await?
        .remove(0);
    let started = Instant::now();
    let mut micros = Vec::new();
    for index in 0..200 {
        let frame =
            json!({"type":"send","client_msg_id":format!("u{index}"),"text":payload(started, 100)});
        customer
            .send(Message::Text(frame.to_string().into()))
            .await?;
        loop {
            let frame = next_json(&mut agent).await?;
            if frame["type"] == "message" && frame["sender"] == "customer" {
                micros.extend(latency_of(frame["text"].as_str().unwrap_or(""), started));
                break;
            }
        }
    }
    micros.sort_unstable();
    let at = |p: f64| micros[((micros.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    Ok((at(0.5), at(0.99)))
}

fn rss_kb_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// A `switchboard serve` child process, killed when dropped.
struct ChildServer(std::process::Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// RSS per idle customer connection on the server alone: the server runs as a child process
/// (this binary's `serve`, demo tenant, bot not loaded) and its RSS is read before and after
/// the clients, held in this process, connect.
async fn idle_phase(count: usize, dir: &std::path::Path) -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.join("idle"))
        .env("SWITCHBOARD__BOT__PRELOAD", "false")
        .env("SWITCHBOARD__LOG__FILTER", "error")
        .env("SWITCHBOARD__LIMITS__SESSIONS__PER_SECOND", "1000000")
        .env("SWITCHBOARD__LIMITS__SESSIONS__BURST", "1000000")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("start the server for the idle phase")?;
    let server = ChildServer(child);
    let base = format!("http://127.0.0.1:{port}");
    let ws_base = format!("ws://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let session = |http: reqwest::Client, base: String| async move {
        let body: Value = http
            .post(format!("{base}/v1/web/session"))
            .json(&json!({"tenant": gateway::demo::DEMO_TENANT}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(body["token"].as_str().context("token")?.to_owned())
    };
    let mut tokens = Vec::with_capacity(count);
    while tokens.is_empty() {
        match session(http.clone(), base.clone()).await {
            Ok(token) => tokens.push(token),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(error) => return Err(error.context("the idle-phase server did not start")),
        }
    }
    while tokens.len() < count {
        tokens.push(session(http.clone(), base.clone()).await?);
    }
    // Warm the path once, so lazily built state is not counted per connection.
    drop(connect(&format!("{ws_base}/v1/web/ws?token={}", tokens[0])).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.0.id();
    let before = rss_kb_of(pid);
    let mut held = Vec::with_capacity(count);
    for token in &tokens {
        held.push(connect(&format!("{ws_base}/v1/web/ws?token={token}")).await?);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = rss_kb_of(pid);
    let per = after.saturating_sub(before) as f64 / count as f64;
    drop(held);
    drop(server);
    Ok(format!(
        "idle: {count} customer connections held, server RSS {before} KB -> {after} KB: {per:.1} KB per connection (server process alone)"
    ))
}
