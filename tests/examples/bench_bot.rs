//! Bot turn latency with the model in the loop, on the real server over real WebSockets, beside
//! the bare decision (`Chat::decide`, same process, same questions) as the baseline.
//!
//! `cargo run --release -p switchboard-tests --example bench_bot -- [TURNS] [LEVEL...]`
//! A level `N` is a closed loop: N customers, each sending its next question when the bot has
//! answered the last. A level `@R` is an open loop: R turns a second offered on a fixed schedule,
//! spread over customers who each send every 250 ms whether or not the bot has answered (a slow
//! bot then shows as latency, not as a lower send rate).
//! Questions: `bot/eval/zh_eval.jsonl` (Chinese and English customer questions).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_tests::TestApp;
use tokio_tungstenite::tungstenite::Message;

/// The switchboard binary's allocator, so the server in this process runs as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often each customer of an open-loop level sends.
const OPEN_LOOP_INTERVAL: Duration = Duration::from_millis(250);

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

/// The `n`th question reworded with a polite prefix and a closing mark: the same meaning, but a
/// text the encoder's cache has not seen (for `n` below 3,600 × questions / 120).
fn variant(questions: &[String], n: usize) -> String {
    const PREFIXES: [&str; 6] = ["", "请问", "你好，", "麻烦问下，", "hi, ", "想问一下，"];
    const SUFFIXES: [&str; 6] = ["", "？", "?", "。", "呢", "!"];
    let question = &questions[n % questions.len()];
    let round = n / questions.len();
    format!(
        "{}{question}{}",
        PREFIXES[round % PREFIXES.len()],
        SUFFIXES[round / PREFIXES.len() % SUFFIXES.len()]
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let turns: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(400);
    let levels: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ["1", "4", "16", "32", "@200"].map(str::to_owned).to_vec()
    };
    let questions: Vec<String> = include_str!("../../bot/eval/zh_eval.jsonl")
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["expect"] != "handoff")
        .filter_map(|line| line["q"].as_str().map(str::to_owned))
        .collect();
    // SWITCHBOARD_BENCH_SQLITE_SYNCHRONOUS=normal measures the faster, less durable level.
    let synchronous = std::env::var("SWITCHBOARD_BENCH_SQLITE_SYNCHRONOUS").ok();
    let app = TestApp::spawn_bot_first_with(|settings| {
        settings.log.filter = "error".into();
        // All load comes from this machine's one address.
        settings.limits.messages = engine::limits::Rate {
            per_second: 10_000_000,
            burst: 10_000_000,
        };
        settings.limits.connections = u32::MAX;
        if let Some(level) = synchronous {
            settings.sqlite_synchronous = serde_json::from_value(serde_json::json!(level))
                .expect("SWITCHBOARD_BENCH_SQLITE_SYNCHRONOUS is full or normal");
        }
    })
    .await;
    println!(
        "sqlite synchronous: {:?}",
        app.server.state.store.sqlite_synchronous().await
    );
    // Turns never hand off in this run (a person would take the conversation away from the
    // bot), and no limit or shedding gets in the way of measuring the bot itself.
    app.server
        .state
        .store
        .set_tenant_settings(
            "acme",
            &json!({
                "bot": {
                    "unsure_handoff_after": 0,
                    "handoff_intent_threshold": 1.0,
                    "complaint_intent_threshold": 1.0,
                },
                "limits": {
                    "customer": {"per_second": 100000, "burst": 100000},
                    "tenant": {"per_second": 100000, "burst": 100000},
                },
                "shedding": {"max_queued_turns": 100000},
            }),
        )
        .await
        .unwrap();
    app.server.state.chat.forget_tenant_settings("acme");
    let chat = app.server.state.chat.clone();
    // Questions the bot hands off would move the conversation to a person: leave them out.
    let mut kept = Vec::new();
    for question in questions {
        let decision = chat.decide("acme", &question, 0, false).await.unwrap();
        if decision.kind != switchboard_bot::DecisionKind::Handoff {
            kept.push(question);
        }
    }
    let questions = kept;
    println!(
        "{} questions that the bot does not hand off",
        questions.len()
    );

    // Baseline: the decision alone, one at a time (no socket, no store).
    let started = Instant::now();
    let mut ms = Vec::new();
    for index in 0..turns {
        let text = variant(&questions, index);
        let t = Instant::now();
        chat.decide("acme", &text, 0, false).await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let baseline = summary("decide() alone, sequential", ms, started.elapsed());

    // Every text of the run is distinct: the cache helps no row.
    let mut next = turns;
    for level in &levels {
        let (name, ms, elapsed) = if let Some(rate) = level.strip_prefix('@') {
            let rate: f64 = rate.parse().expect("@RATE");
            let customers = ((rate * OPEN_LOOP_INTERVAL.as_secs_f64()).round() as usize).max(1);
            let per_customer = turns.div_ceil(customers);
            let base = next;
            next += customers * per_customer;
            let (ms, elapsed) = open_loop(&app, &questions, base, customers, per_customer).await;
            (
                format!("offered {rate} turns/s, {customers} customers"),
                ms,
                elapsed,
            )
        } else {
            let concurrency: usize = level.parse().expect("a level: N or @RATE");
            let per_customer = turns.div_ceil(concurrency);
            let base = next;
            next += concurrency * per_customer;
            let started = Instant::now();
            let mut tasks = Vec::new();
            for customer in 0..concurrency {
                let token = app.visitor().await;
                let mut ws = app.customer_ws(&token).await;
                let questions = questions.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ms = Vec::new();
                    for index in 0..per_customer {
                        let text = variant(&questions, base + customer * per_customer + index);
                        let t = Instant::now();
                        ws.send(
                            json!({"type":"send","client_msg_id":format!("m{index}"),"text":text}),
                        )
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
            (
                format!("live over WebSocket, {concurrency} customers"),
                ms,
                started.elapsed(),
            )
        };
        let p50 = summary(&name, ms, elapsed);
        println!(
            "{:<34} p50 ratio to decide() alone: {:.2}",
            "",
            p50 / baseline
        );
    }
    let stats = chat.bot_stats();
    println!(
        "bot workers: {} turns, {} shed, decisions {:?}",
        stats.turns, stats.shed, stats.decisions
    );
    app.server.stop().await.unwrap();
}

/// An open loop: each customer sends `per_customer` questions, one every
/// [`OPEN_LOOP_INTERVAL`] (customers staggered across the interval), on schedule whatever the
/// bot's pace. A conversation's turns are answered in order, so the k-th bot reply answers the
/// k-th question: latency is from that question's scheduled send to its reply.
async fn open_loop(
    app: &TestApp,
    questions: &[String],
    base: usize,
    customers: usize,
    per_customer: usize,
) -> (Vec<f64>, Duration) {
    let mut sockets = Vec::new();
    for _ in 0..customers {
        let token = app.visitor().await;
        sockets.push(app.customer_ws(&token).await.into_stream());
    }
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (customer, socket) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = socket.split();
        let offset = OPEN_LOOP_INTERVAL.mul_f64(customer as f64 / customers as f64);
        let texts: Vec<String> = (0..per_customer)
            .map(|index| variant(questions, base + customer * per_customer + index))
            .collect();
        let schedule: Vec<tokio::time::Instant> = (0..per_customer)
            .map(|index| started + offset + OPEN_LOOP_INTERVAL * index as u32)
            .collect();
        let sends = schedule.clone();
        tasks.push(tokio::spawn(async move {
            let sender = tokio::spawn(async move {
                for (index, (at, text)) in sends.into_iter().zip(texts).enumerate() {
                    tokio::time::sleep_until(at).await;
                    let frame =
                        json!({"type":"send","client_msg_id":format!("o{index}"),"text":text});
                    sink.send(Message::Text(frame.to_string().into()))
                        .await
                        .expect("send");
                }
                sink
            });
            let mut ms = Vec::with_capacity(per_customer);
            while ms.len() < per_customer {
                let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
                    .await
                    .expect("a bot reply within 30 s")
                    .expect("socket open")
                    .expect("frame");
                let Message::Text(text) = message else {
                    continue;
                };
                let frame: serde_json::Value = serde_json::from_str(&text).expect("json");
                if frame["type"] == "message" && frame["sender"] == "bot" {
                    let asked = schedule[ms.len()];
                    ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                }
            }
            let _sink = sender.await.expect("sender");
            ms
        }));
    }
    let mut ms = Vec::new();
    for task in tasks {
        ms.extend(task.await.unwrap());
    }
    (ms, started.elapsed())
}
