//! Reports at scale: 100,000 closed conversations with 1,000,000 messages in one tenant (on
//! SQLite in a temporary folder, and on the local PostgreSQL server), then every report the
//! console asks for, timed. The baseline in the same run is the report over one day (about
//! 3,300 conversations), so the ratio shows how the time grows with the period.
//!
//! `cargo run --release -p switchboard-engine --example bench_reports [-- CONVERSATIONS [MESSAGES_PER]]`

use std::time::Instant;

use store::crypto::{FieldCipher, SecretKey};
use store::reports::EpisodeFilter;
use store::Store;

const DAY: i64 = 86_400_000;

async fn run(
    name: &str,
    store: &Store,
    conversations: i64,
    messages_per: i64,
) -> anyhow::Result<()> {
    store.migrate().await?;
    store.create_tenant("bench", "h").await?;
    let end = store::util::now_ms();
    let started = Instant::now();
    store::testing::fill_report_history(store, "bench", conversations, messages_per, end).await?;
    println!(
        "{name}: {conversations} conversations, {} messages written in {:.1} s",
        conversations * messages_per,
        started.elapsed().as_secs_f64()
    );
    let period = |days: i64| EpisodeFilter {
        from: end - days * DAY,
        to: end + 1,
        ..Default::default()
    };
    let cases: Vec<(&str, EpisodeFilter)> = vec![
        ("1 day (baseline)", period(1)),
        ("7 days (the console's default)", period(7)),
        ("30 days, everything", period(30)),
        (
            "30 days, channel wechat",
            EpisodeFilter {
                channel: Some("wechat".into()),
                ..period(30)
            },
        ),
        (
            "30 days, one agent",
            EpisodeFilter {
                agent: Some("bag_1".into()),
                ..period(30)
            },
        ),
    ];
    let mut baseline = None;
    println!("| {name} report | episodes | best of 5 | ratio to 1 day |");
    println!("|---|---|---|---|");
    for (label, filter) in cases {
        let mut best = f64::MAX;
        let mut episodes = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let report = engine::reports::report(store, "bench", &filter, 480)
                .await
                .map_err(|error| anyhow::anyhow!(error.describe()))?;
            // The JSON the API sends is part of the answer.
            let json = serde_json::to_vec(&report)?;
            std::hint::black_box(json);
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            episodes = report.totals.episodes;
        }
        let base = *baseline.get_or_insert(best);
        println!(
            "| {label} | {episodes} | {best:.1} ms | {:.1} |",
            best / base
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let conversations = args.first().copied().unwrap_or(100_000);
    let messages_per = args.get(1).copied().unwrap_or(10);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url, FieldCipher::new(&SecretKey::generate())).await?;
    run("SQLite", &store, conversations, messages_per).await?;
    store.close().await;
    match store::testing::PostgresDatabase::create().await {
        Ok(database) => {
            let store =
                Store::connect(&database.url, FieldCipher::new(&SecretKey::generate())).await?;
            let result = run("PostgreSQL", &store, conversations, messages_per).await;
            store.close().await;
            database.drop_database().await;
            result?;
        }
        Err(error) => println!("PostgreSQL skipped: {error}"),
    }
    Ok(())
}
