//! Where a turn's time goes, with and without the second encoder (USE): each part of a turn
//! timed alone, turn by turn interleaved so load drift hits every row alike, then the rate of
//! whole decisions with 1 and 2 threads deciding at once (the live bot's worker pool on this
//! 2-core machine).
//!
//! `cargo run --release -p switchboard-bot --example turn_cost [-- ROUNDS SECONDS] [--spinning]`
//! (ROUNDS: passes over the Chinese set's 137 questions; `--spinning`: the main encoder's
//! intra-op threads spin between runs, ONNX Runtime's default and the bot's before
//! 2026-12-07; see `switchboard_models::EncoderConfig::intra_op_spinning`).

#[path = "support/setup.rs"]
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_bot::{Bot, BotSettings, SecondOpinion, Turn};
use switchboard_knowledge::KnowledgeIndex;
use switchboard_models::{default_model_dir, Encoder, EncoderConfig, EncoderFiles, TextKind};

fn pct(ms: &mut [f64], p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 - 1.0) * p).round() as usize]
}

fn row(name: &str, mut ms: Vec<f64>) {
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{name:<44} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  mean {:>6.2} ms",
        pct(&mut ms, 0.5),
        pct(&mut ms, 0.9),
        pct(&mut ms, 0.99),
        mean
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> f64 {
    let start = Instant::now();
    std::hint::black_box(f());
    start.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let spinning = std::env::args().any(|a| a == "--spinning");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Arc::new(KnowledgeIndex::open(dir.path()).expect("index"));
    index
        .rebuild(setup::DEMO, &setup::demo_records(), 1)
        .expect("rebuild");
    let encoder = Encoder::load_with(
        EncoderFiles::in_dir(default_model_dir()),
        EncoderConfig {
            intra_op_spinning: spinning,
            ..EncoderConfig::default()
        },
    )
    .expect("encoder");
    let with_use = Arc::new(Bot::new(index, Arc::new(encoder)).expect("bot"));
    with_use
        .index_faqs(setup::DEMO, &setup::demo_records())
        .expect("dense");
    let use_encoder = with_use
        .second_encoder()
        .cloned()
        .expect("USE files in models/files");
    let without_use = Arc::new(
        Bot::new(with_use.knowledge().clone(), with_use.encoder().clone())
            .expect("bot")
            .with_second_encoder(None),
    );
    without_use
        .index_faqs(setup::DEMO, &setup::demo_records())
        .expect("dense");
    let synonyms = setup::demo_synonyms();
    let settings = Arc::new(BotSettings::default());
    let zh = setup::read_lines(setup::root().join("bot/eval/zh_eval.jsonl"));
    let texts: Vec<String> = (0..rounds)
        .flat_map(|r| zh.iter().map(move |l| format!("{}{}", l.q, "？".repeat(r))))
        .collect();
    let turn = |text: &str| {
        Turn::new(setup::DEMO, text)
            .with_settings(settings.clone())
            .with_synonyms(synonyms.clone())
    };
    let encoder = with_use.encoder().clone();
    for t in texts.iter().take(20) {
        with_use.decide(&turn(t));
        without_use.decide(&turn(t));
    }
    println!(
        "main encoder's threads spinning: {spinning}; {} turns per row, interleaved",
        texts.len()
    );
    let names = [
        "e5 pass alone",
        "USE pass alone",
        "decide_with_embedding, two-stage",
        "decide_with_embedding, without USE",
        "decide(), USE always (one stage)",
        "decide(), two-stage (default band)",
        "decide(), without USE",
    ];
    let always = |bot: &Bot, t: &Turn| bot.explain_with_opinion(t, SecondOpinion::Always);
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for (n, text) in texts.iter().enumerate() {
        let vector = encoder
            .embed_kind_blocking(TextKind::Query, &[text.as_str()])
            .expect("e5")
            .remove(0);
        let t = turn(text);
        let mut order: Vec<usize> = (0..names.len()).collect();
        if n % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let ms = match i {
                0 => timed(|| encoder.embed_kind_blocking(TextKind::Query, &[text.as_str()])),
                1 => timed(|| use_encoder.embed_one(text)),
                2 => timed(|| with_use.decide_with_embedding(&t, &vector)),
                3 => timed(|| without_use.decide_with_embedding(&t, &vector)),
                4 => timed(|| always(&with_use, &t)),
                5 => timed(|| with_use.decide(&t)),
                _ => timed(|| without_use.decide(&t)),
            };
            rows[i].push(ms);
        }
    }
    for (name, ms) in names.iter().zip(rows) {
        row(name, ms);
    }

    // Whole decisions per second with 1 and 2 threads at once.
    let modes = [
        "USE always (one stage)",
        "two-stage (default band)",
        "without USE",
    ];
    for threads in [1usize, 2] {
        for (mode, label) in modes.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    let bot = if mode == 2 {
                        without_use.clone()
                    } else {
                        with_use.clone()
                    };
                    let texts = texts.clone();
                    let settings = settings.clone();
                    let synonyms = synonyms.clone();
                    std::thread::spawn(move || {
                        let mut ms = Vec::new();
                        let mut i = k * 37;
                        while Instant::now() < deadline {
                            let t = Turn::new(setup::DEMO, texts[i % texts.len()].as_str())
                                .with_settings(settings.clone())
                                .with_synonyms(synonyms.clone());
                            ms.push(timed(|| {
                                if mode == 0 {
                                    bot.explain_with_opinion(&t, SecondOpinion::Always).decision
                                } else {
                                    bot.decide(&t)
                                }
                            }));
                            i += 1;
                        }
                        ms
                    })
                })
                .collect();
            let ms: Vec<f64> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect();
            println!(
                "{threads} thread(s), {label:<26} {:>6.1} decisions/s",
                ms.len() as f64 / seconds as f64
            );
            row("  latency", ms);
        }
    }
}
