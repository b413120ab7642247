//! Per-tenant self-calibration and self-check, from the tenant's own knowledge base.
//!
//! Every FAQ comes with alternates (other phrasings of its question). Holding one text of an
//! FAQ out and asking it as a customer turn against the rest of the knowledge base gives a
//! labelled in-domain turn for free: the right answer is that FAQ. Generic out-of-scope
//! questions shipped with the models crate ([`switchboard_models::builtin::generic_out_of_scope`],
//! English and Chinese) give turns no FAQ should answer. From these the bot
//!
//! 1. **fits the tenant's calibration** ([`fit`]): a weighted logistic model over the same
//!    features the live decision uses (best cosine, margin, token overlap), then moves its bias
//!    so that the operating point that maximizes `right − wrong_cost · wrong` on these turns
//!    sits at the default `answer_threshold` (0.5);
//! 2. **reports** ([`check`]) how many held-out texts the bot answers right, answers with a
//!    wrong FAQ, or abstains on (clarify, out of scope, handoff) at given settings, and how many
//!    generic out-of-scope questions it would answer.
//!
//! The fitted model decides a tenant's turns only when its `BotSettings::self_calibration` is
//! on (off by default: on the demo shop and StackFAQ it measured on par with the global
//! calibration, slightly behind; docs/bench-bot.md). The report is useful either way: it is
//! the operator's view of how well the bot knows its own knowledge base.
//!
//! ## Wiring (gateway)
//! - After every knowledge-base change, `Bot::index_faqs` / `rebuild_faqs` / `remove_faqs`
//!   mark the tenant; call [`Bot::recalibrate_stale`] from a periodic loop on the blocking
//!   pool (e.g. every 2 s, with the knowledge sync) so that a burst of writes costs one fit.
//! - A route `GET /v1/tenants/{t}/bot/selfcheck` returns [`Bot::self_check`] with the
//!   tenant's settings as JSON ([`SelfCheckReport`]; it refits a stale tenant first).
//!
//! ## How held out is "held out"
//! The dense side of a held-out text is exact: its own vector is skipped, and its tokens are
//! not counted in its FAQ's token overlap. The lexical (tantivy) side is left out of the
//! simulation, because the tantivy index holds the held-out text itself; candidates are the
//! dense nearest FAQs only and the `lexical_top` feature is 0 (the fitted model gives it
//! weight 0, so live turns and the simulation compute the same confidence). In live turns
//! tantivy can only add candidates. The report is measured on the same turns the calibration
//! was fitted on (three coefficients and a bias, so the optimism is small); the bench in
//! `examples/bench.rs` measures the fitted calibration on held-out test sets.
//!
//! ## Cost
//! No encoder pass for the held-out texts (their vectors are on the dense side already); the
//! generic negatives are embedded once per [`Bot`] (165 texts, about 1.3 s). The scan is
//! `queries × texts` dot products plus one analysis of each query's tokens: for 227 FAQs with
//! 4 alternates each (1,135 texts, 800 held out) a fit took 1.4 s and a check about as long
//! on the loaded 2-core machine; the demo (56 FAQs) 0.2 s (docs/bench-bot.md). Above
//! [`SelfCheckOptions::max_queries`] held-out texts, an evenly spaced sample is used.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchboard_knowledge::analyze;

use crate::bot::Bot;
use crate::calibration::{Calibration, Features};
use crate::error::BotError;
use crate::retrieval::{
    features_of, fused_score, DenseFaq, ScoredCandidate, TenantDense, ANSWER_WEIGHT, DENSE_K,
};
use crate::rules;
use crate::settings::BotSettings;

/// Knobs of the self-calibration. The defaults are what [`Bot`] uses after every change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelfCheckOptions {
    /// At most this many held-out texts per run (an evenly spaced sample above it).
    pub max_queries: usize,
    /// How many abstentions one wrong answer is worth when choosing the operating point.
    pub wrong_cost: f32,
    /// Total weight of the generic out-of-scope questions relative to the held-out texts.
    pub negative_share: f32,
    /// Fewer held-out texts than this: no fit (the default calibration stays in force).
    pub min_queries: usize,
    /// Weight of a held-out alternate relative to a held-out question (questions are whole
    /// sentences, like customers' turns; alternates are often keywords).
    pub alternate_weight: f32,
}

impl Default for SelfCheckOptions {
    fn default() -> Self {
        SelfCheckOptions {
            max_queries: 800,
            wrong_cost: 1.5,
            negative_share: 0.5,
            min_queries: 12,
            alternate_weight: 1.0,
        }
    }
}

/// Where the calibration in force for a tenant comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationSource {
    /// `BotSettings::calibration`, set by the tenant (e.g. from `eval::fit_calibration`).
    TenantSettings,
    /// Fitted by [`fit`] from the tenant's own alternates.
    SelfFitted,
    /// [`Calibration::default`] (too few alternates to fit).
    Default,
}

/// A tenant's self-fitted calibration and what it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantFit {
    pub calibration: Calibration,
    /// The same fit without the second encoder's features: the first stage of the two-stage
    /// decision (see [`crate::SecondOpinion`]); `None` in fits from before it existed or
    /// without a second encoder.
    #[serde(default)]
    pub first_stage: Option<Calibration>,
    /// Held-out texts used (in-domain turns).
    pub queries: usize,
    /// Of those, how many had the right FAQ on top.
    pub top_right: usize,
    /// Generic out-of-scope questions used.
    pub negatives: usize,
    /// Confidence (before the shift) of the chosen operating point.
    pub operating_point: f32,
    pub duration_ms: u64,
}

/// One held-out text the bot would not answer right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheckMiss {
    pub text: String,
    /// The FAQ the text belongs to (`none` for a generic out-of-scope question).
    pub expected: String,
    /// An FAQ id (answered wrong), `clarify`, `out_of_scope` or `handoff`.
    pub outcome: String,
    pub confidence: f32,
}

/// What the self-check found: the operator console shows it after every knowledge-base change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheckReport {
    pub tenant: String,
    pub faqs: usize,
    /// FAQs with at least one alternate (only these can be held out).
    pub faqs_with_alternates: usize,
    /// Held-out texts asked.
    pub queries: usize,
    /// Answered with their own FAQ.
    pub right: usize,
    /// Answered with another FAQ.
    pub wrong: usize,
    /// Not answered: clarify + out of scope + handoff.
    pub abstained: usize,
    pub clarified: usize,
    /// Clarify decisions whose buttons held the right FAQ.
    pub clarified_with_right: usize,
    pub out_of_scope: usize,
    pub handed_off: usize,
    /// `right / queries`, `abstained / queries`, `wrong / queries`.
    pub accuracy: f32,
    pub abstain_rate: f32,
    pub wrong_rate: f32,
    /// Generic out-of-scope questions asked, and how many got an FAQ answer (should be 0).
    pub negatives: usize,
    pub negatives_answered: usize,
    pub calibration_source: CalibrationSource,
    pub calibration: Calibration,
    pub answer_threshold: f32,
    pub duration_ms: u64,
    /// Up to 20 misses (wrong answers first).
    pub misses: Vec<SelfCheckMiss>,
    /// The same held-out texts with the self-fitted calibration, when it exists and is not
    /// the one in force (what turning `BotSettings::self_calibration` on would give).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_fitted: Option<Outcome>,
}

/// Right / abstained / wrong shares of a self-check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub accuracy: f32,
    pub abstain_rate: f32,
    pub wrong_rate: f32,
    pub negatives_answered: usize,
}

impl Outcome {
    pub fn of(report: &SelfCheckReport) -> Outcome {
        Outcome {
            accuracy: report.accuracy,
            abstain_rate: report.abstain_rate,
            wrong_rate: report.wrong_rate,
            negatives_answered: report.negatives_answered,
        }
    }
}

impl std::fmt::Display for SelfCheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |a: usize, b: usize| {
            if b == 0 {
                0.0
            } else {
                a as f32 * 100.0 / b as f32
            }
        };
        writeln!(
            f,
            "self-check {}: {} faqs ({} with alternates), {} held-out texts, calibration {:?}",
            self.tenant,
            self.faqs,
            self.faqs_with_alternates,
            self.queries,
            self.calibration_source
        )?;
        writeln!(
            f,
            "  right {:.1}% ({})  abstained {:.1}% ({}: clarify {} [right faq among buttons {}], out of scope {}, handoff {})  wrong {:.1}% ({})",
            pct(self.right, self.queries),
            self.right,
            pct(self.abstained, self.queries),
            self.abstained,
            self.clarified,
            self.clarified_with_right,
            self.out_of_scope,
            self.handed_off,
            pct(self.wrong, self.queries),
            self.wrong
        )?;
        writeln!(
            f,
            "  generic out-of-scope questions answered: {} of {}   ({} ms)",
            self.negatives_answered, self.negatives, self.duration_ms
        )?;
        if let Some(o) = &self.self_fitted {
            writeln!(
                f,
                "  with the self-fitted calibration: right {:.1}%  abstained {:.1}%  wrong {:.1}%  generic answered {}",
                o.accuracy * 100.0,
                o.abstain_rate * 100.0,
                o.wrong_rate * 100.0,
                o.negatives_answered
            )?;
        }
        Ok(())
    }
}

/// One simulated turn: a vector, the FAQ it belongs to and the text to leave out.
struct Probe<'a> {
    text: &'a str,
    vector: &'a [f32],
    /// The second encoder's vector, when the bot has one.
    use_vector: Option<&'a [f32]>,
    /// `(faq id, text index)` of the held-out text; `None` for a generic negative.
    held_out: Option<(&'a str, usize)>,
}

/// The held-out texts of a tenant's dense side (an evenly spaced sample above `max`), in a
/// stable order.
fn held_out_probes(dense: &TenantDense, max: usize) -> Vec<Probe<'_>> {
    let mut faqs: Vec<&Arc<DenseFaq>> = dense.values().collect();
    faqs.sort_by(|a, b| a.id.cmp(&b.id));
    let mut all = Vec::new();
    for faq in faqs {
        if faq.vectors.len() < 2 {
            continue;
        }
        for (i, (v, t)) in faq.vectors.iter().zip(&faq.phrasings).enumerate() {
            all.push(Probe {
                text: t.as_str(),
                vector: v.as_slice(),
                use_vector: faq.use_vectors.get(i).map(Vec::as_slice),
                held_out: Some((faq.id.as_str(), i)),
            });
        }
    }
    if all.len() <= max || max == 0 {
        return all;
    }
    let step = all.len() as f64 / max as f64;
    let keep: HashSet<usize> = (0..max).map(|i| (i as f64 * step) as usize).collect();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, p)| p)
        .collect()
}

/// The candidates a live turn would get from the dense side (see the module doc), with the
/// held-out text left out. Best first, at most 10, confidences not set.
fn dense_candidates(dense: &TenantDense, probe: &Probe<'_>) -> Vec<ScoredCandidate> {
    let query_tokens: HashSet<String> = analyze(probe.text).into_iter().collect();
    let skip_for = |faq: &DenseFaq| match probe.held_out {
        Some((id, i)) if id == faq.id => Some(i),
        _ => None,
    };
    let mut scored: Vec<(f32, f32, f32, &Arc<DenseFaq>)> = dense
        .values()
        .map(|faq| {
            let c = faq.best_cosine_without(probe.vector, skip_for(faq));
            let a = faq.answer_cosine(probe.vector);
            (c + ANSWER_WEIGHT * a, c, a, faq)
        })
        .filter(|(_, c, _, _)| *c > f32::MIN)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.3.id.cmp(&b.3.id)));
    let mut out: Vec<ScoredCandidate> = scored
        .into_iter()
        .take(DENSE_K)
        .map(|(_, cosine, answer_cosine, faq)| {
            let overlap = faq.overlap_without(&query_tokens, skip_for(faq));
            ScoredCandidate {
                id: faq.id.clone(),
                question: faq.question.clone(),
                answer: String::new(),
                tags: Vec::new(),
                cosine,
                answer_cosine,
                use_cosine: faq.best_use_cosine_without(probe.use_vector, skip_for(faq)),
                lexical_score: None,
                lexical_rank: None,
                overlap,
                fused: fused_score(cosine, answer_cosine, overlap, None),
                confidence: 0.0,
            }
        })
        .collect();
    out.sort_by(|a, b| b.fused.total_cmp(&a.fused).then_with(|| a.id.cmp(&b.id)));
    out.truncate(10);
    out
}

/// A probe's simulated candidates with the top features.
struct Simulated<'a> {
    probe: Probe<'a>,
    candidates: Vec<ScoredCandidate>,
    features: Option<Features>,
}

fn simulate<'a>(dense: &TenantDense, probes: Vec<Probe<'a>>) -> Vec<Simulated<'a>> {
    probes
        .into_iter()
        .map(|probe| {
            let candidates = dense_candidates(dense, &probe);
            let features = (!candidates.is_empty()).then(|| features_of(&candidates, 0));
            Simulated {
                probe,
                candidates,
                features,
            }
        })
        .collect()
}

/// Everything [`fit`] and [`check`] read from the bot for one tenant.
struct Material<'a> {
    dense: Arc<TenantDense>,
    negatives: &'a [(String, Vec<f32>)],
    /// The second encoder's vectors of `negatives` (empty without one).
    use_negatives: &'a [Vec<f32>],
}

/// The generic out-of-scope questions as probes: no FAQ is theirs.
fn generic_probes<'a>(
    negatives: &'a [(String, Vec<f32>)],
    use_negatives: &'a [Vec<f32>],
) -> Vec<Probe<'a>> {
    negatives
        .iter()
        .enumerate()
        .map(|(i, (text, vector))| Probe {
            text: text.as_str(),
            vector: vector.as_slice(),
            use_vector: use_negatives.get(i).map(Vec::as_slice),
            held_out: None,
        })
        .collect()
}

fn material<'a>(bot: &'a Bot, tenant: &str) -> Result<Material<'a>, BotError> {
    Ok(Material {
        dense: bot.tenant_dense_arc(tenant),
        negatives: bot.generic_negatives()?,
        use_negatives: bot.generic_use_negatives()?,
    })
}

/// Fits `tenant`'s calibration from its own alternates and the generic negatives. `None` when
/// the tenant has fewer than `options.min_queries` held-out texts (the bot then uses
/// [`Calibration::default`]). Does not store the result: [`Bot::self_calibrate`] does.
pub fn fit(
    bot: &Bot,
    tenant: &str,
    options: &SelfCheckOptions,
) -> Result<Option<TenantFit>, BotError> {
    let started = Instant::now();
    let m = material(bot, tenant)?;
    let probes = held_out_probes(&m.dense, options.max_queries);
    if probes.len() < options.min_queries.max(1) {
        return Ok(None);
    }
    let queries = probes.len();
    let mut sims = simulate(&m.dense, probes);
    let negative_probes = generic_probes(m.negatives, m.use_negatives);
    let negatives = negative_probes.len();
    sims.extend(simulate(&m.dense, negative_probes));
    let probe_weight = |i: usize| {
        if i == 0 {
            1.0
        } else {
            options.alternate_weight.max(0.0)
        }
    };
    let positive_weight: f32 = sims
        .iter()
        .filter_map(|s| s.probe.held_out.map(|(_, i)| probe_weight(i)))
        .sum();
    let negative_weight = if negatives == 0 {
        0.0
    } else {
        options.negative_share * positive_weight / negatives as f32
    };
    let mut samples: Vec<(Features, bool, f32)> = Vec::with_capacity(sims.len());
    let mut top_right = 0;
    for s in &sims {
        let Some(features) = s.features else { continue };
        let features = Features {
            lexical_top: 0.0,
            ..features
        };
        let (right, weight) = match s.probe.held_out {
            Some((id, i)) => (
                s.candidates.first().is_some_and(|c| c.id == id),
                probe_weight(i),
            ),
            None => (false, negative_weight),
        };
        top_right += usize::from(right);
        samples.push((features, right, weight));
    }
    let Some((calibration, best_p)) = fit_operating_point(&samples, options.wrong_cost) else {
        return Ok(None);
    };
    let first_stage = if calibration.uses_second_encoder() {
        let without_second: Vec<(Features, bool, f32)> = samples
            .iter()
            .map(|(f, right, w)| {
                let f = Features {
                    use_cosine: 0.0,
                    use_margin: 0.0,
                    ..*f
                };
                (f, *right, *w)
            })
            .collect();
        fit_operating_point(&without_second, options.wrong_cost).map(|(c, _)| c)
    } else {
        None
    };
    Ok(Some(TenantFit {
        calibration,
        first_stage,
        queries,
        top_right,
        negatives,
        operating_point: best_p,
        duration_ms: started.elapsed().as_millis() as u64,
    }))
}

/// Fits a weighted logistic model on `(features, top candidate right, weight)` samples and
/// moves its bias so that the confidence threshold maximizing `right − wrong_cost · wrong`
/// (weighted) lands at the default `answer_threshold`. Returns the model and the chosen
/// confidence before the shift; `None` when a class is missing.
pub(crate) fn fit_operating_point(
    samples: &[(Features, bool, f32)],
    wrong_cost: f32,
) -> Option<(Calibration, f32)> {
    let raw = Calibration::fit_weighted(samples, 0.01)?;
    let mut scored: Vec<(f32, bool, f32)> = samples
        .iter()
        .map(|(f, right, w)| (raw.confidence(f), *right, *w))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut gain, mut best_gain, mut best_p) = (0.0_f32, 0.0_f32, 1.0_f32);
    for (i, (p, right, w)) in scored.iter().enumerate() {
        gain += if *right { *w } else { -wrong_cost * w };
        // Only between distinct confidences.
        let next_differs = scored.get(i + 1).is_none_or(|n| n.0 < *p);
        if next_differs && gain > best_gain {
            best_gain = gain;
            best_p = *p;
        }
    }
    // Put the chosen point just below the default threshold's boundary.
    let target = BotSettings::default().answer_threshold;
    Some((raw.shifted(best_p - 1e-4, target), best_p))
}

/// The self-check at `settings` with `calibration` (see the module doc).
pub fn check(
    bot: &Bot,
    tenant: &str,
    settings: &BotSettings,
    calibration: &Calibration,
    first_stage: Option<&Calibration>,
    source: CalibrationSource,
    options: &SelfCheckOptions,
) -> Result<SelfCheckReport, BotError> {
    let started = Instant::now();
    let m = material(bot, tenant)?;
    let faqs = m.dense.len();
    let faqs_with_alternates = m.dense.values().filter(|f| f.vectors.len() >= 2).count();
    let probes = held_out_probes(&m.dense, options.max_queries);
    let queries = probes.len();
    let mut sims = simulate(&m.dense, probes);
    let negative_probes = generic_probes(m.negatives, m.use_negatives);
    let negatives = negative_probes.len();
    sims.extend(simulate(&m.dense, negative_probes));
    let mut report = SelfCheckReport {
        tenant: tenant.to_string(),
        faqs,
        faqs_with_alternates,
        queries,
        right: 0,
        wrong: 0,
        abstained: 0,
        clarified: 0,
        clarified_with_right: 0,
        out_of_scope: 0,
        handed_off: 0,
        accuracy: 0.0,
        abstain_rate: 0.0,
        wrong_rate: 0.0,
        negatives,
        negatives_answered: 0,
        calibration_source: source,
        calibration: calibration.clone(),
        answer_threshold: settings.answer_threshold,
        duration_ms: 0,
        misses: Vec::new(),
        self_fitted: None,
    };
    let mut wrong_misses = Vec::new();
    let mut other_misses = Vec::new();
    // The two-stage decision as a turn makes it (see `SecondOpinion`).
    let second_opinion = bot.second_opinion();
    let first_stage = first_stage.filter(|_| {
        calibration.uses_second_encoder() && second_opinion != crate::SecondOpinion::Always
    });
    let score = |candidates: &mut [ScoredCandidate], calibration: &Calibration| {
        for i in 0..candidates.len() {
            let f = features_of(candidates, i);
            candidates[i].confidence = calibration.confidence(&f);
        }
    };
    for mut s in sims {
        let in_force = match first_stage {
            Some(first) => {
                score(&mut s.candidates, first);
                let p = s.candidates.first().map_or(0.0, |c| c.confidence);
                if second_opinion.wants(p) {
                    calibration
                } else {
                    first
                }
            }
            None => calibration,
        };
        score(&mut s.candidates, in_force);
        let confidence = s.candidates.first().map_or(0.0, |c| c.confidence);
        let outcome: String =
            if rules::explicit_handoff(s.probe.text) || rules::angry_tone(s.probe.text) {
                "handoff".into()
            } else if let Some(top) = s
                .candidates
                .first()
                .filter(|_| confidence >= settings.answer_threshold)
            {
                top.id.clone()
            } else if confidence >= settings.clarify_threshold
                && s.candidates
                    .iter()
                    .any(|c| c.confidence >= settings.suggestion_threshold)
            {
                "clarify".into()
            } else {
                "out_of_scope".into()
            };
        let Some((expected, _)) = s.probe.held_out else {
            if s.candidates.iter().any(|c| c.id == outcome) {
                report.negatives_answered += 1;
                wrong_misses.push(SelfCheckMiss {
                    text: s.probe.text.to_string(),
                    expected: "none".into(),
                    outcome,
                    confidence,
                });
            }
            continue;
        };
        match outcome.as_str() {
            o if o == expected => report.right += 1,
            "handoff" => report.handed_off += 1,
            "out_of_scope" => report.out_of_scope += 1,
            "clarify" => {
                report.clarified += 1;
                let right_button = s
                    .candidates
                    .iter()
                    .filter(|c| c.confidence >= settings.suggestion_threshold)
                    .take(3)
                    .any(|c| c.id == expected);
                report.clarified_with_right += usize::from(right_button);
            }
            _ => report.wrong += 1,
        }
        if outcome != expected {
            let miss = SelfCheckMiss {
                text: s.probe.text.to_string(),
                expected: expected.to_string(),
                outcome: outcome.clone(),
                confidence,
            };
            if matches!(outcome.as_str(), "handoff" | "out_of_scope" | "clarify") {
                other_misses.push(miss);
            } else {
                wrong_misses.push(miss);
            }
        }
    }
    report.abstained = report.clarified + report.out_of_scope + report.handed_off;
    let ratio = |a: usize| {
        if queries == 0 {
            0.0
        } else {
            a as f32 / queries as f32
        }
    };
    report.accuracy = ratio(report.right);
    report.abstain_rate = ratio(report.abstained);
    report.wrong_rate = ratio(report.wrong);
    report.misses = wrong_misses
        .into_iter()
        .chain(other_misses)
        .take(20)
        .collect();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
