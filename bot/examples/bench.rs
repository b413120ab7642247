//! The bot's figures for docs/bench-bot.md, with the real model in the loop:
//! 1. the Chinese set `bot/eval/zh_eval.jsonl` on the demo tenant (knowledge demo paraphrases,
//!    plus handoff and out-of-scope lines in Chinese and English), with a threshold sweep;
//! 2. StackFAQ (`../shared/eval/stackfaq.json`): its 125 FAQs indexed, every paraphrase
//!    queried expecting its thread, plus CLINC150 `oos_val` questions expecting `none`;
//! 3. bot turn latency (one thread, `decide` end to end: encoder, intent head, tantivy,
//!    dense scan, calibration), p50/p99.
//!
//! `cargo run --release -p switchboard-bot --example bench [-- --skip-stackfaq]`

#[path = "support/setup.rs"]
mod setup;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use switchboard_bot::eval::{evaluate_with, EvalLine};
use switchboard_bot::{BotSettings, Turn};
use switchboard_knowledge::{FaqRecord, Synonyms};

fn main() {
    let skip_stackfaq = std::env::args().any(|a| a == "--skip-stackfaq");
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let bot = setup::demo_bot(dir.path());
    println!(
        "bot ready (model load, built-in head, demo dense side) in {:.1} s",
        started.elapsed().as_secs_f32()
    );
    let synonyms = setup::demo_synonyms();

    // 1. Chinese set.
    let zh = setup::read_lines(setup::root().join("bot/eval/zh_eval.jsonl"));
    println!("\n== demo tenant, bot/eval/zh_eval.jsonl ==");
    let report = evaluate_with(
        &bot,
        setup::DEMO,
        &zh,
        Arc::new(BotSettings::default()),
        synonyms.clone(),
    );
    print!("{report}");
    sweep(&bot, setup::DEMO, &zh, &synonyms);

    // 2. StackFAQ.
    if !skip_stackfaq {
        let path = setup::root().join("../shared/eval/stackfaq.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (records, mut lines) = stackfaq(&text);
                let oos =
                    clinc_oos_val(&setup::root().join("../shared/eval/clinc150_data_full.json"));
                let started = Instant::now();
                bot.knowledge()
                    .rebuild("stackfaq", &records, 1)
                    .expect("rebuild");
                bot.index_faqs("stackfaq", &records).expect("dense");
                println!(
                    "\n== StackFAQ: {} faqs, {} paraphrases (+{} CLINC150 oos_val as none); indexed in {:.1} s ==",
                    records.len(),
                    lines.len(),
                    oos.len(),
                    started.elapsed().as_secs_f32()
                );
                let none = Arc::new(Synonyms::none());
                let report = evaluate_with(
                    &bot,
                    "stackfaq",
                    &lines,
                    Arc::new(BotSettings::default()),
                    none.clone(),
                );
                println!("-- paraphrases only --");
                print!("{report}");
                sweep(&bot, "stackfaq", &lines, &none);
                lines.extend(oos);
                println!("-- paraphrases + out-of-scope --");
                let report = evaluate_with(
                    &bot,
                    "stackfaq",
                    &lines,
                    Arc::new(BotSettings::default()),
                    none.clone(),
                );
                print!("{report}");
            }
            Err(e) => println!("\nstackfaq skipped: {}: {e}", path.display()),
        }
    }

    // 3. Latency.
    let texts: Vec<&str> = zh.iter().map(|l| l.q.as_str()).collect();
    let settings = Arc::new(BotSettings::default());
    for t in texts.iter().take(20) {
        bot.decide(
            &Turn::new(setup::DEMO, *t)
                .with_settings(settings.clone())
                .with_synonyms(synonyms.clone()),
        );
    }
    let mut ms: Vec<f64> = Vec::new();
    for round in 0..4 {
        for t in &texts {
            // A distinct text per round defeats nothing (there is no cache in decide), but keeps
            // the run honest if one is added later.
            let text = if round == 0 {
                (*t).to_string()
            } else {
                format!("{t}{}", "？".repeat(round))
            };
            let turn = Turn::new(setup::DEMO, text)
                .with_settings(settings.clone())
                .with_synonyms(synonyms.clone());
            let start = Instant::now();
            let d = bot.decide(&turn);
            ms.push(start.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(d);
        }
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "\n== latency: {} turns, one thread, decide() end to end ==\np50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        ms[ms.len() - 1]
    );
    let encoder = bot.encoder().clone();
    let mut enc: Vec<f64> = Vec::new();
    for t in &texts {
        let start = Instant::now();
        let _ = encoder.embed_blocking(&[t]);
        enc.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    enc.sort_by(f64::total_cmp);
    println!("encoder alone: p50 {:.1} ms", enc[enc.len() / 2]);
}

/// Answer rate and wrong answers at several answer thresholds.
fn sweep(bot: &switchboard_bot::Bot, tenant: &str, lines: &[EvalLine], synonyms: &Arc<Synonyms>) {
    println!(
        "answer_threshold  answered  P@1-of-answers  wrong-answers/lines  faq-abstain  accuracy"
    );
    for t in [0.3_f32, 0.4, 0.5, 0.6, 0.7, 0.8] {
        let settings = Arc::new(BotSettings {
            answer_threshold: t,
            ..BotSettings::default()
        });
        let r = evaluate_with(bot, tenant, lines, settings, synonyms.clone());
        println!(
            "{t:>16.1}  {:>8}  {:>13.1}%  {:>18.1}%  {:>10.1}%  {:>7.1}%",
            r.answered,
            r.answer_precision * 100.0,
            r.wrong_answer_rate * 100.0,
            r.faq_abstain_rate * 100.0,
            r.accuracy * 100.0
        );
    }
}

fn stackfaq(text: &str) -> (Vec<FaqRecord>, Vec<EvalLine>) {
    let json: Value = serde_json::from_str(text).expect("stackfaq json");
    let threads = json["root"]["qapair"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for (i, thread) in threads.iter().enumerate() {
        let id = format!("sf-{i:03}");
        let question = thread["question"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let answer: String = thread["answer"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(5_000)
            .collect();
        if question.is_empty() || answer.trim().is_empty() {
            continue;
        }
        let mut record = FaqRecord::new(question, answer);
        record.id = id.clone();
        records.push(record);
        for r in thread["rephr"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let r = r.trim();
            if !r.is_empty() && r != "*" {
                lines.push(EvalLine {
                    q: r.to_string(),
                    expect: id.clone(),
                });
            }
        }
    }
    (records, lines)
}

fn clinc_oos_val(path: &std::path::Path) -> Vec<EvalLine> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    json["oos_val"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| pair.get(0).and_then(Value::as_str))
        .map(|q| EvalLine {
            q: q.to_string(),
            expect: "none".into(),
        })
        .collect()
}
