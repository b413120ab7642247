//! [`Bot`]: the shared pieces and the decision for one turn.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use switchboard_knowledge::{FaqRecord, KnowledgeIndex};
use switchboard_models::{builtin, Encoder, IntentHead, TextKind};

use crate::calibration::Features;
use crate::decision::{Decision, DecisionKind, Evidence, IntentScore, Turn};
use crate::error::BotError;
use crate::llm::LlmClient;
use crate::retrieval::{features_of, fuse, DenseFaq, ScoredCandidate, TenantDense, LEXICAL_K};
use crate::rules::{self, Lang, Reply};
use crate::settings::LlmSettings;

/// Texts embedded per encoder call when indexing FAQs.
const INDEX_BATCH: usize = 64;

/// Everything the decision reads, with the intent model's output and the ranked candidates:
/// what [`Bot::explain`] returns for dry runs and evaluation.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    /// The fused candidates, best first, each with its calibrated confidence (at most 10).
    pub candidates: Vec<ScoredCandidate>,
    /// Features of the top candidate (what the confidence was computed from).
    pub features: Option<Features>,
}

/// The bot: shared by every tenant and every worker thread (`Send + Sync`, all methods take
/// `&self`). Build one at start-up and keep it in an `Arc`.
pub struct Bot {
    index: Arc<KnowledgeIndex>,
    encoder: Arc<Encoder>,
    default_head: Arc<IntentHead>,
    heads: RwLock<HashMap<String, Arc<IntentHead>>>,
    dense: RwLock<HashMap<String, Arc<TenantDense>>>,
    llm: Option<LlmClient>,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("llm", &self.llm.is_some())
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// A bot over `index` and `encoder` with the built-in intent head (trained here, about a
    /// second) as every tenant's head.
    pub fn new(index: Arc<KnowledgeIndex>, encoder: Arc<Encoder>) -> Result<Bot, BotError> {
        let (head, _report) = builtin::builtin_head(&encoder)?;
        Ok(Bot::with_default_head(index, encoder, Arc::new(head)))
    }

    /// A bot with a given default intent head (e.g. loaded with `IntentHead::from_bytes`).
    pub fn with_default_head(
        index: Arc<KnowledgeIndex>,
        encoder: Arc<Encoder>,
        head: Arc<IntentHead>,
    ) -> Bot {
        Bot {
            index,
            encoder,
            default_head: head,
            heads: RwLock::new(HashMap::new()),
            dense: RwLock::new(HashMap::new()),
            llm: None,
        }
    }

    /// Turns on the LLM step for tenants whose settings allow it.
    pub fn with_llm(mut self, settings: LlmSettings) -> Bot {
        self.llm = Some(LlmClient::new(settings));
        self
    }

    pub fn knowledge(&self) -> &Arc<KnowledgeIndex> {
        &self.index
    }

    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    /// Uses `head` for `tenant` (a tenant's own intents plus the built-in ones, trained with
    /// `switchboard_models::builtin::training_set`). Swapped atomically.
    pub fn set_intent_head(&self, tenant: &str, head: Arc<IntentHead>) {
        self.heads
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), head);
    }

    /// Back to the built-in head for `tenant`.
    pub fn remove_intent_head(&self, tenant: &str) {
        self.heads
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }

    fn head(&self, tenant: &str) -> Arc<IntentHead> {
        let heads = self.heads.read().unwrap_or_else(|p| p.into_inner());
        heads
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| self.default_head.clone())
    }

    /// Adds or replaces FAQs on the dense side of `tenant` (embeds each question and alternate;
    /// disabled records are removed instead). Call it with the same records as
    /// `KnowledgeIndex::upsert`/`rebuild`. CPU-heavy: about 5 ms per text, run it off the
    /// async executor.
    pub fn index_faqs(&self, tenant: &str, records: &[FaqRecord]) -> Result<(), BotError> {
        let enabled: Vec<&FaqRecord> = records.iter().filter(|r| r.enabled).collect();
        let texts: Vec<&str> = enabled.iter().flat_map(|r| DenseFaq::texts(r)).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(INDEX_BATCH) {
            vectors.extend(self.encoder.embed_kind_blocking(TextKind::Query, chunk)?);
        }
        let mut vectors = vectors.into_iter();
        let mut built = Vec::with_capacity(enabled.len());
        for record in &enabled {
            let n = DenseFaq::texts(record).len();
            built.push(Arc::new(DenseFaq::new(
                record,
                vectors.by_ref().take(n).collect(),
            )));
        }
        let disabled: Vec<&str> = records
            .iter()
            .filter(|r| !r.enabled)
            .map(|r| r.id.as_str())
            .collect();
        self.update_dense(tenant, |map| {
            for id in &disabled {
                map.remove(*id);
            }
            for faq in built {
                map.insert(faq.id.clone(), faq);
            }
        });
        Ok(())
    }

    /// Replaces the whole dense side of `tenant` (after `KnowledgeIndex::rebuild`).
    pub fn rebuild_faqs(&self, tenant: &str, records: &[FaqRecord]) -> Result<(), BotError> {
        self.remove_tenant(tenant);
        self.index_faqs(tenant, records)
    }

    /// Removes FAQs from the dense side of `tenant`.
    pub fn remove_faqs(&self, tenant: &str, ids: &[&str]) {
        self.update_dense(tenant, |map| {
            for id in ids {
                map.remove(*id);
            }
        });
    }

    /// Forgets a tenant's dense side and intent head.
    pub fn remove_tenant(&self, tenant: &str) {
        self.dense
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        self.remove_intent_head(tenant);
    }

    /// Number of FAQs on the dense side of `tenant`.
    pub fn dense_len(&self, tenant: &str) -> usize {
        self.dense
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map_or(0, |m| m.len())
    }

    fn update_dense(&self, tenant: &str, change: impl FnOnce(&mut TenantDense)) {
        let mut all = self.dense.write().unwrap_or_else(|p| p.into_inner());
        // Copy-on-write: readers keep the Arc they took; a write clones the map of Arcs.
        let mut map: TenantDense = all.get(tenant).map(|m| (**m).clone()).unwrap_or_default();
        change(&mut map);
        all.insert(tenant.to_string(), Arc::new(map));
    }

    fn tenant_dense(&self, tenant: &str) -> Arc<TenantDense> {
        self.dense
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// The decision for one turn, without the LLM step. Synchronous and CPU-bound (one
    /// encoder pass, one tantivy search, a brute-force cosine scan): call it from a worker
    /// pool, never on the async executor. Never fails: a model or index error hands off.
    pub fn decide(&self, turn: &Turn) -> Decision {
        self.explain(turn).decision
    }

    /// [`Bot::decide`] with an embedding the caller already has (e.g. from
    /// `switchboard_models::EncoderService::embed`, which batches and caches): the turn's
    /// text embedded with the `query: ` prefix.
    pub fn decide_with_embedding(&self, turn: &Turn, embedding: &[f32]) -> Decision {
        self.explain_with(turn, Some(embedding)).decision
    }

    /// The decision with the candidates and features behind it.
    pub fn explain(&self, turn: &Turn) -> Explanation {
        self.explain_with(turn, None)
    }

    fn explain_with(&self, turn: &Turn, embedding: Option<&[f32]>) -> Explanation {
        let settings = &*turn.settings;
        let text = truncate_chars(turn.text.trim(), settings.max_text_chars);
        let lang = rules::language(text);
        let no_intent = IntentScore {
            label: String::new(),
            score: 0.0,
        };
        let plain = |decision: Decision| Explanation {
            decision,
            candidates: Vec::new(),
            features: None,
        };

        if turn.sensitive_flagged {
            return plain(handoff(
                lang,
                "sensitive_word",
                &settings.sensitive_skill,
                no_intent,
                0.0,
                Reply::Handoff,
            ));
        }
        if rules::explicit_handoff(text) {
            return plain(handoff(
                lang,
                "explicit_request",
                &settings.default_skill,
                no_intent,
                0.0,
                Reply::Handoff,
            ));
        }
        if rules::angry(text) {
            return plain(handoff(
                lang,
                "complaint",
                &settings.complaint_skill,
                no_intent,
                0.0,
                Reply::ComplaintHandoff,
            ));
        }
        if !rules::has_content(text) {
            let decision = unsure(
                turn,
                lang,
                DecisionKind::OutOfScope,
                "no_text",
                no_intent,
                0.0,
                Vec::new(),
                None,
            );
            return plain(decision);
        }

        // One encoder pass serves the intent head and the rerank.
        let owned;
        let query_vector: &[f32] = match embedding {
            Some(v) => v,
            None => match self.encoder.embed_kind_blocking(TextKind::Query, &[text]) {
                Ok(mut v) if !v.is_empty() => {
                    owned = v.swap_remove(0);
                    &owned
                }
                Ok(_) => return plain(bot_error(lang, settings)),
                Err(error) => {
                    tracing::warn!(tenant = %turn.tenant, %error, "encoder failed; handing off");
                    return plain(bot_error(lang, settings));
                }
            },
        };
        // The tenant's own classifier answered already, or the intent head does.
        let classified = match &turn.intent {
            Some(given) => Ok(given.clone()),
            None => self
                .head(&turn.tenant)
                .classify(query_vector)
                .map(|p| IntentScore {
                    label: p.label,
                    score: p.score,
                }),
        };
        let intent = match classified {
            Ok(intent) => intent,
            Err(error) => {
                tracing::warn!(tenant = %turn.tenant, %error, "intent head failed");
                IntentScore {
                    label: String::new(),
                    score: 0.0,
                }
            }
        };
        let candidates = match self.retrieve(turn, text, query_vector) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(tenant = %turn.tenant, %error, "retrieval failed; handing off");
                return plain(bot_error(lang, settings));
            }
        };
        let features = (!candidates.is_empty()).then(|| features_of(&candidates, 0));
        let confidence = candidates.first().map_or(0.0, |c| c.confidence);
        let explained = |decision: Decision| Explanation {
            decision,
            candidates: candidates.clone(),
            features,
        };
        let confident = confidence >= settings.answer_threshold;

        let score_of = |label: &str| {
            if intent.label == label {
                intent.score
            } else {
                0.0
            }
        };
        if !confident {
            if score_of(builtin::HANDOFF_REQUEST) >= settings.handoff_intent_threshold {
                let skill = skill_hint(&candidates, settings);
                return explained(handoff(
                    lang,
                    "handoff_intent",
                    &skill,
                    intent,
                    confidence,
                    Reply::Handoff,
                ));
            }
            if score_of(builtin::COMPLAINT) >= settings.complaint_intent_threshold {
                return explained(handoff(
                    lang,
                    "complaint",
                    &settings.complaint_skill,
                    intent,
                    confidence,
                    Reply::ComplaintHandoff,
                ));
            }
            for (label, reply) in [
                (builtin::GREETING, Reply::Greeting),
                (builtin::THANKS, Reply::Thanks),
                (builtin::GOODBYE, Reply::Goodbye),
            ] {
                if score_of(label) >= settings.social_intent_threshold {
                    return explained(Decision {
                        kind: DecisionKind::Answer,
                        faq_id: None,
                        answer: rules::reply(reply, lang).to_string(),
                        suggestions: Vec::new(),
                        intent,
                        confidence,
                        reason: label.to_string(),
                        skill_hint: None,
                        evidence: Vec::new(),
                    });
                }
            }
        }
        if confident {
            let top = &candidates[0];
            let evidence = candidates
                .iter()
                .take(5)
                .map(|c| Evidence {
                    id: c.id.clone(),
                    question: c.question.clone(),
                    answer: c.answer.clone(),
                })
                .collect();
            return explained(Decision {
                kind: DecisionKind::Answer,
                faq_id: Some(top.id.clone()),
                answer: top.answer.clone(),
                suggestions: Vec::new(),
                intent,
                confidence,
                reason: "faq_match".into(),
                skill_hint: None,
                evidence,
            });
        }
        let suggestions: Vec<String> = candidates
            .iter()
            .filter(|c| c.confidence >= settings.suggestion_threshold)
            .take(3)
            .map(|c| c.question.clone())
            .collect();
        let skill = skill_hint(&candidates, settings);
        let decision = if confidence >= settings.clarify_threshold && !suggestions.is_empty() {
            unsure(
                turn,
                lang,
                DecisionKind::Clarify,
                "low_confidence",
                intent,
                confidence,
                suggestions,
                Some(skill),
            )
        } else {
            unsure(
                turn,
                lang,
                DecisionKind::OutOfScope,
                "no_match",
                intent,
                confidence,
                Vec::new(),
                Some(skill),
            )
        };
        explained(decision)
    }

    /// The LLM step: when the bot has an LLM, the tenant allows it and `decision` is a
    /// confident FAQ answer, the LLM phrases the answer from the top hits and cites one of
    /// their ids (`reason` becomes `llm_answer`, `faq_id` the cited id). A timeout, an error or
    /// an answer citing no given id returns `decision` unchanged. Async: network only.
    pub async fn refine_with_llm(&self, turn: &Turn, decision: Decision) -> Decision {
        let text = truncate_chars(turn.text.trim(), turn.settings.max_text_chars);
        crate::llm::maybe_ground(self.llm.as_ref(), turn.settings.llm_enabled, text, decision).await
    }

    /// The whole turn from async code: [`Bot::decide`] on tokio's blocking pool, then
    /// [`Bot::refine_with_llm`]. The gateway, which runs `decide` in its own bounded pool,
    /// calls the two steps itself instead.
    pub async fn decide_async(self: Arc<Self>, turn: Turn) -> Decision {
        let bot = self.clone();
        let blocking_turn = turn.clone();
        let decision = match tokio::task::spawn_blocking(move || bot.decide(&blocking_turn)).await {
            Ok(decision) => decision,
            Err(error) => {
                tracing::error!(%error, "bot decision task failed");
                bot_error(rules::language(&turn.text), &turn.settings)
            }
        };
        self.refine_with_llm(&turn, decision).await
    }

    /// Lexical ∪ dense candidates, fused, each with its calibrated confidence (at most 10).
    fn retrieve(
        &self,
        turn: &Turn,
        text: &str,
        query_vector: &[f32],
    ) -> Result<Vec<ScoredCandidate>, BotError> {
        let lexical = self
            .index
            .search(&turn.tenant, text, LEXICAL_K, &turn.synonyms)?;
        let dense = self.tenant_dense(&turn.tenant);
        // Lexical hits the dense side lacks (index_faqs not called for them): embed them now.
        let lacking: Vec<&switchboard_knowledge::Candidate> = lexical
            .iter()
            .filter(|c| !dense.contains_key(&c.id))
            .collect();
        let mut missing = HashMap::new();
        if !lacking.is_empty() {
            let records: Vec<FaqRecord> = lacking
                .iter()
                .map(|c| FaqRecord {
                    alternates: c.alternates.clone(),
                    id: c.id.clone(),
                    ..FaqRecord::new(c.question.clone(), c.answer.clone())
                })
                .collect();
            let texts: Vec<&str> = records.iter().flat_map(DenseFaq::texts).collect();
            let vectors = self.encoder.embed_kind_blocking(TextKind::Query, &texts)?;
            let mut vectors = vectors.into_iter();
            for record in &records {
                let n = DenseFaq::texts(record).len();
                missing.insert(
                    record.id.clone(),
                    Arc::new(DenseFaq::new(record, vectors.by_ref().take(n).collect())),
                );
            }
        }
        let mut list = fuse(query_vector, text, &lexical, &dense, &missing);
        list.truncate(10);
        let calibration = turn.settings.calibration();
        for i in 0..list.len() {
            let confidence = calibration.confidence(&features_of(&list, i));
            list[i].confidence = confidence;
        }
        Ok(list)
    }
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// The first tag of a plausible top FAQ, else the default skill.
fn skill_hint(candidates: &[ScoredCandidate], settings: &crate::BotSettings) -> String {
    candidates
        .first()
        .filter(|c| c.confidence >= settings.clarify_threshold)
        .and_then(|c| c.tags.first().cloned())
        .unwrap_or_else(|| settings.default_skill.clone())
}

fn handoff(
    lang: Lang,
    reason: &str,
    skill: &str,
    intent: IntentScore,
    confidence: f32,
    reply: Reply,
) -> Decision {
    Decision {
        kind: DecisionKind::Handoff,
        faq_id: None,
        answer: rules::reply(reply, lang).to_string(),
        suggestions: Vec::new(),
        intent,
        confidence,
        reason: reason.to_string(),
        skill_hint: Some(skill.to_string()),
        evidence: Vec::new(),
    }
}

fn bot_error(lang: Lang, settings: &crate::BotSettings) -> Decision {
    let intent = IntentScore {
        label: String::new(),
        score: 0.0,
    };
    handoff(
        lang,
        "bot_error",
        &settings.default_skill,
        intent,
        0.0,
        Reply::Handoff,
    )
}

/// A clarify or out-of-scope decision, or a handoff when the customer has now been unsure
/// `unsure_handoff_after` times in a row.
#[allow(clippy::too_many_arguments)]
fn unsure(
    turn: &Turn,
    lang: Lang,
    kind: DecisionKind,
    reason: &str,
    intent: IntentScore,
    confidence: f32,
    suggestions: Vec<String>,
    skill: Option<String>,
) -> Decision {
    let settings = &turn.settings;
    if settings.unsure_handoff_after > 0
        && turn.unsure_streak.saturating_add(1) >= settings.unsure_handoff_after
    {
        let skill = skill.unwrap_or_else(|| settings.default_skill.clone());
        return handoff(
            lang,
            "unsure_twice",
            &skill,
            intent,
            confidence,
            Reply::Handoff,
        );
    }
    let reply = match (kind, reason) {
        (DecisionKind::Clarify, _) => Reply::Clarify,
        (_, "no_text") => Reply::NoText,
        _ => Reply::OutOfScope,
    };
    Decision {
        kind,
        faq_id: None,
        answer: rules::reply(reply, lang).to_string(),
        suggestions,
        intent,
        confidence,
        reason: reason.to_string(),
        skill_hint: None,
        evidence: Vec::new(),
    }
}
