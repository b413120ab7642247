//! Chooses the self-calibration's options (`SelfCheckOptions::wrong_cost`, `negative_share`)
//! on `bot/eval/calibration.jsonl` (demo paraphrases and out-of-scope questions written for
//! fitting; disjoint from every test set).
//!
//! `cargo run --release -p switchboard-bot --example tune_selfcheck`
//!
//! For each option set a bot is built over the demo tenant (self-calibrated from its own
//! alternates with those options) and `calibration.jsonl` is evaluated: overall accuracy,
//! abstentions and wrong answers. The zh_eval acceptance set is not read here.
#[path = "support/setup.rs"]
mod setup;

use std::sync::Arc;

use switchboard_bot::eval::evaluate_with;
use switchboard_bot::{Bot, BotSettings, SelfCheckOptions};
use switchboard_knowledge::KnowledgeIndex;
use switchboard_models::{builtin, Encoder};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = Arc::new(KnowledgeIndex::open(dir.path()).expect("index"));
    let records = setup::demo_records();
    index.rebuild(setup::DEMO, &records, 1).expect("rebuild");
    let encoder = Arc::new(Encoder::load_default().expect("encoder"));
    let head = Arc::new(builtin::builtin_head(&encoder).expect("head").0);
    let lines = setup::read_lines(setup::root().join("bot/eval/calibration.jsonl"));
    let synonyms = setup::demo_synonyms();
    println!(
        "wrong_cost  negative_share  accuracy  abstained  wrong  (calibration.jsonl, {} lines)",
        lines.len()
    );
    for (wrong_cost, negative_share, alternate_weight) in [
        (1.5_f32, 0.5_f32, 1.0_f32),
        (1.5, 0.5, 0.5),
        (1.5, 0.5, 0.25),
        (1.0, 0.5, 0.5),
        (1.0, 0.25, 0.25),
        (2.0, 0.5, 0.25),
    ] {
        {
            let options = SelfCheckOptions {
                wrong_cost,
                negative_share,
                alternate_weight,
                ..SelfCheckOptions::default()
            };
            let bot = Bot::with_default_head(index.clone(), encoder.clone(), head.clone())
                .with_self_calibration(Some(options));
            bot.index_faqs(setup::DEMO, &records).expect("dense");
            let r = evaluate_with(
                &bot,
                setup::DEMO,
                &lines,
                Arc::new(BotSettings::default()),
                synonyms.clone(),
            );
            println!(
                "{wrong_cost:>10.1}  {negative_share:>14.2}  alt {alternate_weight:.2}  {:>7.1}%  {:>8.1}%  {:>4.1}%",
                r.accuracy * 100.0,
                r.abstain_rate * 100.0,
                r.wrong_answer_rate * 100.0
            );
        }
    }
}
