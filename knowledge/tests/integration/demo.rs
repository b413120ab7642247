//! Quality on the bundled demo shop: Chinese paraphrases written for this test, never seen by
//! the index (they are not the FAQs' questions nor alternates).

use switchboard_knowledge::{parse_import, ImportFormat, KnowledgeIndex, SearchTuning, Synonyms};

#[derive(serde::Deserialize)]
struct Paraphrase {
    q: String,
    expect: String,
}

fn precision_at_1(synonyms: &Synonyms, tuning: SearchTuning) -> (usize, usize, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = KnowledgeIndex::open(dir.path())
        .expect("open")
        .with_tuning(tuning);
    let parsed = parse_import(
        include_bytes!("../../demo/faqs.jsonl"),
        Some(ImportFormat::Jsonl),
    )
    .expect("demo kb");
    let records: Vec<_> = parsed.records.into_iter().map(|r| r.record).collect();
    index.rebuild("demo", &records, 1).expect("rebuild");
    let mut hits = 0;
    let mut misses = Vec::new();
    let text = include_str!("../../demo/paraphrases_zh.jsonl");
    let paraphrases: Vec<Paraphrase> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("paraphrase"))
        .collect();
    for p in &paraphrases {
        assert!(
            records.iter().any(|r| r.id == p.expect),
            "unknown id {}",
            p.expect
        );
        let top = index.search("demo", &p.q, 1, synonyms).expect("search");
        match top.first() {
            Some(c) if c.id == p.expect => hits += 1,
            other => misses.push(format!(
                "{} -> {:?} (want {})",
                p.q,
                other.map(|c| &c.id),
                p.expect
            )),
        }
    }
    (hits, paraphrases.len(), misses)
}

#[test]
fn demo_paraphrases_precision_at_1() {
    let defaults = SearchTuning::default();
    let words_only = SearchTuning {
        cjk_bigram_boost: 0.0,
        ..defaults
    };
    let synonyms = Synonyms::parse(include_str!("../../demo/synonyms.txt"));
    let (plain_hits, total, _) = precision_at_1(&Synonyms::none(), defaults);
    let (words_hits, _, _) = precision_at_1(&synonyms, words_only);
    let (hits, _, misses) = precision_at_1(&synonyms, defaults);
    assert!(total >= 100, "only {total} paraphrases");
    let p1 = hits as f64 / total as f64;
    let rate = |n: usize| n as f64 / total as f64;
    println!(
        "demo zh paraphrases: P@1 {p1:.3} ({hits}/{total}); without synonyms {:.3}; without cjk bigrams {:.3}",
        rate(plain_hits),
        rate(words_hits)
    );
    for miss in &misses {
        println!("  miss: {miss}");
    }
    assert!(p1 >= 0.62, "P@1 {p1:.3} under the 0.62 floor");
}
