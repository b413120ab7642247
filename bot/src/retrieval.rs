//! Hybrid retrieval: lexical candidates from tantivy UNION the dense nearest FAQs (brute-force
//! cosine over every FAQ question and alternate of the tenant), fused and ranked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_knowledge::{analyze, Candidate, FaqRecord};
use switchboard_models::cosine;

use crate::calibration::Features;

/// Lexical candidates fetched per turn.
pub(crate) const LEXICAL_K: usize = 20;
/// Dense candidates kept per turn.
pub(crate) const DENSE_K: usize = 20;
/// Weight of token overlap added to the cosine when ranking (the fused score).
pub(crate) const OVERLAP_WEIGHT: f32 = 0.03;
/// Weight of the cosine between the turn and the FAQ's answer (`passage: `) in the fused score.
pub(crate) const ANSWER_WEIGHT: f32 = 0.3;
/// Weight of tantivy's reciprocal rank `1 / (rank + 2)` in the fused score.
pub(crate) const LEXICAL_RANK_WEIGHT: f32 = 0.01;
/// Characters of an answer embedded for the answer cosine (its opening says what it is about).
pub(crate) const ANSWER_CHARS: usize = 300;

/// The answer text that is embedded (with the `passage: ` prefix) for an FAQ.
pub(crate) fn answer_text(answer: &str) -> &str {
    match answer.char_indices().nth(ANSWER_CHARS) {
        Some((cut, _)) => &answer[..cut],
        None => answer,
    }
}

/// The fused ranking score of a candidate.
pub(crate) fn fused_score(
    cosine: f32,
    answer_cosine: f32,
    overlap: f32,
    lexical_rank: Option<usize>,
) -> f32 {
    cosine
        + ANSWER_WEIGHT * answer_cosine
        + OVERLAP_WEIGHT * overlap
        + lexical_rank.map_or(0.0, |r| LEXICAL_RANK_WEIGHT / (r as f32 + 2.0))
}

/// One FAQ on the dense side: its texts' embeddings and analyzed tokens.
#[derive(Debug)]
pub(crate) struct DenseFaq {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub tags: Vec<String>,
    /// One unit vector per text (question first, then alternates).
    pub vectors: Vec<Vec<f32>>,
    /// Analyzed tokens of the question and alternates.
    pub tokens: HashSet<String>,
    /// Analyzed tokens of each text, in the order of `vectors` (for held-out self-checks).
    pub text_tokens: Vec<HashSet<String>>,
    /// The texts themselves (question first, then alternates), in the order of `vectors`.
    pub phrasings: Vec<String>,
    /// Unit vector of the answer's opening (`passage: ` prefix); `None` when not embedded.
    pub answer_vector: Option<Vec<f32>>,
    /// The second encoder's vector of each text, in the order of `vectors`; empty when the
    /// bot has no second encoder.
    pub use_vectors: Vec<Vec<f32>>,
}

impl DenseFaq {
    pub fn texts(record: &FaqRecord) -> Vec<&str> {
        std::iter::once(record.question.as_str())
            .chain(record.alternates.iter().map(String::as_str))
            .filter(|t| !t.trim().is_empty())
            .collect()
    }

    pub fn new(
        record: &FaqRecord,
        vectors: Vec<Vec<f32>>,
        answer_vector: Option<Vec<f32>>,
        use_vectors: Vec<Vec<f32>>,
    ) -> DenseFaq {
        let text_tokens: Vec<HashSet<String>> = DenseFaq::texts(record)
            .iter()
            .map(|t| analyze(t).into_iter().collect())
            .collect();
        DenseFaq {
            id: record.id.clone(),
            question: record.question.clone(),
            answer: record.answer.clone(),
            tags: record.tags.clone(),
            vectors,
            tokens: text_tokens.iter().flatten().cloned().collect(),
            text_tokens,
            phrasings: DenseFaq::texts(record)
                .iter()
                .map(|t| t.to_string())
                .collect(),
            answer_vector,
            use_vectors,
        }
    }

    /// Best second-encoder cosine over the texts, leaving out text `skip`; 0 without a
    /// second encoder (no query vector or no text vectors).
    pub fn best_use_cosine_without(&self, query: Option<&[f32]>, skip: Option<usize>) -> f32 {
        let Some(query) = query else { return 0.0 };
        let best = self
            .use_vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, v)| cosine(query, v))
            .fold(f32::MIN, f32::max);
        if best == f32::MIN {
            0.0
        } else {
            best
        }
    }

    fn best_cosine(&self, query: &[f32]) -> f32 {
        self.best_cosine_without(query, None)
    }

    /// Cosine between the query and the answer (0 when the answer was not embedded).
    pub fn answer_cosine(&self, query: &[f32]) -> f32 {
        self.answer_vector
            .as_ref()
            .map_or(0.0, |a| cosine(query, a))
    }

    /// Best cosine over the texts, leaving out text `skip` (a held-out alternate).
    pub fn best_cosine_without(&self, query: &[f32], skip: Option<usize>) -> f32 {
        self.vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, v)| cosine(query, v))
            .fold(f32::MIN, f32::max)
    }

    /// Share of `query_tokens` found in the texts, leaving out text `skip`.
    pub fn overlap_without(&self, query_tokens: &HashSet<String>, skip: Option<usize>) -> f32 {
        if query_tokens.is_empty() {
            return 0.0;
        }
        let found = match skip {
            None => query_tokens
                .iter()
                .filter(|t| self.tokens.contains(*t))
                .count(),
            Some(skip) => query_tokens
                .iter()
                .filter(|t| {
                    self.text_tokens
                        .iter()
                        .enumerate()
                        .any(|(i, set)| i != skip && set.contains(*t))
                })
                .count(),
        };
        found as f32 / query_tokens.len() as f32
    }
}

/// A tenant's dense side, keyed by FAQ id.
pub(crate) type TenantDense = HashMap<String, Arc<DenseFaq>>;

/// A ranked candidate with what the decision and the calibration need.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCandidate {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub tags: Vec<String>,
    /// Best cosine between the turn and the FAQ's question or alternates.
    pub cosine: f32,
    /// Cosine between the turn and the FAQ's answer.
    pub answer_cosine: f32,
    /// Best cosine between the turn and the FAQ's question or alternates under the second
    /// encoder (USE multilingual v3); 0 when the bot has none. Not part of the ranking.
    pub use_cosine: f32,
    /// BM25 score, when tantivy returned the FAQ.
    pub lexical_score: Option<f32>,
    /// 0-based rank in tantivy's list, when it returned the FAQ.
    pub lexical_rank: Option<usize>,
    /// Share of the turn's tokens found in the FAQ's question or alternates.
    pub overlap: f32,
    /// The ranking score: `cosine + 0.3 · answer_cosine + 0.03 · overlap + 0.01 / (lexical_rank + 2)`.
    pub fused: f32,
    /// Calibrated confidence of this candidate as the answer (features computed as if it
    /// were the top one).
    pub confidence: f32,
}

/// Fuses lexical hits and the dense side into one ranked list (best first), without
/// confidences and without the second encoder's cosines. `lexical` comes from tantivy best first; `embed_missing` gives embeddings for
/// lexical hits that the dense side lacks.
pub(crate) fn fuse(
    query_vector: &[f32],
    query_text: &str,
    lexical: &[Candidate],
    dense: &TenantDense,
    missing: &HashMap<String, Arc<DenseFaq>>,
) -> Vec<ScoredCandidate> {
    let query_tokens: HashSet<String> = analyze(query_text).into_iter().collect();
    let mut by_id: HashMap<&str, ScoredCandidate> = HashMap::new();
    let score = |faq: &DenseFaq| -> ScoredCandidate {
        let overlap = faq.overlap_without(&query_tokens, None);
        let cosine = faq.best_cosine(query_vector);
        let answer_cosine = faq.answer_cosine(query_vector);
        ScoredCandidate {
            id: faq.id.clone(),
            question: faq.question.clone(),
            answer: faq.answer.clone(),
            tags: faq.tags.clone(),
            cosine,
            answer_cosine,
            // Set by the bot when the turn gets the second encoder's opinion.
            use_cosine: 0.0,
            lexical_score: None,
            lexical_rank: None,
            overlap,
            fused: fused_score(cosine, answer_cosine, overlap, None),
            confidence: 0.0,
        }
    };
    // Dense side: the DENSE_K nearest FAQs (questions, alternates and answer).
    let mut dense_scored: Vec<(f32, &Arc<DenseFaq>)> = dense
        .values()
        .map(|faq| {
            let c = faq.best_cosine(query_vector);
            (c + ANSWER_WEIGHT * faq.answer_cosine(query_vector), faq)
        })
        .collect();
    dense_scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, faq) in dense_scored.iter().take(DENSE_K) {
        by_id.insert(faq.id.as_str(), score(faq.as_ref()));
    }
    // Lexical side: every hit, scored with its dense entry (or one embedded on the fly).
    for (rank, hit) in lexical.iter().enumerate() {
        let Some(faq) = dense.get(&hit.id).or_else(|| missing.get(&hit.id)) else {
            continue;
        };
        let entry = by_id
            .entry(faq.id.as_str())
            .or_insert_with(|| score(faq.as_ref()));
        entry.lexical_score = Some(hit.score);
        entry.lexical_rank = Some(rank);
        entry.fused = fused_score(entry.cosine, entry.answer_cosine, entry.overlap, Some(rank));
    }
    let mut out: Vec<ScoredCandidate> = by_id.into_values().collect();
    out.sort_by(|a, b| b.fused.total_cmp(&a.fused).then_with(|| a.id.cmp(&b.id)));
    out
}

/// Features of candidate `i` in a fused list: its margin is taken against the best cosine of
/// any other candidate.
pub(crate) fn features_of(list: &[ScoredCandidate], i: usize) -> Features {
    let c = &list[i];
    let best_other = list
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, o)| o.cosine)
        .fold(f32::MIN, f32::max);
    let margin = if best_other == f32::MIN {
        0.1
    } else {
        (c.cosine - best_other).clamp(-0.2, 0.2)
    };
    let best_other_fused = list
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, o)| o.fused)
        .fold(f32::MIN, f32::max);
    let fused_margin = if best_other_fused == f32::MIN {
        0.1
    } else {
        (c.fused - best_other_fused).clamp(-0.2, 0.2)
    };
    let best_other_use = list
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, o)| o.use_cosine)
        .fold(f32::MIN, f32::max);
    let use_margin = if best_other_use == f32::MIN {
        0.1
    } else {
        (c.use_cosine - best_other_use).clamp(-0.2, 0.2)
    };
    Features {
        cosine: c.cosine,
        margin,
        overlap: c.overlap,
        lexical_top: if c.lexical_rank == Some(0) { 1.0 } else { 0.0 },
        answer_cosine: c.answer_cosine,
        fused_margin,
        use_cosine: c.use_cosine,
        use_margin,
    }
}
