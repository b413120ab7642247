//! Evaluation of the bot on labelled turns, `{"q":"...","expect":"<faq id>|handoff|none"}` a
//! line, and fitting the confidence calibration on such lines.
//!
//! Each line is decided as a first turn (`unsure_streak` 0), so "unsure twice" never fires.
//! A decision's predicted label is the FAQ id of an FAQ answer, `handoff`, `clarify`, or
//! `none` (out of scope, or a social reply that gives no FAQ).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_knowledge::Synonyms;

use crate::bot::Bot;
use crate::calibration::{Calibration, Features};
use crate::decision::{DecisionKind, Turn};
use crate::error::EvalLineError;
use crate::settings::BotSettings;

/// Expected label of a line that should be handed to a person.
pub const EXPECT_HANDOFF: &str = "handoff";
/// Expected label of a line no FAQ answers (out of scope, or social).
pub const EXPECT_NONE: &str = "none";
/// Predicted label of a clarify decision.
pub const PREDICT_CLARIFY: &str = "clarify";

/// One labelled turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalLine {
    pub q: String,
    pub expect: String,
}

/// Parses JSON Lines (blank lines and lines starting with `#` skipped). All bad lines are
/// reported, with 1-based line numbers.
pub fn parse_eval_lines(text: &str) -> Result<Vec<EvalLine>, Vec<EvalLineError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match serde_json::from_str::<EvalLine>(line) {
            Ok(l) if l.expect.trim().is_empty() => errors.push(EvalLineError {
                line: i + 1,
                message: "expect is empty".into(),
            }),
            Ok(l) => out.push(EvalLine {
                q: l.q,
                expect: l.expect.trim().to_string(),
            }),
            Err(e) => errors.push(EvalLineError {
                line: i + 1,
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The class of an expected label: `faq`, `handoff` or `none`.
pub fn class_of(expect: &str) -> &'static str {
    match expect {
        EXPECT_HANDOFF => "handoff",
        EXPECT_NONE => "none",
        _ => "faq",
    }
}

/// Outcome of one class of lines. Every line is exactly one of right, wrong or abstained:
/// - right: the decision's label is the expected one;
/// - wrong: the bot answered with an FAQ that is not the expected label (the costly mistake:
///   the customer reads a wrong answer);
/// - abstained: anything else (clarify, out of scope, a handoff or a social reply where
///   something else was expected): the customer got no answer, but no wrong one either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    pub class: String,
    pub total: usize,
    pub correct: usize,
    /// `correct / total`: the overall accuracy of the class.
    pub accuracy: f32,
    /// Lines answered with a wrong FAQ.
    pub wrong: usize,
    /// Lines with no answer and no wrong answer.
    pub abstained: usize,
    /// `wrong / total`.
    pub wrong_rate: f32,
    /// `abstained / total`.
    pub abstain_rate: f32,
}

/// One kind of mistake, with up to three example questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub expected: String,
    pub predicted: String,
    pub count: usize,
    pub examples: Vec<String>,
}

/// What an evaluation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub total: usize,
    /// Lines whose predicted label equals the expected one.
    pub correct: usize,
    pub accuracy: f32,
    /// Lines answered with a wrong FAQ (see [`ClassReport`]).
    pub wrong: usize,
    /// Lines neither right nor wrong (see [`ClassReport`]).
    pub abstained: usize,
    /// `abstained / total`.
    pub abstain_rate: f32,
    /// Per class (`faq`, `handoff`, `none`), in that order, classes with lines only.
    pub classes: Vec<ClassReport>,
    /// FAQ answers given (on any line), and how many were the expected FAQ.
    pub answered: usize,
    pub answered_correct: usize,
    /// `answered_correct / answered`: P@1 of the answer decision.
    pub answer_precision: f32,
    /// FAQ answers that were not the expected label, over all lines: the costly mistake.
    pub wrong_answer_rate: f32,
    /// FAQ lines the bot did not answer with an FAQ (clarify, out of scope, handoff), over FAQ lines.
    pub faq_abstain_rate: f32,
    /// FAQ lines whose clarify suggestions held the expected FAQ's question.
    pub faq_clarified_with_expected: usize,
    /// FAQ lines answered with a clarify decision.
    pub faq_clarified: usize,
    /// FAQ lines whose expected FAQ was among the top 5 retrieval candidates.
    pub retrieval_recall_at_5: f32,
    /// FAQ lines whose top retrieval candidate was the expected FAQ, whatever the decision.
    pub retrieval_p_at_1: f32,
    /// Mistakes, most frequent first (at most 15).
    pub confusions: Vec<Confusion>,
    /// Turns that ran the second encoder (see [`crate::SecondOpinion`]).
    #[serde(default)]
    pub second_opinions: usize,
}

/// Evaluates `lines` on `tenant` with default settings and no synonyms.
pub fn evaluate(bot: &Bot, tenant: &str, lines: &[EvalLine]) -> EvalReport {
    evaluate_with(
        bot,
        tenant,
        lines,
        Arc::new(BotSettings::default()),
        Arc::new(Synonyms::none()),
    )
}

/// Evaluates `lines` on `tenant` with the tenant's settings and synonyms (what
/// `switchboard bot eval` uses). CPU-bound: about one encoder pass per line.
pub fn evaluate_with(
    bot: &Bot,
    tenant: &str,
    lines: &[EvalLine],
    settings: Arc<BotSettings>,
    synonyms: Arc<Synonyms>,
) -> EvalReport {
    // class -> (total, right, wrong)
    let mut per_class: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
    let mut confusions: BTreeMap<(String, String), (usize, Vec<String>)> = BTreeMap::new();
    let (mut correct, mut answered, mut answered_correct, mut wrong_answers) = (0, 0, 0, 0);
    let (mut faq_lines, mut faq_abstained, mut clarified_with_expected, mut top_right) =
        (0, 0, 0, 0);
    let (mut faq_clarified, mut top5_right, mut second_opinions) = (0, 0, 0);
    for line in lines {
        let turn = Turn::new(tenant, line.q.clone())
            .with_settings(settings.clone())
            .with_synonyms(synonyms.clone());
        let explained = bot.explain(&turn);
        second_opinions += usize::from(explained.second_opinion);
        let decision = &explained.decision;
        let predicted = match (decision.kind, &decision.faq_id) {
            (DecisionKind::Answer, Some(id)) => id.clone(),
            (DecisionKind::Answer, None) | (DecisionKind::OutOfScope, _) => EXPECT_NONE.to_string(),
            (DecisionKind::Handoff, _) => EXPECT_HANDOFF.to_string(),
            (DecisionKind::Clarify, _) => PREDICT_CLARIFY.to_string(),
        };
        let class = class_of(&line.expect);
        let entry = per_class.entry(class).or_default();
        entry.0 += 1;
        let is_correct = predicted == line.expect;
        if is_correct {
            entry.1 += 1;
            correct += 1;
        } else {
            let c = confusions
                .entry((line.expect.clone(), predicted.clone()))
                .or_default();
            c.0 += 1;
            if c.1.len() < 3 {
                c.1.push(line.q.clone());
            }
        }
        if decision.faq_id.is_some() {
            answered += 1;
            if is_correct {
                answered_correct += 1;
            } else {
                wrong_answers += 1;
                entry_wrong(&mut per_class, class);
            }
        }
        if class == "faq" {
            faq_lines += 1;
            if decision.faq_id.is_none() {
                faq_abstained += 1;
            }
            if explained
                .candidates
                .first()
                .is_some_and(|c| c.id == line.expect)
            {
                top_right += 1;
            }
            if explained
                .candidates
                .iter()
                .take(5)
                .any(|c| c.id == line.expect)
            {
                top5_right += 1;
            }
            if decision.kind == DecisionKind::Clarify {
                faq_clarified += 1;
            }
            if decision.kind == DecisionKind::Clarify
                && explained
                    .candidates
                    .iter()
                    .any(|c| c.id == line.expect && decision.suggestions.contains(&c.question))
            {
                clarified_with_expected += 1;
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
    let classes = ["faq", "handoff", "none"]
        .iter()
        .filter_map(|c| {
            per_class.get(c).map(|&(total, ok, wrong)| ClassReport {
                class: c.to_string(),
                total,
                correct: ok,
                accuracy: ratio(ok, total),
                wrong,
                abstained: total - ok - wrong,
                wrong_rate: ratio(wrong, total),
                abstain_rate: ratio(total - ok - wrong, total),
            })
        })
        .collect();
    let mut confusions: Vec<Confusion> = confusions
        .into_iter()
        .map(|((expected, predicted), (count, examples))| Confusion {
            expected,
            predicted,
            count,
            examples,
        })
        .collect();
    confusions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.expected.cmp(&b.expected))
    });
    confusions.truncate(15);
    let abstained = lines.len() - correct - wrong_answers;
    EvalReport {
        total: lines.len(),
        correct,
        accuracy: ratio(correct, lines.len()),
        wrong: wrong_answers,
        abstained,
        abstain_rate: ratio(abstained, lines.len()),
        classes,
        answered,
        answered_correct,
        answer_precision: ratio(answered_correct, answered),
        wrong_answer_rate: ratio(wrong_answers, lines.len()),
        faq_abstain_rate: ratio(faq_abstained, faq_lines),
        faq_clarified_with_expected: clarified_with_expected,
        faq_clarified,
        retrieval_recall_at_5: ratio(top5_right, faq_lines),
        retrieval_p_at_1: ratio(top_right, faq_lines),
        confusions,
        second_opinions,
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: f32| v * 100.0;
        writeln!(
            f,
            "{:<8} {:>5}  {:>8}  {:>10}  {:>6}",
            "class", "lines", "accuracy", "abstained", "wrong"
        )?;
        for c in &self.classes {
            writeln!(
                f,
                "{:<8} {:>5}  {:>7.1}%  {:>9.1}%  {:>5.1}%",
                c.class,
                c.total,
                pct(c.accuracy),
                pct(c.abstain_rate),
                pct(c.wrong_rate)
            )?;
        }
        writeln!(
            f,
            "{:<8} {:>5}  {:>7.1}%  {:>9.1}%  {:>5.1}%   ({} right, {} abstained, {} wrong)",
            "all",
            self.total,
            pct(self.accuracy),
            pct(self.abstain_rate),
            pct(self.wrong_answer_rate),
            self.correct,
            self.abstained,
            self.wrong
        )?;
        writeln!(
            f,
            "faq lines: clarified {} (the expected faq among the buttons {})  retrieval P@1 {:.1}%  R@5 {:.1}%",
            self.faq_clarified,
            self.faq_clarified_with_expected,
            pct(self.retrieval_p_at_1),
            pct(self.retrieval_recall_at_5)
        )?;
        writeln!(
            f,
            "faq answers given {} ({} right: {:.1}% of answers)",
            self.answered,
            self.answered_correct,
            pct(self.answer_precision)
        )?;
        writeln!(
            f,
            "second encoder run on {} of {} turns",
            self.second_opinions, self.total
        )?;
        if !self.confusions.is_empty() {
            writeln!(f, "worst confusions (expected -> predicted):")?;
            for c in &self.confusions {
                writeln!(
                    f,
                    "  {:>3} x {} -> {}   e.g. {:?}",
                    c.count, c.expected, c.predicted, c.examples
                )?;
            }
        }
        Ok(())
    }
}

fn entry_wrong(per_class: &mut BTreeMap<&'static str, (usize, usize, usize)>, class: &'static str) {
    per_class.entry(class).or_default().2 += 1;
}

/// Calibration samples from labelled lines: for every line expecting an FAQ or `none`, the
/// features of the top candidate and whether it is the expected FAQ. Handoff lines are skipped.
pub fn calibration_samples(
    bot: &Bot,
    tenant: &str,
    lines: &[EvalLine],
    synonyms: Arc<Synonyms>,
) -> Vec<(Features, bool)> {
    let settings = Arc::new(BotSettings::default());
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l.expect != EXPECT_HANDOFF) {
        let turn = Turn::new(tenant, line.q.clone())
            .with_settings(settings.clone())
            .with_synonyms(synonyms.clone());
        // Fitting data always carries the second encoder's features.
        let explained = bot.explain_with_opinion(&turn, crate::SecondOpinion::Always);
        if let (Some(features), Some(top)) = (explained.features, explained.candidates.first()) {
            out.push((features, top.id == line.expect));
        }
    }
    out
}

/// Fits a tenant's calibration on its own labelled lines (store the result in
/// [`BotSettings::calibration`]). `None` when the lines lack right or wrong top candidates.
pub fn fit_calibration(
    bot: &Bot,
    tenant: &str,
    lines: &[EvalLine],
    synonyms: Arc<Synonyms>,
) -> Option<Calibration> {
    Calibration::fit(&calibration_samples(bot, tenant, lines, synonyms))
}

/// [`fit_calibration`] with what the self-calibration adds: the built-in generic
/// out-of-scope questions as negatives (total weight `options.negative_share` × the lines'),
/// and the operating point (`right − options.wrong_cost · wrong`) put at the default
/// `answer_threshold`. Use it when a tenant's FAQs have few alternates but it has labelled
/// lines: a fit on in-domain lines alone never learns to reject (docs/bench-bot.md, StackFAQ
/// A). Lines expecting `none` count as negatives too; handoff lines are skipped. `None` when
/// the lines lack right or wrong top candidates.
pub fn fit_calibration_with_negatives(
    bot: &Bot,
    tenant: &str,
    lines: &[EvalLine],
    synonyms: Arc<Synonyms>,
    options: &crate::selfcheck::SelfCheckOptions,
) -> Option<Calibration> {
    let samples = calibration_samples(bot, tenant, lines, synonyms.clone());
    let positives = samples.len() as f32;
    let negatives: Vec<EvalLine> = switchboard_models::builtin::generic_out_of_scope()
        .into_iter()
        .map(|q| EvalLine {
            q: q.to_string(),
            expect: EXPECT_NONE.to_string(),
        })
        .collect();
    let negative_samples = calibration_samples(bot, tenant, &negatives, synonyms);
    let weight = if negative_samples.is_empty() {
        0.0
    } else {
        options.negative_share * positives / negative_samples.len() as f32
    };
    let weighted: Vec<(Features, bool, f32)> = samples
        .into_iter()
        .map(|(f, right)| (f, right, 1.0))
        .chain(
            negative_samples
                .into_iter()
                .map(|(f, _)| (f, false, weight)),
        )
        .collect();
    crate::selfcheck::fit_operating_point(&weighted, options.wrong_cost).map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_reports_errors() {
        let ok = parse_eval_lines(
            "{\"q\":\"a\",\"expect\":\"x\"}\n\n# c\n{\"q\":\"b\",\"expect\":\" none \"}\n",
        )
        .expect("ok");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].expect, "none");
        let bad = parse_eval_lines("{\"q\":\"a\"}\nnot json\n{\"q\":\"a\",\"expect\":\"\"}")
            .expect_err("bad");
        assert_eq!(
            bad.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(class_of("handoff"), "handoff");
        assert_eq!(class_of("zh-ship-fee"), "faq");
    }
}
