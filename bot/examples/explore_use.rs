//! Does Universal Sentence Encoder multilingual v3 help the bot as a second opinion? Measured
//! next to the shipped e5-small decision, without changing the bot:
//! (a) as an out-of-scope gate: CLINC150, nearest-neighbour cosine to 20 `train` examples per
//!     intent, e5 vs USE vs both; the threshold (and the two-feature logistic gate) is chosen
//!     on `val` + `oos_val` and reported on `test` + `oos_test`;
//! (b) as a ranking signal: `fused + w · USE cosine`, w chosen by top-1 on
//!     `bot/eval/calibration.jsonl` (the tuning set), then reported on the Chinese set and the
//!     StackFAQ test half (B: train-half paraphrases as alternates, as `bench` does);
//! (c) as calibration features: USE cosine of the top candidate and its USE margin, in a
//!     logistic calibration fitted on `calibration.jsonl` only (as `calibrate` fits
//!     `Calibration::default`), reported on the same sets as overall / abstained / wrong;
//! and the added cost per turn (one USE pass plus one dot product per FAQ text).
//!
//! The decision is replayed from `Bot::explain`: a confident top candidate is answered, else
//! the bot's own non-confident path (`explain` with `answer_threshold` 2, never confident)
//! decides handoff / social reply, and clarify / out of scope are recomputed with the new
//! confidences. With w = 0 the replay of a calibration reproduces `bench` with it (the shipped
//! `Calibration::default` now has the USE features, fitted as "refit + USE cosine + USE
//! margin" here; "before" is the first round's default, `without_second_encoder`).
//!
//! `USE_MODEL_DIR=<folder with use.int8.onnx and use.tokenizer.json>` (default: the model
//! folder); `cargo run --release -p switchboard-bot --example explore_use [-- --skip-clinc]`

#[path = "support/setup.rs"]
mod setup;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use switchboard_bot::eval::EvalLine;
use switchboard_bot::{Bot, BotSettings, Calibration, DecisionKind, SecondOpinion, Turn};
use switchboard_knowledge::{FaqRecord, Synonyms};
use switchboard_models::{cosine, default_model_dir, Encoder, TextKind, UseEncoder};

/// Features: cosine, margin, overlap, lexical_top, answer_cosine, fused_margin (as the bot),
/// then USE cosine and USE margin.
const NF: usize = 8;

#[derive(Clone)]
struct Cand {
    id: String,
    cosine: f32,
    answer_cosine: f32,
    overlap: f32,
    lexical_top: bool,
    fused: f32,
    use_cos: f32,
}

#[derive(Clone)]
enum Fallback {
    /// What the bot does when not confident, decided by rules or intents: a label.
    Fixed(String),
    /// Clarify or out of scope, recomputed from the confidences.
    Unsure,
}

struct Row {
    expect: String,
    /// The bot's own decision label (the baseline).
    bot_label: String,
    /// A rule before retrieval decided (no candidates).
    early: Option<String>,
    fallback: Fallback,
    cands: Vec<Cand>,
}

fn label_of(kind: DecisionKind, faq: &Option<String>) -> String {
    match (kind, faq) {
        (DecisionKind::Answer, Some(id)) => id.clone(),
        (DecisionKind::Answer, None) | (DecisionKind::OutOfScope, _) => "none".into(),
        (DecisionKind::Handoff, _) => "handoff".into(),
        (DecisionKind::Clarify, _) => "clarify".into(),
    }
}

/// USE vectors of every FAQ text (question and alternates), by FAQ id.
fn use_side(usee: &UseEncoder, records: &[FaqRecord]) -> HashMap<String, Vec<Vec<f32>>> {
    records
        .iter()
        .filter(|r| r.enabled)
        .map(|r| {
            let texts: Vec<&str> = std::iter::once(r.question.as_str())
                .chain(r.alternates.iter().map(String::as_str))
                .filter(|t| !t.trim().is_empty())
                .collect();
            (r.id.clone(), usee.embed_blocking(&texts).expect("use"))
        })
        .collect()
}

fn rows(
    bot: &Bot,
    usee: &UseEncoder,
    side: &HashMap<String, Vec<Vec<f32>>>,
    tenant: &str,
    lines: &[EvalLine],
    synonyms: &Arc<Synonyms>,
) -> Vec<Row> {
    let settings = Arc::new(BotSettings::default());
    let never = Arc::new(BotSettings {
        answer_threshold: 2.0,
        ..BotSettings::default()
    });
    lines
        .iter()
        .map(|line| {
            let turn = Turn::new(tenant, line.q.clone()).with_synonyms(synonyms.clone());
            let e = bot.explain_with_opinion(
                &turn.clone().with_settings(settings.clone()),
                SecondOpinion::Always,
            );
            let bot_label = label_of(e.decision.kind, &e.decision.faq_id);
            if e.candidates.is_empty() {
                return Row {
                    expect: line.expect.clone(),
                    early: Some(bot_label.clone()),
                    bot_label,
                    fallback: Fallback::Unsure,
                    cands: Vec::new(),
                };
            }
            let f =
                bot.explain_with_opinion(&turn.with_settings(never.clone()), SecondOpinion::Always);
            let fallback = match f.decision.kind {
                DecisionKind::Clarify | DecisionKind::OutOfScope => Fallback::Unsure,
                k => Fallback::Fixed(label_of(k, &f.decision.faq_id)),
            };
            let q = usee.embed_one(&line.q).expect("use");
            let cands = e
                .candidates
                .iter()
                .map(|c| Cand {
                    id: c.id.clone(),
                    cosine: c.cosine,
                    answer_cosine: c.answer_cosine,
                    overlap: c.overlap,
                    lexical_top: c.lexical_rank == Some(0),
                    fused: c.fused,
                    use_cos: side
                        .get(&c.id)
                        .map(|vs| vs.iter().map(|v| cosine(&q, v)).fold(f32::MIN, f32::max))
                        .unwrap_or(0.0),
                })
                .collect();
            Row {
                expect: line.expect.clone(),
                bot_label,
                early: None,
                fallback,
                cands,
            }
        })
        .collect()
}

/// The candidates re-ranked by `fused + w · use_cos`, each with its 8 features.
fn ranked(row: &Row, w: f32) -> Vec<(&Cand, [f32; NF])> {
    let mut list: Vec<(&Cand, f32)> = row
        .cands
        .iter()
        .map(|c| (c, c.fused + w * c.use_cos))
        .collect();
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
    let best_other = |i: usize, f: &dyn Fn(&(&Cand, f32)) -> f32| {
        list.iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, x)| f(x))
            .fold(f32::MIN, f32::max)
    };
    let margin = |own: f32, other: f32| {
        if other == f32::MIN {
            0.1
        } else {
            (own - other).clamp(-0.2, 0.2)
        }
    };
    (0..list.len())
        .map(|i| {
            let (c, s) = list[i];
            let feats = [
                c.cosine,
                margin(c.cosine, best_other(i, &|x| x.0.cosine)),
                c.overlap,
                if c.lexical_top { 1.0 } else { 0.0 },
                c.answer_cosine,
                margin(s, best_other(i, &|x| x.1)),
                c.use_cos,
                margin(c.use_cos, best_other(i, &|x| x.0.use_cos)),
            ];
            (c, feats)
        })
        .collect()
}

#[derive(Clone, Debug)]
struct Model {
    bias: f32,
    w: [f32; NF],
}

impl Model {
    fn from(c: &Calibration) -> Model {
        Model {
            bias: c.bias,
            w: [
                c.cosine,
                c.margin,
                c.overlap,
                c.lexical_top,
                c.answer_cosine,
                c.fused_margin,
                c.use_cosine,
                c.use_margin,
            ],
        }
    }
    fn p(&self, x: &[f32; NF]) -> f32 {
        let z = self.bias + (0..NF).map(|j| self.w[j] * x[j]).sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }
}

/// Logistic fit as `Calibration::fit` does it (standardized features, full-batch gradient
/// descent, L2 0.01, 3,000 steps), over the features in `use_features` only.
fn fit(samples: &[([f32; NF], bool)], use_features: &[usize]) -> Model {
    let n = samples.len() as f32;
    let mut mean = [0.0_f32; NF];
    let mut scale = [1.0_f32; NF];
    for &j in use_features {
        mean[j] = samples.iter().map(|s| s.0[j]).sum::<f32>() / n;
        let var = samples
            .iter()
            .map(|s| (s.0[j] - mean[j]).powi(2))
            .sum::<f32>()
            / n;
        scale[j] = var.sqrt().max(1e-4);
    }
    let zs: Vec<[f32; NF]> = samples
        .iter()
        .map(|s| {
            std::array::from_fn(|j| {
                if use_features.contains(&j) {
                    (s.0[j] - mean[j]) / scale[j]
                } else {
                    0.0
                }
            })
        })
        .collect();
    let (mut w, mut b) = ([0.0_f32; NF], 0.0_f32);
    for _ in 0..3_000 {
        let mut gw = [0.0_f32; NF];
        let mut gb = 0.0;
        for (z, s) in zs.iter().zip(samples) {
            let p = 1.0 / (1.0 + (-(b + (0..NF).map(|j| w[j] * z[j]).sum::<f32>())).exp());
            let err = (p - if s.1 { 1.0 } else { 0.0 }) / n;
            gb += err;
            for j in 0..NF {
                gw[j] += err * z[j];
            }
        }
        b -= 0.5 * gb;
        for j in 0..NF {
            w[j] -= 0.5 * (gw[j] + 0.01 * w[j]);
        }
    }
    let raw: [f32; NF] = std::array::from_fn(|j| w[j] / scale[j]);
    Model {
        bias: b - (0..NF).map(|j| raw[j] * mean[j]).sum::<f32>(),
        w: raw,
    }
}

/// Calibration samples under ranking weight `w`: the top candidate's features and whether it
/// is the expected FAQ (lines expecting an FAQ or `none`; handoff lines skipped).
fn samples(rows: &[Row], w: f32) -> Vec<([f32; NF], bool)> {
    rows.iter()
        .filter(|r| r.expect != "handoff" && !r.cands.is_empty())
        .map(|r| {
            let list = ranked(r, w);
            (list[0].1, list[0].0.id == r.expect)
        })
        .collect()
}

#[derive(Default, Debug)]
struct Outcome {
    total: usize,
    right: usize,
    wrong: usize,
    faq_lines: usize,
    top1: usize,
    clarified: usize,
    clarify_held: usize,
}

impl Outcome {
    fn line(&self, name: &str) -> String {
        let pct = |a: usize, b: usize| 100.0 * a as f32 / b.max(1) as f32;
        format!(
            "{name:<44} overall {:>5.1}%  abstained {:>5.1}%  wrong {:>4.1}%  | top-1 {:>5.1}%  clarify held the right FAQ {} of {}",
            pct(self.right, self.total),
            pct(self.total - self.right - self.wrong, self.total),
            pct(self.wrong, self.total),
            pct(self.top1, self.faq_lines),
            self.clarify_held,
            self.clarified
        )
    }
}

fn replay(rows: &[Row], w: f32, model: &Model, threshold: f32) -> Outcome {
    let s = BotSettings::default();
    let mut o = Outcome::default();
    for r in rows {
        o.total += 1;
        let is_faq = r.expect != "handoff" && r.expect != "none";
        if is_faq {
            o.faq_lines += 1;
        }
        let (label, held) = if let Some(l) = &r.early {
            (l.clone(), false)
        } else {
            let list = ranked(r, w);
            if is_faq {
                if list[0].0.id == r.expect {
                    o.top1 += 1;
                }
            }
            let ps: Vec<f32> = list.iter().map(|(_, f)| model.p(f)).collect();
            if ps[0] >= threshold {
                (list[0].0.id.clone(), false)
            } else {
                match &r.fallback {
                    Fallback::Fixed(l) => (l.clone(), false),
                    Fallback::Unsure => {
                        let sugg: Vec<&str> = list
                            .iter()
                            .zip(&ps)
                            .filter(|(_, p)| **p >= s.suggestion_threshold)
                            .take(3)
                            .map(|((c, _), _)| c.id.as_str())
                            .collect();
                        if ps[0] >= s.clarify_threshold && !sugg.is_empty() {
                            ("clarify".to_string(), sugg.contains(&r.expect.as_str()))
                        } else {
                            ("none".to_string(), false)
                        }
                    }
                }
            }
        };
        if label == "clarify" && is_faq {
            o.clarified += 1;
            if held {
                o.clarify_held += 1;
            }
        }
        if label == r.expect {
            o.right += 1;
        } else if label != "none" && label != "handoff" && label != "clarify" {
            o.wrong += 1;
        }
    }
    o
}

fn bot_outcome(rows: &[Row]) -> Outcome {
    let mut o = Outcome::default();
    for r in rows {
        o.total += 1;
        if r.bot_label == r.expect {
            o.right += 1;
        } else if !["none", "handoff", "clarify"].contains(&r.bot_label.as_str()) {
            o.wrong += 1;
        }
    }
    o
}

fn main() {
    let skip_clinc = std::env::args().any(|a| a == "--skip-clinc");
    let use_dir = std::env::var_os("USE_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(default_model_dir);
    let usee = UseEncoder::load(&use_dir).expect("USE files (models/export/export_use.sh)");
    let dir = tempfile::tempdir().expect("tempdir");
    let bot = setup::demo_bot(dir.path());
    let demo = setup::demo_records();
    let syn = setup::demo_synonyms();
    let none = Arc::new(Synonyms::none());

    let t = Instant::now();
    let demo_side = use_side(&usee, &demo);
    let n_texts: usize = demo_side.values().map(Vec::len).sum();
    println!(
        "USE side of the demo tenant: {n_texts} texts in {} ms",
        t.elapsed().as_millis()
    );
    let cal_lines = setup::read_lines(setup::root().join("bot/eval/calibration.jsonl"));
    let zh_lines = setup::read_lines(setup::root().join("bot/eval/zh_eval.jsonl"));
    let cal = rows(&bot, &usee, &demo_side, setup::DEMO, &cal_lines, &syn);
    let zh = rows(&bot, &usee, &demo_side, setup::DEMO, &zh_lines, &syn);

    // StackFAQ B, as bench sets it up.
    let mut sets: Vec<(&str, Vec<Row>)> = vec![("zh_eval", zh)];
    if let Ok(text) = std::fs::read_to_string(setup::root().join("../shared/eval/stackfaq.json")) {
        let (records, lines) = stackfaq(&text);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, l) in lines.into_iter().enumerate() {
            if i % 2 == 0 {
                train.push(l)
            } else {
                test.push(l)
            }
        }
        let mut with_alt = records.clone();
        for r in &mut with_alt {
            r.alternates = train
                .iter()
                .filter(|l| l.expect == r.id)
                .map(|l| l.q.clone())
                .take(50)
                .collect();
        }
        bot.knowledge()
            .rebuild("stackfaq-b", &with_alt, 1)
            .expect("rebuild");
        bot.index_faqs("stackfaq-b", &with_alt).expect("dense");
        let side = use_side(&usee, &with_alt);
        let test_rows = rows(&bot, &usee, &side, "stackfaq-b", &test, &none);
        let oos = clinc_split(
            &setup::root().join("../shared/eval/clinc150_data_full.json"),
            "oos_val",
        );
        let oos_lines: Vec<EvalLine> = oos
            .into_iter()
            .map(|(q, _)| EvalLine {
                q,
                expect: "none".into(),
            })
            .collect();
        let oos_rows = rows(&bot, &usee, &side, "stackfaq-b", &oos_lines, &none);
        sets.push(("stackfaq B test", test_rows));
        let mut both = rows(&bot, &usee, &side, "stackfaq-b", &test, &none);
        both.extend(oos_rows);
        sets.push(("stackfaq B test + oos_val", both));
    }

    // (b) ranking weight, chosen on calibration.jsonl.
    println!("\n== (b) ranking: fused + w * USE cosine; top-1 over FAQ lines ==");
    let mut best_w = (0.0_f32, 0usize);
    for w in [0.0_f32, 0.05, 0.1, 0.2, 0.3, 0.5] {
        let top = |rs: &[Row]| {
            let faq: Vec<&Row> = rs
                .iter()
                .filter(|r| r.expect != "none" && r.expect != "handoff" && !r.cands.is_empty())
                .collect();
            let hit = faq
                .iter()
                .filter(|r| ranked(r, w)[0].0.id == r.expect)
                .count();
            (hit, faq.len())
        };
        let (h, n) = top(&cal);
        if h > best_w.1 {
            best_w = (w, h);
        }
        let mut line = format!("w {w:<4}  calibration.jsonl {h}/{n}");
        for (name, rs) in &sets {
            let (h, n) = top(rs);
            line.push_str(&format!(
                "  {name} {:.1}%",
                100.0 * h as f32 / n.max(1) as f32
            ));
        }
        println!("{line}");
    }
    let w = best_w.0;
    println!("chosen on calibration.jsonl: w = {w}");

    // (c) calibrations fitted on calibration.jsonl only.
    let base6 = [0, 1, 2, 3, 4, 5];
    // Stacked: the old default's logit as one feature, plus the two USE features; folded
    // back into one linear model (the old calibration is linear in the features).
    let old = Model::from(&Calibration::without_second_encoder());
    let stack = |x: &[f32; NF]| {
        let mut f = [0.0; NF];
        f[0] = old.bias + (0..6).map(|j| old.w[j] * x[j]).sum::<f32>();
        f[6] = x[6];
        f[7] = x[7];
        f
    };
    let stacked_samples: Vec<([f32; NF], bool)> = samples(&cal, 0.0)
        .into_iter()
        .map(|(x, y)| (stack(&x), y))
        .collect();
    let st = fit(&stacked_samples, &[0, 6, 7]);
    let stacked = Model {
        bias: st.bias + st.w[0] * old.bias,
        w: std::array::from_fn(|j| if j < 6 { st.w[0] * old.w[j] } else { st.w[j] }),
    };
    let use8 = [0, 1, 2, 3, 4, 5, 6, 7];
    let variants: Vec<(String, f32, Model)> = vec![
        (
            "before (without_second_encoder, replayed)".into(),
            0.0,
            Model::from(&Calibration::without_second_encoder()),
        ),
        (
            "Calibration::default (shipped), replayed".into(),
            0.0,
            Model::from(&Calibration::default()),
        ),
        (
            "refit, e5 features only".into(),
            0.0,
            fit(&samples(&cal, 0.0), &base6),
        ),
        (
            "refit, + USE cosine + USE margin".into(),
            0.0,
            fit(&samples(&cal, 0.0), &use8),
        ),
        (
            "refit, + USE cosine only".into(),
            0.0,
            fit(&samples(&cal, 0.0), &[0, 1, 2, 3, 4, 5, 6]),
        ),
        ("old default + USE, stacked".into(), 0.0, stacked.clone()),
        (
            format!("w {w} ranking, refit + USE features"),
            w,
            fit(&samples(&cal, w), &use8),
        ),
    ];
    println!("\n== (c) calibrations (fitted on calibration.jsonl), threshold 0.5 ==");
    for (name, _, m) in &variants {
        println!("{name}: bias {:.3} w {:?}", m.bias, m.w);
    }
    let mut all_sets: Vec<(&str, &Vec<Row>)> = vec![("calibration.jsonl (fit)", &cal)];
    all_sets.extend(sets.iter().map(|(n, r)| (*n, r)));
    for (set, rs) in &all_sets {
        println!("-- {set} ({} lines) --", rs.len());
        println!("{}", bot_outcome(rs).line("the bot's own decisions"));
        for (name, vw, m) in &variants {
            println!("{}", replay(rs, *vw, m, 0.5).line(name));
        }
        for k in [2, 3, 5] {
            for t in [0.3, 0.4, 0.6, 0.7] {
                let (name, vw, m) = &variants[k];
                println!("{}", replay(rs, *vw, m, t).line(&format!("{name} @{t}")));
            }
        }
    }

    // The vague questions of the bot's unit tests (clarify expected): confidence of the top.
    let vague: Vec<EvalLine> = ["关于配送的问题", "question about my order", "my order"]
        .iter()
        .map(|q| EvalLine {
            q: q.to_string(),
            expect: "none".into(),
        })
        .collect();
    let vague_rows = rows(&bot, &usee, &demo_side, setup::DEMO, &vague, &syn);
    for (name, vw, m) in &variants {
        let ps: Vec<String> = vague_rows
            .iter()
            .map(|r| {
                let list = ranked(r, *vw);
                format!("{} {:.2}", list[0].0.id, m.p(&list[0].1))
            })
            .collect();
        println!("vague, {name}: {ps:?}");
    }

    // Cost per turn.
    let mut ms: Vec<f64> = Vec::new();
    for l in zh_lines.iter().chain(&cal_lines) {
        let s = Instant::now();
        let q = usee.embed_one(&l.q).expect("use");
        let best = demo_side
            .values()
            .map(|vs| vs.iter().map(|v| cosine(&q, v)).fold(f32::MIN, f32::max))
            .fold(f32::MIN, f32::max);
        std::hint::black_box(best);
        ms.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "\n== USE cost per turn (one pass + a dot product per demo FAQ text), {} turns: p50 {:.2} ms p99 {:.2} ms ==",
        ms.len(),
        pct(0.5),
        pct(0.99)
    );
    // decide() with and without the second encoder, interleaved turn by turn (the order
    // alternating) so that the machine's load drifts over both alike.
    let settings = Arc::new(BotSettings::default());
    let plain = Bot::new(bot.knowledge().clone(), bot.encoder().clone())
        .expect("bot")
        .with_second_encoder(None);
    plain.index_faqs(setup::DEMO, &demo).expect("dense");
    let (mut with, mut without): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let texts: Vec<&EvalLine> = zh_lines.iter().chain(&cal_lines).collect();
    for round in 0..3 {
        for (i, l) in texts.iter().enumerate() {
            let turn = Turn::new(setup::DEMO, l.q.clone())
                .with_settings(settings.clone())
                .with_synonyms(syn.clone());
            let time = |b: &Bot, into: &mut Vec<f64>| {
                let s = Instant::now();
                std::hint::black_box(b.decide(&turn));
                into.push(s.elapsed().as_secs_f64() * 1000.0);
            };
            if (i + round) % 2 == 0 {
                time(&bot, &mut with);
                time(&plain, &mut without);
            } else {
                time(&plain, &mut without);
                time(&bot, &mut with);
            }
        }
    }
    for (name, mut v) in [("with USE", with), ("without USE", without)] {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "decide() {name:<12} {} turns interleaved: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms",
            v.len(),
            q(0.5),
            q(0.9),
            q(0.99)
        );
    }

    if !skip_clinc {
        clinc_gate(bot.encoder(), &usee);
    }
}

/// (a) CLINC150 gate: nearest-neighbour cosine to 20 train examples per intent.
fn clinc_gate(e5: &Encoder, usee: &UseEncoder) {
    let path = setup::root().join("../shared/eval/clinc150_data_full.json");
    let train = clinc_split(&path, "train");
    if train.is_empty() {
        println!("clinc150 not found, gate skipped");
        return;
    }
    let mut per: HashMap<String, usize> = HashMap::new();
    let examples: Vec<(String, String)> = train
        .into_iter()
        .filter(|(_, l)| {
            let n = per.entry(l.clone()).or_default();
            *n += 1;
            *n <= 20
        })
        .collect();
    let t = Instant::now();
    let texts: Vec<&str> = examples.iter().map(|(q, _)| q.as_str()).collect();
    let ex_e5 = e5.embed_kind_blocking(TextKind::Query, &texts).expect("e5");
    let ex_use = usee.embed_blocking(&texts).expect("use");
    println!(
        "\n== (a) CLINC150 gate: {} train examples (20 per intent) embedded in {:.1} s ==",
        texts.len(),
        t.elapsed().as_secs_f32()
    );
    // (max e5 cosine, max USE cosine, e5 nearest label right, USE nearest right, both right)
    let score = |items: &[(String, String)]| -> Vec<[f32; 5]> {
        let texts: Vec<&str> = items.iter().map(|(q, _)| q.as_str()).collect();
        let ve = e5.embed_kind_blocking(TextKind::Query, &texts).expect("e5");
        let vu = usee.embed_blocking(&texts).expect("use");
        items
            .iter()
            .zip(ve.iter().zip(&vu))
            .map(|((_, label), (e, u))| {
                let (mut be, mut bu, mut bs) = ((f32::MIN, 0), (f32::MIN, 0), (f32::MIN, 0));
                for (k, (xe, xu)) in ex_e5.iter().zip(&ex_use).enumerate() {
                    let (ce, cu) = (cosine(e, xe), cosine(u, xu));
                    if ce > be.0 {
                        be = (ce, k);
                    }
                    if cu > bu.0 {
                        bu = (cu, k);
                    }
                    if ce + cu > bs.0 {
                        bs = (ce + cu, k);
                    }
                }
                let ok = |k: usize| f32::from(u8::from(&examples[k].1 == label));
                [be.0, bu.0, ok(be.1), ok(bu.1), ok(bs.1)]
            })
            .collect()
    };
    let every = |v: Vec<(String, String)>, n: usize| -> Vec<(String, String)> {
        v.into_iter().step_by(n).collect()
    };
    let val_in = score(&every(clinc_split(&path, "val"), 3));
    let val_oos = score(&clinc_split(&path, "oos_val"));
    let test_in = score(&every(clinc_split(&path, "test"), 4));
    let test_oos = score(&clinc_split(&path, "oos_test"));
    println!(
        "val: {} in-scope (every 3rd), {} oos; test: {} in-scope (every 4th), {} oos",
        val_in.len(),
        val_oos.len(),
        test_in.len(),
        test_oos.len()
    );
    let acc =
        |v: &[[f32; 5]], k: usize| 100.0 * v.iter().map(|x| x[k]).sum::<f32>() / v.len() as f32;
    println!(
        "in-scope nearest-neighbour accuracy (test): e5 {:.1}%  USE {:.1}%  e5+USE {:.1}%",
        acc(&test_in, 2),
        acc(&test_in, 3),
        acc(&test_in, 4)
    );
    // Gate scores: e5, USE, and a logistic combination fitted on val.
    let pairs: Vec<([f32; NF], bool)> = val_in
        .iter()
        .map(|x| (x, true))
        .chain(val_oos.iter().map(|x| (x, false)))
        .map(|(x, inscope)| {
            let mut f = [0.0; NF];
            f[0] = x[0];
            f[6] = x[1];
            (f, inscope)
        })
        .collect();
    let combo = fit(&pairs, &[0, 6]);
    let gates: Vec<(&str, Box<dyn Fn(&[f32; 5]) -> f32>)> = vec![
        ("e5 max cosine", Box::new(|x| x[0])),
        ("USE max cosine", Box::new(|x| x[1])),
        (
            "logistic(e5, USE), fitted on val",
            Box::new(move |x| {
                let mut f = [0.0; NF];
                f[0] = x[0];
                f[6] = x[1];
                combo.p(&f)
            }),
        ),
    ];
    for (name, g) in &gates {
        let auc = |inn: &[[f32; 5]], oos: &[[f32; 5]]| {
            let si: Vec<f32> = inn.iter().map(|x| g(x)).collect();
            let so: Vec<f32> = oos.iter().map(|x| g(x)).collect();
            let mut win = 0.0;
            for a in &si {
                for b in &so {
                    win += if a > b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            win / (si.len() * so.len()) as f32
        };
        // Threshold keeping 95% of val in-scope lines.
        let mut si: Vec<f32> = val_in.iter().map(|x| g(x)).collect();
        si.sort_by(f32::total_cmp);
        let thr = si[(si.len() as f32 * 0.05) as usize];
        let kept = |v: &[[f32; 5]]| {
            100.0 * v.iter().filter(|x| g(x) >= thr).count() as f32 / v.len() as f32
        };
        println!(
            "{name:<36} AUROC val {:.3} test {:.3} | threshold for 95% in-scope kept on val: test in-scope kept {:.1}%, oos_test rejected {:.1}%",
            auc(&val_in, &val_oos),
            auc(&test_in, &test_oos),
            kept(&test_in),
            100.0 - kept(&test_oos)
        );
    }
}

fn clinc_split(path: &std::path::Path, key: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    json[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            Some((
                pair.get(0)?.as_str()?.to_string(),
                pair.get(1)?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// StackFAQ threads (question + first answer) and their paraphrases, as `bench` reads them.
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
