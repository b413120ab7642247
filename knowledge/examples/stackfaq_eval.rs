//! Retrieval quality on StackFAQ (Karan & Šnajder, 2018): 125 FAQ threads indexed with their
//! question and answers, queried with each of the 1,249 user paraphrases (`rephr`).
//!
//! Paraphrases are split per thread, alternately, into a dev half (even positions) and a test half
//! (odd positions). The default weights were chosen with `--sweep`, which prints the grid on dev
//! only; the test half is reported, never tuned on.
//!
//! Run from the project root:
//! `cargo run --release -p switchboard-knowledge --example stackfaq_eval [-- --sweep] [path]`

use std::time::Instant;

use switchboard_knowledge::{FaqRecord, KnowledgeIndex, SearchTuning, Synonyms};

struct Query {
    text: String,
    expect: String,
    dev: bool,
}

fn load(path: &str) -> Result<(Vec<FaqRecord>, Vec<Query>), Box<dyn std::error::Error>> {
    let root: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let threads = root["root"]["qapair"]
        .as_array()
        .ok_or("no root.qapair array")?;
    let mut records = Vec::new();
    let mut queries = Vec::new();
    for (n, thread) in threads.iter().enumerate() {
        let id = format!("t{n}");
        let question = thread["question"].as_str().unwrap_or_default().to_string();
        let answers: Vec<&str> = thread["answer"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        // One thread has no answer: "-" keeps the record valid and adds no token.
        let answer = if answers.is_empty() {
            "-".to_string()
        } else {
            answers.join("\n\n")
        };
        let mut record = FaqRecord::new(question, answer);
        record.id = id.clone();
        records.push(record);
        let rephrasings = thread["rephr"].as_array().cloned().unwrap_or_default();
        let usable = rephrasings
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "*");
        for (position, text) in usable.enumerate() {
            queries.push(Query {
                text: text.to_string(),
                expect: id.clone(),
                dev: position % 2 == 0,
            });
        }
    }
    Ok((records, queries))
}

/// (P@1, MRR over the top 100, recall@5, number of queries)
fn score(
    index: &KnowledgeIndex,
    queries: &[&Query],
) -> Result<(f64, f64, f64, usize), Box<dyn std::error::Error>> {
    let (mut p1, mut rr, mut r5) = (0.0, 0.0, 0.0);
    for query in queries {
        let hits = index.search("stackfaq", &query.text, 100, &Synonyms::none())?;
        if let Some(rank) = hits.iter().position(|c| c.id == query.expect) {
            rr += 1.0 / (rank as f64 + 1.0);
            if rank == 0 {
                p1 += 1.0;
            }
            if rank < 5 {
                r5 += 1.0;
            }
        }
    }
    let n = queries.len().max(1) as f64;
    Ok((p1 / n, rr / n, r5 / n, queries.len()))
}

fn build(
    records: &[FaqRecord],
    tuning: SearchTuning,
) -> Result<(tempfile::TempDir, KnowledgeIndex), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let index = KnowledgeIndex::open(dir.path())?.with_tuning(tuning);
    index.rebuild("stackfaq", records, 1)?;
    Ok((dir, index))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sweep = args.iter().any(|a| a == "--sweep");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "../shared/eval/stackfaq.json".into());
    let (records, queries) = load(&path)?;
    let dev: Vec<&Query> = queries.iter().filter(|q| q.dev).collect();
    let test: Vec<&Query> = queries.iter().filter(|q| !q.dev).collect();
    let all: Vec<&Query> = queries.iter().collect();
    println!(
        "stackfaq: {} faqs, {} paraphrases (dev {}, test {})",
        records.len(),
        all.len(),
        dev.len(),
        test.len()
    );

    if sweep {
        println!("question alternates answer | dev P@1  dev MRR");
        for question_boost in [1.0, 1.5, 2.0, 3.0] {
            for answer_boost in [0.0, 0.5, 1.0, 1.5] {
                let tuning = SearchTuning {
                    question_boost,
                    alternates_boost: question_boost,
                    answer_boost,
                    ..SearchTuning::default()
                };
                let (_dir, index) = build(&records, tuning)?;
                let (p1, mrr, _, _) = score(&index, &dev)?;
                println!(
                    "{question_boost:8} {:10} {answer_boost:6} | {p1:.3}    {mrr:.3}",
                    tuning.alternates_boost
                );
            }
        }
        return Ok(());
    }

    let started = Instant::now();
    let (_dir, index) = build(&records, SearchTuning::default())?;
    let built = started.elapsed();
    let started = Instant::now();
    for (name, set) in [("dev", &dev), ("test", &test), ("all", &all)] {
        let (p1, mrr, r5, n) = score(&index, set)?;
        println!("{name:5} n={n:5}  P@1 {p1:.3}  MRR {mrr:.3}  recall@5 {r5:.3}");
    }
    println!(
        "index built in {built:.2?}; {} searches in {:.2?}",
        2 * all.len(),
        started.elapsed()
    );
    // The common-term gate applies only to large indexes; forced on here to see what it changes
    // (at 125 FAQs it classes far more terms as common than it would at 100,000).
    let forced = SearchTuning {
        common_min_docs: 0,
        ..SearchTuning::default()
    };
    let (_dir, index) = build(&records, forced)?;
    let (p1, mrr, r5, n) = score(&index, &all)?;
    println!(
        "all   n={n:5}  P@1 {p1:.3}  MRR {mrr:.3}  recall@5 {r5:.3}  (common-term gate forced on: terms in over {:.0}% of the faqs)",
        forced.common_fraction * 100.0
    );
    Ok(())
}
