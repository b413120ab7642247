//! `switchboard bench`: the load generator (see `loadgen`); it lives in the binary, not in the
//! server library.

mod cluster;
mod loadgen;

use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Customer–agent pairs (and echo connections).
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Seconds measured per phase (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 100)]
    bytes: usize,
    /// Idle customer connections to hold for the memory figure (0: skip).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Measure on this PostgreSQL database (`postgres://...`) instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// The cluster bench instead: this many nodes in turn (e.g. `1,2,4`), in this process, on
    /// `--database-url` (PostgreSQL) and `--redis-url`.
    #[arg(long)]
    nodes: Option<String>,
    /// The cluster bench's Redis.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The cluster bench's bus layouts compared (`[bus] shards`; 1 = one stream for everything).
    #[arg(long, default_value = "1,256")]
    shards: String,
    /// The cluster bench's bus lingers compared, readers and writers alike (`[bus] linger_ms`).
    #[arg(long, default_value = "5")]
    linger: String,
    /// The cluster bench's open-loop load: messages per second over all pairs.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// The cluster bench's `--rate` is per node: the load grows with the node count.
    #[arg(long)]
    per_node: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        pairs,
        inflight,
        seconds,
        bytes,
        idle,
        database_url,
        nodes,
        redis_url,
        shards,
        linger,
        rate,
        per_node,
    } = args;
    // Quiet unless asked (RUST_LOG): the report is the output. Logs go out as the server's do
    // (`serve`): through the writer thread, in colour only on a terminal.
    let mut _logs = None;
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        use std::io::IsTerminal;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal());
        match super::log_writer::non_blocking(std::io::stderr()) {
            Some((writer, flushed)) => {
                builder.with_writer(writer).init();
                _logs = Some(flushed);
            }
            None => builder.with_writer(std::io::stderr).init(),
        }
    }
    if let Some(url) = database_url
        .as_deref()
        .filter(|url| url.starts_with("postgres"))
    {
        ensure_database(url).await?;
    }
    if let Some(nodes) = nodes {
        let report = cluster::run(cluster::ClusterOptions {
            nodes: cluster::parse_list(&nodes, 1)?,
            shards: cluster::parse_list(&shards, 1)?,
            lingers: cluster::parse_list(&linger, 0)?,
            pairs: pairs.max(1),
            rate,
            per_node,
            inflight: inflight.max(1),
            seconds: seconds.max(1),
            database_url: database_url.unwrap_or_default(),
            redis_url,
        })
        .await?;
        println!("{report}");
        return Ok(());
    }
    let report = loadgen::run(loadgen::BenchOptions {
        pairs: pairs.max(1),
        inflight: inflight.max(1),
        seconds: seconds.max(1),
        message_bytes: bytes.max(24),
        idle,
        database_url,
    })
    .await?;
    println!("{report}");
    Ok(())
}

/// Makes the bench's PostgreSQL database when it does not exist yet, so a fresh machine needs no
/// step by hand.
async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if store::Store::create_postgres_database_if_missing(url)
        .await
        .with_context(|| format!("cannot make the bench database ({url})"))?
    {
        eprintln!("created the bench database ({url})");
    }
    Ok(())
}
