//! Shared fixture: the real encoder, the built-in intent head and the demo knowledge base,
//! loaded once per test binary. Needs `scripts/setup-onnxruntime.sh` to have run.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use switchboard_bot::Bot;
use switchboard_knowledge::{FaqRecord, KnowledgeIndex, Synonyms};
use switchboard_models::{builtin, Encoder, IntentHead};

pub const TENANT: &str = "demo";

pub struct Fixture {
    pub encoder: Arc<Encoder>,
    pub head: Arc<IntentHead>,
    pub index: Arc<KnowledgeIndex>,
    pub records: Vec<FaqRecord>,
    pub synonyms: Arc<Synonyms>,
    pub bot: Arc<Bot>,
    _dir: tempfile::TempDir,
}

pub fn demo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../knowledge/demo")
}

pub fn demo_records() -> Vec<FaqRecord> {
    let text = std::fs::read_to_string(demo_dir().join("faqs.jsonl")).expect("demo faqs");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("faq record"))
        .collect()
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let encoder =
            Arc::new(Encoder::load_default().expect("encoder (run scripts/setup-onnxruntime.sh)"));
        let (head, _) = builtin::builtin_head(&encoder).expect("builtin head");
        let head = Arc::new(head);
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Arc::new(KnowledgeIndex::open(dir.path()).expect("index"));
        let records = demo_records();
        index.rebuild(TENANT, &records, 1).expect("rebuild");
        let synonyms = Arc::new(Synonyms::parse(
            &std::fs::read_to_string(demo_dir().join("synonyms.txt")).expect("synonyms"),
        ));
        let bot = Bot::with_default_head(index.clone(), encoder.clone(), head.clone());
        bot.index_faqs(TENANT, &records).expect("index faqs");
        Fixture {
            encoder,
            head,
            index,
            records,
            synonyms,
            bot: Arc::new(bot),
            _dir: dir,
        }
    })
}
