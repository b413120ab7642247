//! `switchboard bench --nodes 1,2,4`: the cluster's bus measured as nodes are added. For each
//! bus layout (`--shards`, e.g. 1 = every event in one stream, as before sharding) and each node
//! count, the bench starts that many nodes in this process (one PostgreSQL database, one Redis,
//! the same secrets), pairs customers with agents sticky-free (a customer's connection on
//! another node than its agent's when there are several), and offers the same total load:
//! - open loop, `--rate` messages per second over all pairs: per node, the bus thread's CPU
//!   time per customer message delivered to that node's agents, and the stream entries it read
//!   per message delivered;
//! - closed loop, `--inflight` per customer: the cluster's relay throughput, against one node.
//!
//! Every node and the load generator share this machine's cores: the throughput of more nodes
//! is not more capacity here, only the bus work per message is comparable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use store::crypto::SecretKey;
use tokio_tungstenite::tungstenite::Message;

use super::loadgen::{
    create_tenant, latency_of, pair_up, payload, server_settings, Pair, Samples, Socket,
};

pub struct ClusterOptions {
    pub nodes: Vec<usize>,
    /// Bus layouts compared (`[bus] shards`).
    pub shards: Vec<usize>,
    /// Lingers compared, for readers and writers alike (`[bus] linger_ms`).
    pub lingers: Vec<usize>,
    pub pairs: usize,
    /// Messages per second offered in the open-loop phase, over all pairs.
    pub rate: u64,
    /// `rate` is per node: the load grows with the cluster (as when nodes are added for more
    /// traffic) instead of being spread over it.
    pub per_node: bool,
    pub inflight: usize,
    pub seconds: u64,
    pub database_url: String,
    pub redis_url: String,
}

/// One node's bus figures at a moment.
#[derive(Clone, Copy, Default)]
struct BusSnapshot {
    cpu: f64,
    read: u64,
    reads: u64,
    followed: u64,
}

fn snapshot(server: &gateway::Server) -> BusSnapshot {
    server
        .state
        .chat
        .cluster
        .bus_stats()
        .map(|stats| BusSnapshot {
            cpu: stats.cpu_seconds(),
            read: stats.read.load(Ordering::Relaxed),
            reads: stats.reads.load(Ordering::Relaxed),
            followed: stats.shards_followed.load(Ordering::Relaxed),
        })
        .unwrap_or_default()
}

pub async fn run(options: ClusterOptions) -> anyhow::Result<String> {
    anyhow::ensure!(
        options.database_url.starts_with("postgres"),
        "the cluster bench needs a PostgreSQL database (--database-url postgres://...)"
    );
    let (signing, encryption) = (SecretKey::generate(), SecretKey::generate());
    let mut report = vec![format!(
        "switchboard cluster bench: {} pairs, open loop {} msgs/s offered{}, closed loop {} in flight per customer, {} s each; nodes {:?}, bus shards {:?}, bus linger {:?} ms; {} cores shared by every node, Redis, PostgreSQL and the load generator",
        options.pairs,
        options.rate,
        if options.per_node { " per node" } else { " over all nodes" },
        options.inflight,
        options.seconds,
        options.nodes,
        options.shards,
        options.lingers,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )];
    let layouts = options
        .shards
        .iter()
        .flat_map(|&shards| options.lingers.iter().map(move |&linger| (shards, linger)));
    for (shards, linger) in layouts {
        let mut one_node: Option<(f64, f64)> = None;
        for &count in &options.nodes {
            let dir = std::env::temp_dir().join(format!(
                "switchboard-cluster-bench-{}-{shards}-{linger}-{count}",
                std::process::id()
            ));
            let mut nodes = Vec::new();
            for index in 0..count.max(1) {
                let mut settings = server_settings(
                    &dir.join(index.to_string()),
                    Some(options.database_url.clone()),
                )?;
                settings.redis_url = Some(options.redis_url.clone());
                settings.bus.shards = shards;
                settings.bus.linger_ms = linger as u64;
                settings.secrets.signing_key = Some(signing.clone());
                settings.secrets.encryption_key = Some(encryption.clone());
                nodes.push(gateway::Server::start(settings).await?);
            }
            let tenant = format!("benchc{}s{shards}l{linger}n{count}", std::process::id());
            create_tenant(&nodes[0].state.store, &tenant).await?;
            let pairs = pair_up(&nodes, &tenant, options.pairs).await?;
            let rate = if options.per_node {
                options.rate * count.max(1) as u64
            } else {
                options.rate
            };
            let (open, per_node) = open_loop(&nodes, pairs, rate, &options).await?;
            let pairs = pair_up(&nodes, &tenant, options.pairs).await?;
            let closed = closed_loop(pairs, &options).await?;
            for node in nodes {
                node.stop().await?;
            }
            let _ = std::fs::remove_dir_all(&dir);
            let mean_cpu = per_node.iter().map(|n| n.cpu_us).sum::<f64>() / per_node.len() as f64;
            let baseline = *one_node.get_or_insert((mean_cpu, closed));
            report.push(format!(
                "shards {shards:>4}, linger {linger:>2} ms, {count} node(s): delivered {:.0} msgs/s, p50 {:.2} ms, p99 {:.2} ms; bus CPU per delivered message {} (mean {:.1} µs, {:.2}x one node); stream entries read per delivered message {}; reads/s {}; shards followed {}; closed loop {:.0} msgs/s ({:.2}x one node)",
                open.per_second,
                open.p50_ms,
                open.p99_ms,
                each(&per_node, |n| format!("{:.1} µs", n.cpu_us)),
                mean_cpu,
                mean_cpu / baseline.0.max(1e-9),
                each(&per_node, |n| format!("{:.2}", n.read_per_message)),
                each(&per_node, |n| format!("{:.0}", n.reads_per_second)),
                each(&per_node, |n| n.followed.to_string()),
                closed,
                closed / baseline.1.max(1e-9),
            ));
        }
    }
    Ok(report.join("\n"))
}

struct OpenLoop {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct NodeFigures {
    cpu_us: f64,
    read_per_message: f64,
    reads_per_second: f64,
    followed: u64,
}

/// The agents' side: counts each customer message delivered (per agent node) and its latency
/// while `measuring`.
fn agent_task(
    mut agent: Socket,
    delivered: Arc<AtomicU64>,
    samples: Arc<Samples>,
    measuring: Arc<AtomicBool>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(frame)) = agent.next().await {
            let Message::Text(text) = frame else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame["type"] != "message" || frame["sender"] != "customer" {
                continue;
            }
            if !measuring.load(Ordering::Relaxed) {
                continue;
            }
            delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(micros) = latency_of(frame["text"].as_str().unwrap_or(""), started) {
                samples.record(micros, samples.count.load(Ordering::Relaxed) % 5 == 0);
            }
        }
    })
}

async fn open_loop(
    nodes: &[gateway::Server],
    pairs: Vec<Pair>,
    rate: u64,
    options: &ClusterOptions,
) -> anyhow::Result<(OpenLoop, Vec<NodeFigures>)> {
    let started = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    let delivered: Vec<Arc<AtomicU64>> = nodes.iter().map(|_| Arc::default()).collect();
    let every = Duration::from_secs_f64(pairs.len() as f64 / rate.max(1) as f64);
    let mut tasks = Vec::new();
    for (index, pair) in pairs.into_iter().enumerate() {
        tasks.push(agent_task(
            pair.agent,
            delivered[pair.agent_node].clone(),
            samples.clone(),
            measuring.clone(),
            started,
        ));
        let (mut sink, mut stream) = pair.customer.split();
        // Receipts are read and dropped.
        tasks.push(tokio::spawn(async move {
            while stream.next().await.is_some() {}
        }));
        tasks.push(tokio::spawn(async move {
            // Spread the customers' sends over the interval.
            tokio::time::sleep(every.mul_f64((index % 97) as f64 / 97.0)).await;
            let mut tick = tokio::time::interval(every);
            for sent in 0u64.. {
                tick.tick().await;
                let frame = json!({"type":"send","client_msg_id":format!("o{sent}"),"text":payload(started, 100)});
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<BusSnapshot> = nodes.iter().map(snapshot).collect();
    let window = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    // The CPU figure is sampled every 500 ms: wait for a sample after the window.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let elapsed = window.elapsed().as_secs_f64() - 0.6;
    let after: Vec<BusSnapshot> = nodes.iter().map(snapshot).collect();
    for task in tasks {
        task.abort();
    }
    let total = samples.count.load(Ordering::Relaxed);
    let (p50_ms, p99_ms, _) = samples.percentiles();
    let figures = (0..nodes.len())
        .map(|node| {
            let messages = delivered[node].load(Ordering::Relaxed).max(1) as f64;
            NodeFigures {
                cpu_us: (after[node].cpu - before[node].cpu) * 1e6 / messages,
                read_per_message: (after[node].read - before[node].read) as f64 / messages,
                reads_per_second: (after[node].reads - before[node].reads) as f64
                    / elapsed.max(1e-3),
                followed: after[node].followed,
            }
        })
        .collect();
    Ok((
        OpenLoop {
            per_second: total as f64 / elapsed.max(1e-3),
            p50_ms,
            p99_ms,
        },
        figures,
    ))
}

/// Every customer keeps `inflight` messages unreceipted; answers the messages per second the
/// agents received.
async fn closed_loop(pairs: Vec<Pair>, options: &ClusterOptions) -> anyhow::Result<f64> {
    let started = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Samples::default());
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for pair in pairs {
        tasks.push(agent_task(
            pair.agent,
            delivered.clone(),
            samples.clone(),
            measuring.clone(),
            started,
        ));
        let inflight = options.inflight.max(1);
        let mut customer = pair.customer;
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut outstanding) = (0u64, 0usize);
            loop {
                while outstanding < inflight {
                    let frame = json!({"type":"send","client_msg_id":format!("c{sent}"),"text":payload(started, 100)});
                    if customer.send(Message::Text(frame.to_string().into())).await.is_err() {
                        return;
                    }
                    sent += 1;
                    outstanding += 1;
                }
                match customer.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("\"receipt\"") => {
                        outstanding -= 1
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let per_second = delivered.load(Ordering::Relaxed) as f64 / window.elapsed().as_secs_f64();
    for task in tasks {
        task.abort();
    }
    Ok(per_second)
}

/// One figure per node, `a / b / c`.
fn each(nodes: &[NodeFigures], figure: impl Fn(&NodeFigures) -> String) -> String {
    nodes.iter().map(figure).collect::<Vec<_>>().join(" / ")
}

/// `--nodes 1,2,4`: a list of numbers, each at least `min`.
pub fn parse_list(text: &str, min: usize) -> anyhow::Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= min)
                .with_context(|| format!("{part:?} is not a number of at least {min}"))
        })
        .collect()
}
