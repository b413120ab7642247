//! Bot turn latency with the model in the loop, on the real server over real WebSockets, beside
//! the bare decision (`Chat::decide`, same process, same questions) as the baseline.
//!
//! `cargo run --release -p switchboard-tests --example bench_bot -- [TURNS] [CONCURRENCY...]`
//! Questions: `bot/eval/zh_eval.jsonl` (Chinese and English customer questions).

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_tests::TestApp;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn summary(name: &str, mut ms: Vec<f64>, elapsed: Duration) -> f64 {
    ms.sort_by(f64::total_cmp);
    let p50 = percentile(&ms, 0.5);
    println!(
        "{name:<34} turns {:>5}  {:>7.1} turns/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        ms.len(),
        ms.len() as f64 / elapsed.as_secs_f64(),
        p50,
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0),
    );
    p50
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let turns: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(400);
    let levels: Vec<usize> = if args.len() > 1 {
        args[1..].iter().filter_map(|a| a.parse().ok()).collect()
    } else {
        vec![1, 4, 16, 32]
    };
    let questions: Vec<String> = include_str!("../../bot/eval/zh_eval.jsonl")
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["expect"] != "handoff")
        .filter_map(|line| line["q"].as_str().map(str::to_owned))
        .collect();
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.log.filter = "error".into();
    })
    .await;
    // Turns never hand off in this run: a person would take the conversation away from the bot.
    app.server
        .state
        .store
        .set_tenant_settings("acme", &json!({"bot": {"unsure_handoff_after": 0}}))
        .await
        .unwrap();
    app.server.state.chat.forget_tenant_settings("acme");
    let chat = app.server.state.chat.clone();
    let warm = Instant::now();
    chat.decide("acme", "运费怎么算", 0, false).await.unwrap();
    println!(
        "models and FAQ embeddings ready in {:.1} s",
        warm.elapsed().as_secs_f64()
    );

    // Baseline: the decision alone, one at a time (no socket, no store).
    let started = Instant::now();
    let mut ms = Vec::new();
    for index in 0..turns {
        // A suffix defeats the encoder's cache, as distinct customer texts would.
        let text = format!("{} #{index}", questions[index % questions.len()]);
        let t = Instant::now();
        chat.decide("acme", &text, 0, false).await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let base = summary("decide() alone, sequential", ms, started.elapsed());

    for &concurrency in &levels {
        let per_customer = turns.div_ceil(concurrency);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for customer in 0..concurrency {
            let token = app.visitor().await;
            let mut ws = app.customer_ws(&token).await;
            let questions = questions.clone();
            tasks.push(tokio::spawn(async move {
                let mut ms = Vec::new();
                for index in 0..per_customer {
                    let text = format!(
                        "{} #{customer}-{index}",
                        questions[(customer * 7 + index) % questions.len()]
                    );
                    let t = Instant::now();
                    ws.send(json!({"type":"send","client_msg_id":format!("m{index}"),"text":text}))
                        .await;
                    ws.expect("bot reply", |frame| frame["sender"] == "bot")
                        .await;
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                ms
            }));
        }
        let mut ms = Vec::new();
        for task in tasks {
            ms.extend(task.await.unwrap());
        }
        let p50 = summary(
            &format!("live over WebSocket, {concurrency} customers"),
            ms,
            started.elapsed(),
        );
        println!("{:<34} p50 ratio to decide() alone: {:.2}", "", p50 / base);
    }
    let stats = chat.bot_stats();
    println!(
        "bot workers: {} turns, {} shed, decisions {:?}",
        stats.turns, stats.shed, stats.decisions
    );
    app.server.stop().await.unwrap();
}
