//! Ranking experiments: retrieval P@1 / R@5 of several scoring formulas on the demo FAQs,
//! computed from the public APIs of knowledge and models. The ranking's weights were chosen
//! with it on `bot/eval/calibration.jsonl` (the default file; written for fitting, disjoint
//! from the test sets), never on `zh_eval.jsonl`.
//!
//! `cargo run --release -p switchboard-bot --example explore_rank [-- <jsonl under the root>]`
#[path = "support/setup.rs"]
mod setup;

use std::collections::{HashMap, HashSet};

use switchboard_knowledge::{analyze, KnowledgeIndex};
use switchboard_models::{cosine, Encoder, TextKind};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = KnowledgeIndex::open(dir.path()).expect("index");
    let records = setup::demo_records();
    index.rebuild("demo", &records, 1).expect("rebuild");
    let enc = Encoder::load_default().expect("enc");
    let syn = setup::demo_synonyms();
    let lines: Vec<_> = setup::read_lines(
        setup::root().join(
            std::env::args()
                .nth(1)
                .unwrap_or("bot/eval/calibration.jsonl".into()),
        ),
    )
    .into_iter()
    .collect();
    let mut texts_v: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut ans_p: Vec<Vec<f32>> = Vec::new();
    let mut ans_q: Vec<Vec<f32>> = Vec::new();
    let mut toks: Vec<HashSet<String>> = Vec::new();
    for r in &records {
        let mut t: Vec<&str> = vec![r.question.as_str()];
        t.extend(r.alternates.iter().map(String::as_str));
        texts_v.push(enc.embed_kind_blocking(TextKind::Query, &t).expect("e"));
        ans_p.push(
            enc.embed_kind_blocking(TextKind::Passage, &[r.answer.as_str()])
                .expect("e")
                .remove(0),
        );
        let qa = format!("{} {}", r.question, r.answer);
        ans_q.push(
            enc.embed_kind_blocking(TextKind::Query, &[qa.as_str()])
                .expect("e")
                .remove(0),
        );
        toks.push(t.iter().flat_map(|x| analyze(x)).collect());
    }
    let pos: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let formulas = [
        "cos+0.03ov",
        "cos+0.1ansP",
        "cos+0.2ansP",
        "cos+0.3ansQ",
        "cos+0.03ov+bm25rr",
        "cos+0.2ansP+bm25rr",
        "cos+0.2ansP+0.03ov+bm25rr",
        "cos+0.3ansP+0.03ov+0.01rr",
        "mean2",
        "cos+0.03ov+0.05rr",
        "cos+0.1ansP+0.03ov+0.03rr",
        "cos+0.2ansQ+0.03ov+0.03rr",
        "cos+0.1ansQ+0.03ov+0.03rr",
    ];
    let mut stats = vec![(0usize, 0usize); formulas.len()];
    let mut n = 0;
    for l in &lines {
        let Some(&want) = pos.get(l.expect.as_str()) else {
            continue;
        };
        n += 1;
        let q = enc
            .embed_kind_blocking(TextKind::Query, &[l.q.as_str()])
            .expect("e")
            .remove(0);
        let qt: HashSet<String> = analyze(&l.q).into_iter().collect();
        let lex = index.search("demo", &l.q, 20, &syn).expect("s");
        let rank: HashMap<&str, usize> = lex
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        for (fi, f) in formulas.iter().enumerate() {
            let mut scores: Vec<(f32, usize)> = (0..records.len())
                .map(|i| {
                    let mut cs: Vec<f32> = texts_v[i].iter().map(|v| cosine(&q, v)).collect();
                    cs.sort_by(|a, b| b.total_cmp(a));
                    let c = cs[0];
                    let ov = if qt.is_empty() {
                        0.0
                    } else {
                        qt.iter().filter(|t| toks[i].contains(*t)).count() as f32 / qt.len() as f32
                    };
                    let ap = cosine(&q, &ans_p[i]);
                    let aq = cosine(&q, &ans_q[i]);
                    let rr = rank
                        .get(records[i].id.as_str())
                        .map_or(0.0, |r| 1.0 / (*r as f32 + 2.0));
                    let s = match *f {
                        "cos+0.03ov" => c + 0.03 * ov,
                        "cos+0.1ansP" => c + 0.1 * ap,
                        "cos+0.2ansP" => c + 0.2 * ap,
                        "cos+0.3ansQ" => c + 0.3 * aq,
                        "cos+0.03ov+bm25rr" => c + 0.03 * ov + 0.03 * rr,
                        "cos+0.2ansP+bm25rr" => c + 0.2 * ap + 0.03 * rr,
                        "cos+0.2ansP+0.03ov+bm25rr" => c + 0.2 * ap + 0.03 * ov + 0.03 * rr,
                        "cos+0.3ansP+0.03ov+0.01rr" => c + 0.3 * ap + 0.03 * ov + 0.01 * rr,
                        "mean2" => {
                            c + 0.5 * cs.get(1).copied().unwrap_or(c) * 0.0
                                + 0.03 * ov
                                + 0.2 * ap
                                + 0.02 * rr
                        }
                        "cos+0.03ov+0.05rr" => c + 0.03 * ov + 0.05 * rr,
                        "cos+0.1ansP+0.03ov+0.03rr" => c + 0.1 * ap + 0.03 * ov + 0.03 * rr,
                        "cos+0.2ansQ+0.03ov+0.03rr" => c + 0.2 * aq + 0.03 * ov + 0.03 * rr,
                        "cos+0.1ansQ+0.03ov+0.03rr" => c + 0.1 * aq + 0.03 * ov + 0.03 * rr,
                        _ => 0.0,
                    };
                    (s, i)
                })
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            if scores[0].1 == want {
                stats[fi].0 += 1;
            }
            if scores.iter().take(5).any(|s| s.1 == want) {
                stats[fi].1 += 1;
            }
        }
    }
    for (f, (p1, r5)) in formulas.iter().zip(&stats) {
        println!(
            "{f:<30} P@1 {:.3}  R@5 {:.3}",
            *p1 as f32 / n as f32,
            *r5 as f32 / n as f32
        );
    }
}
