//! Exports at scale: one tenant with CONVERSATIONS conversations of MESSAGES_PER messages each
//! (written straight into a fresh SQLite database in a temporary folder), then exports of it in
//! each format, timed, with the peak memory of the process that exports (a child of its own, so
//! writing the history does not count). The output is counted and dropped, as a client that
//! saves it to disk would take it.
//!
//! `cargo run --release -p switchboard-tests --example bench_export [-- CONVERSATIONS [MESSAGES_PER] [postgres]]`
//! (defaults 100000 and 10; `postgres`: on the local PostgreSQL server instead of SQLite). Memory: `VmHWM` (peak resident set, reset before each export
//! through `/proc/self/clear_refs`; it counts the database file's pages that SQLite maps, up to
//! its 256 MiB `mmap_size`) and the largest anonymous resident memory (`RssAnon`, sampled every
//! 20 ms: the heap and stacks, without the mapped file), and the largest file-backed resident
//! memory (`RssFile`: the mapped database and the binary).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::export::{ExportQuery, ExportRequest};
use sqlx::AssertSqlSafe;
use store::crypto::{FieldCipher, SecretKey};
use store::Store;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS_PER_STATEMENT: i64 = 400;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Writes the tenant's history with multi-row inserts (ids and texts are made here).
async fn fill(url: &str, conversations: i64, messages_per: i64) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await?;
    let start = store::util::now_ms() - conversations * 1_000;
    let mut tx = pool.begin().await?;
    for first in (0..conversations).step_by(ROWS_PER_STATEMENT as usize) {
        let last = (first + ROWS_PER_STATEMENT).min(conversations);
        let mut customers = Vec::new();
        let mut rows = Vec::new();
        let mut messages = Vec::new();
        let mut events = Vec::new();
        for n in first..last {
            let created = start + n * 1_000;
            let updated = created + messages_per * 10;
            let channel = ["web", "wechat", "mobile", "douyin"][(n % 4) as usize];
            let group = ["general", "sales", "billing"][(n % 3) as usize];
            customers.push(format!(
                "('cu_b{n}', 'bench', '{channel}', 'visitor{n}', {created})"
            ));
            rows.push(format!(
                "('cv_b{n}', 'bench', 'cu_b{n}', '{channel}', 'closed', '{group}', 'ag_b{}', {messages_per}, \
                 {created}, {updated}, {}, {}, {updated})",
                n % 50,
                created + 5,
                created + 15
            ));
            for seq in 1..=messages_per {
                let (kind, text) = match seq % 3 {
                    1 => ("customer", format!("Customer {n} asks about order #{seq}: where is my parcel?")),
                    2 => ("bot", format!("Bot answer {seq}: parcels arrive in 3-5 days, tracking in your account.")),
                    _ => ("agent", format!("Agent reply {seq} to conversation {n}: =SUM(A1) stays text")),
                };
                messages.push(format!(
                    "('cv_b{n}', {seq}, 'bench', '{kind}', NULL, '{text}', NULL, {})",
                    created + seq * 10
                ));
            }
            events.push(format!(
                "('cv_b{n}', 'bench', 'created', 'customer', NULL, NULL, {created})"
            ));
            events.push(format!(
                "('cv_b{n}', 'bench', 'closed', 'agent', 'ag_b{}', NULL, {updated})",
                n % 50
            ));
        }
        let statements = [
            format!(
                "INSERT INTO customers (id, tenant_id, channel, external_id, created_at) VALUES {}",
                customers.join(", ")
            ),
            format!(
                "INSERT INTO conversations (id, tenant_id, customer_id, channel, state, skill_group, agent_id, \
                 last_seq, created_at, updated_at, assigned_at, first_response_at, closed_at) VALUES {}",
                rows.join(", ")
            ),
            format!(
                "INSERT INTO messages (conversation_id, seq, tenant_id, sender_kind, sender_id, text, \
                 client_msg_id, created_at) VALUES {}",
                messages.join(", ")
            ),
            format!(
                "INSERT INTO conversation_events (conversation_id, tenant_id, kind, actor_kind, actor_id, \
                 reason, created_at) VALUES {}",
                events.join(", ")
            ),
        ];
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        if last % 20_000 == 0 {
            tx.commit().await?;
            tx = pool.begin().await?;
        }
    }
    tx.commit().await?;
    // Statistics, as PostgreSQL's autovacuum would gather after a while (without them it sorts
    // a bitmap scan of the whole range for every page).
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

async fn export(store: &Store, format: &str, rows: &str) -> anyhow::Result<()> {
    let query = ExportQuery {
        format: Some(format.into()),
        rows: Some(rows.into()),
        ..Default::default()
    };
    let request = ExportRequest::parse("bench", &query, store::util::now_ms() + 1, 0)
        .map_err(|error| anyhow::anyhow!(error.describe()))?;
    // Peak memory from here on.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base_anon = status_kib("RssAnon");
    let peak_anon = Arc::new(AtomicU64::new(base_anon));
    let peak_file = Arc::new(AtomicU64::new(status_kib("RssFile")));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak_anon, peak_file, done) = (peak_anon.clone(), peak_file.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak_anon.fetch_max(status_kib("RssAnon"), Ordering::Relaxed);
                peak_file.fetch_max(status_kib("RssFile"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let mut receiver = engine::export::spawn(store.clone(), request);
    let mut bytes = 0usize;
    while let Some(chunk) = receiver.recv().await {
        bytes += chunk
            .map_err(|error| anyhow::anyhow!(error.describe()))?
            .len();
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    println!(
        "{format:<5} {rows:<12} {:>8.1} s  {:>8.1} MB out  {:>7.1} MB/s  peak RSS {:>6.1} MiB  peak anon {:>6.1} MiB (before {:>5.1} MiB)  peak file-backed {:>6.1} MiB",
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        status_kib("VmHWM") as f64 / 1024.0,
        peak_anon.load(Ordering::Relaxed) as f64 / 1024.0,
        base_anon as f64 / 1024.0,
        peak_file.load(Ordering::Relaxed) as f64 / 1024.0,
    );
    Ok(())
}

/// The child: every export of the database at `url`.
async fn export_all(url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url, FieldCipher::new(&SecretKey::generate())).await?;
    for (format, rows) in [
        ("csv", "conversation"),
        ("jsonl", "conversation"),
        ("xlsx", "conversation"),
        ("csv", "message"),
        ("jsonl", "message"),
        ("xlsx", "message"),
    ] {
        export(&store, format, rows).await?;
    }
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url] = args.as_slice() {
        if flag == "--export" {
            return export_all(url).await;
        }
    }
    let conversations: i64 = args.first().map_or(Ok(100_000), |a| a.parse())?;
    let messages_per: i64 = args.get(1).map_or(Ok(10), |a| a.parse())?;
    // `postgres` as the third argument: a database of its own on the local PostgreSQL server.
    let postgres = match args.get(2).map(String::as_str) {
        Some("postgres") => Some(store::testing::PostgresDatabase::create().await?),
        Some(other) => anyhow::bail!("the third argument is `postgres` or nothing, not {other}"),
        None => None,
    };
    let dir = tempfile::tempdir()?;
    let url = match &postgres {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let store = Store::connect(&url, FieldCipher::new(&SecretKey::generate())).await?;
    store.migrate().await?;
    store.create_tenant("bench", "h").await?;
    let started = Instant::now();
    fill(&url, conversations, messages_per).await?;
    println!(
        "{conversations} conversations, {} messages written in {:.1} s",
        conversations * messages_per,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--export", &url])
        .status()?;
    if let Some(database) = postgres {
        database.drop_database().await;
    }
    anyhow::ensure!(status.success(), "the exports failed");
    Ok(())
}
