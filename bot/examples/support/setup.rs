//! Shared by the examples (included with `#[path]`): the real model and the demo tenant.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use switchboard_bot::eval::EvalLine;
use switchboard_bot::Bot;
use switchboard_knowledge::{FaqRecord, KnowledgeIndex, Synonyms};
use switchboard_models::Encoder;

pub const DEMO: &str = "demo";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn read_lines(path: PathBuf) -> Vec<EvalLine> {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    switchboard_bot::eval::parse_eval_lines(&text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
}

pub fn demo_records() -> Vec<FaqRecord> {
    let text =
        std::fs::read_to_string(root().join("knowledge/demo/faqs.jsonl")).expect("demo faqs");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect()
}

pub fn demo_synonyms() -> Arc<Synonyms> {
    Arc::new(Synonyms::parse(
        &std::fs::read_to_string(root().join("knowledge/demo/synonyms.txt")).expect("synonyms"),
    ))
}

/// A bot over a fresh index in `dir` holding the demo tenant.
pub fn demo_bot(dir: &std::path::Path) -> Bot {
    let index = Arc::new(KnowledgeIndex::open(dir).expect("index"));
    let records = demo_records();
    index.rebuild(DEMO, &records, 1).expect("rebuild");
    let encoder =
        Arc::new(Encoder::load_default().expect("encoder (run scripts/setup-onnxruntime.sh)"));
    let bot = Bot::new(index, encoder).expect("bot");
    bot.index_faqs(DEMO, &records).expect("dense");
    bot
}
