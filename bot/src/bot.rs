//! [`Bot`]: the shared pieces and the decision for one turn.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use switchboard_knowledge::{FaqRecord, KnowledgeIndex};
use switchboard_models::{builtin, Encoder, IntentHead, TextKind, UseEncoder};

use crate::calibration::{Calibration, Features, SecondOpinion};
use crate::decision::{Decision, DecisionKind, Evidence, IntentScore, Turn};
use crate::error::BotError;
use crate::llm::LlmClient;
use crate::retrieval::{
    answer_text, features_of, fuse, DenseFaq, ScoredCandidate, TenantDense, LEXICAL_K,
};
use crate::rules::{self, Lang, Reply};
use crate::selfcheck::{self, CalibrationSource, SelfCheckOptions, SelfCheckReport, TenantFit};
use crate::settings::{BotSettings, LlmSettings};

/// Texts embedded per encoder call when indexing FAQs.
const INDEX_BATCH: usize = 64;

/// Everything the decision reads, with the intent model's output and the ranked candidates:
/// what [`Bot::explain`] returns for dry runs and evaluation.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    /// The fused candidates, best first, each with its calibrated confidence (at most 10).
    pub candidates: Vec<ScoredCandidate>,
    /// Features of the top candidate (what the confidence was computed from; the second
    /// encoder's two are 0 when it did not run).
    pub features: Option<Features>,
    /// Whether the turn ran the second encoder (see [`SecondOpinion`]).
    pub second_opinion: bool,
    /// The top candidate's first-stage confidence, when a first stage scored the turn.
    pub first_stage_confidence: Option<f32>,
}

/// How a turn's candidates were scored (see [`SecondOpinion`]).
#[derive(Debug, Clone, Copy, Default)]
struct Stage {
    second_opinion: bool,
    first_stage: Option<f32>,
}

/// The calibrations a turn is scored with.
struct Scoring {
    /// The calibration in force.
    calibration: Calibration,
    /// Its first stage without the second encoder, when there is one.
    first_stage: Option<Calibration>,
}

/// The bot: shared by every tenant and every worker thread (`Send + Sync`, all methods take
/// `&self`). Build one at start-up and keep it in an `Arc`.
pub struct Bot {
    index: Arc<KnowledgeIndex>,
    encoder: Arc<Encoder>,
    default_head: Arc<IntentHead>,
    heads: RwLock<HashMap<String, Arc<IntentHead>>>,
    dense: RwLock<HashMap<String, Arc<TenantDense>>>,
    /// Self-fitted calibrations per tenant (see [`crate::selfcheck`]).
    fits: RwLock<HashMap<String, Arc<TenantFit>>>,
    /// Tenants whose FAQs changed since their last fit.
    stale: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The generic out-of-scope questions with their vectors, embedded on first use.
    negatives: OnceLock<Vec<(String, Vec<f32>)>>,
    /// The second encoder's vectors of the same questions, in the same order (empty without
    /// a second encoder).
    use_negatives: OnceLock<Vec<Vec<f32>>>,
    /// The second encoder (Universal Sentence Encoder multilingual v3): its cosines are two
    /// features of the calibration (a second opinion on whether any FAQ fits), not of the
    /// ranking. `None` when its files are not next to the main encoder's.
    use_encoder: Option<Arc<UseEncoder>>,
    /// When a turn runs the second encoder.
    second_opinion: SecondOpinion,
    self_calibration: Option<SelfCheckOptions>,
    llm: Option<LlmClient>,
    /// Most texts (questions and alternates) the dense side of one tenant holds.
    max_dense_texts: usize,
    /// Texts embedded for the dense side so far (see [`Bot::texts_embedded`]).
    texts_embedded: std::sync::atomic::AtomicU64,
}

/// Most texts (questions and alternates) embedded ahead for one tenant: about 70 MB of vectors
/// and two minutes of encoder time. FAQs written past it are still found by the lexical search,
/// and embedded when they are a turn's candidate; a tenant's upload cannot take the process's
/// memory or the change loop's time without bound.
pub const MAX_DENSE_TEXTS: usize = 20_000;

/// One hit of [`Bot::search`]: the hybrid ranking the bot answers from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchHit {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub tags: Vec<String>,
    /// The ranking score: best cosine over question and alternates + 0.3 · the answer's
    /// cosine + a little token overlap and BM25 rank.
    pub score: f32,
    /// Best cosine between the query and the FAQ's question or alternates.
    pub cosine: f32,
    /// 0-based rank in tantivy's (BM25) list, when tantivy returned the FAQ.
    pub lexical_rank: Option<usize>,
    /// Calibrated probability that this FAQ answers the query (the bot's confidence).
    pub confidence: f32,
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
    /// The second encoder is loaded from the main encoder's folder when its files are there
    /// (`use.int8.onnx`, `use.tokenizer.json`; the bundled model folder has them); see
    /// [`Bot::with_second_encoder`].
    pub fn with_default_head(
        index: Arc<KnowledgeIndex>,
        encoder: Arc<Encoder>,
        head: Arc<IntentHead>,
    ) -> Bot {
        let use_encoder = encoder
            .files()
            .model
            .parent()
            .filter(|dir| {
                dir.join(switchboard_models::use_encoder::USE_MODEL_FILE)
                    .is_file()
            })
            .and_then(|dir| match UseEncoder::load(dir) {
                Ok(u) => Some(Arc::new(u)),
                Err(error) => {
                    tracing::warn!(%error, "second encoder not usable; the bot runs without it");
                    None
                }
            });
        Bot {
            index,
            encoder,
            default_head: head,
            heads: RwLock::new(HashMap::new()),
            dense: RwLock::new(HashMap::new()),
            fits: RwLock::new(HashMap::new()),
            stale: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            negatives: OnceLock::new(),
            use_negatives: OnceLock::new(),
            use_encoder,
            second_opinion: SecondOpinion::DEFAULT,
            self_calibration: Some(SelfCheckOptions::default()),
            llm: None,
            max_dense_texts: MAX_DENSE_TEXTS,
            texts_embedded: Default::default(),
        }
    }

    /// Sets the most texts the dense side of one tenant holds ([`MAX_DENSE_TEXTS`] unless set).
    pub fn with_max_dense_texts(mut self, max: usize) -> Bot {
        self.max_dense_texts = max;
        self
    }

    /// Turns the automatic per-tenant self-calibration after every change of the dense side
    /// on (`Some`, the default with [`SelfCheckOptions::default`]) or off (`None`: every
    /// tenant without `BotSettings::calibration` uses [`Calibration::default`]).
    pub fn with_self_calibration(mut self, options: Option<SelfCheckOptions>) -> Bot {
        self.self_calibration = options;
        self
    }

    /// Uses `use_encoder` as the second encoder, or none (`None`: its two calibration
    /// features are 0 and the default calibration is
    /// [`Calibration::without_second_encoder`]). Call it before indexing any FAQ: FAQs indexed
    /// before keep the vectors (or their absence) of the encoder they were indexed with.
    pub fn with_second_encoder(mut self, use_encoder: Option<Arc<UseEncoder>>) -> Bot {
        self.use_encoder = use_encoder;
        self
    }

    /// When turns run the second encoder ([`SecondOpinion::DEFAULT`] unless set):
    /// `Always` is the one-stage decision of before.
    pub fn with_second_opinion(mut self, second_opinion: SecondOpinion) -> Bot {
        self.second_opinion = second_opinion;
        self
    }

    /// When turns run the second encoder.
    pub fn second_opinion(&self) -> SecondOpinion {
        self.second_opinion
    }

    /// The second encoder, when the bot has one.
    pub fn second_encoder(&self) -> Option<&Arc<UseEncoder>> {
        self.use_encoder.as_ref()
    }

    /// The calibration of a tenant with no calibration of its own: [`Calibration::default`]
    /// with the second encoder, [`Calibration::without_second_encoder`] without it.
    pub fn default_calibration(&self) -> Calibration {
        if self.use_encoder.is_some() {
            Calibration::default()
        } else {
            Calibration::without_second_encoder()
        }
    }

    /// The second encoder's vector of each text (empty without a second encoder).
    pub(crate) fn use_vectors(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BotError> {
        match &self.use_encoder {
            Some(u) => Ok(u.embed_blocking(texts)?),
            None => Ok(Vec::new()),
        }
    }

    /// The second encoder's vector of a turn; `None` without a second encoder or when it
    /// fails (logged: the turn goes on with the features at 0).
    fn use_query(&self, text: &str) -> Option<Vec<f32>> {
        let u = self.use_encoder.as_ref()?;
        match u.embed_one(text) {
            Ok(v) => Some(v),
            Err(error) => {
                tracing::warn!(%error, "second encoder failed on a turn");
                None
            }
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
    ///
    /// The dense side of a tenant holds at most [`MAX_DENSE_TEXTS`] texts: records that would
    /// take it past that are left out (in the order given), and found lexically only. A record
    /// whose question, alternates and answer are those already embedded keeps its vectors.
    pub fn index_faqs(&self, tenant: &str, records: &[FaqRecord]) -> Result<(), BotError> {
        let previous = self.tenant_dense(tenant);
        self.index_faqs_reusing(tenant, records, &previous)
    }

    /// [`Bot::index_faqs`], taking the vectors of unchanged records from `previous`.
    fn index_faqs_reusing(
        &self,
        tenant: &str,
        records: &[FaqRecord],
        previous: &TenantDense,
    ) -> Result<(), BotError> {
        let current = self.tenant_dense(tenant);
        let written: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let mut held: usize = current
            .values()
            .filter(|faq| !written.contains(faq.id.as_str()))
            .map(|faq| faq.vectors.len())
            .sum();
        let mut left_out = 0usize;
        let enabled: Vec<&FaqRecord> = records
            .iter()
            .filter(|r| r.enabled)
            .filter(|r| {
                let texts = DenseFaq::texts(r).len();
                let fits = held + texts <= self.max_dense_texts;
                if fits {
                    held += texts;
                } else {
                    left_out += 1;
                }
                fits
            })
            .collect();
        if left_out > 0 {
            tracing::warn!(
                tenant,
                left_out,
                max = self.max_dense_texts,
                "FAQs past the dense side's limit are found lexically only"
            );
        }
        // Only what changed goes through the encoders: a tag edited, or a cluster node rebuilding
        // a tenant's index after one FAQ changed elsewhere, costs no encoder time for the rest.
        let unchanged = |record: &FaqRecord| {
            previous.get(&record.id).filter(|old| {
                old.answer == record.answer
                    && old
                        .phrasings
                        .iter()
                        .map(String::as_str)
                        .eq(DenseFaq::texts(record))
            })
        };
        let (reused, fresh): (Vec<&FaqRecord>, Vec<&FaqRecord>) = enabled
            .iter()
            .copied()
            .partition(|record| unchanged(record).is_some());
        let texts: Vec<&str> = fresh.iter().flat_map(|r| DenseFaq::texts(r)).collect();
        self.texts_embedded
            .fetch_add(texts.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(INDEX_BATCH) {
            vectors.extend(self.encoder.embed_kind_blocking(TextKind::Query, chunk)?);
        }
        let answers: Vec<&str> = fresh.iter().map(|r| answer_text(&r.answer)).collect();
        let mut answer_vectors = Vec::with_capacity(answers.len());
        for chunk in answers.chunks(INDEX_BATCH) {
            answer_vectors.extend(self.encoder.embed_kind_blocking(TextKind::Passage, chunk)?);
        }
        let use_vectors = self.use_vectors(&texts)?;
        let mut vectors = vectors.into_iter();
        let mut answer_vectors = answer_vectors.into_iter();
        let mut use_vectors = use_vectors.into_iter();
        let mut built = Vec::with_capacity(enabled.len());
        for record in &fresh {
            let n = DenseFaq::texts(record).len();
            built.push(Arc::new(DenseFaq::new(
                record,
                vectors.by_ref().take(n).collect(),
                answer_vectors.next(),
                use_vectors.by_ref().take(n).collect(),
            )));
        }
        for record in &reused {
            if let Some(old) = unchanged(record) {
                built.push(Arc::new(DenseFaq::new(
                    record,
                    old.vectors.clone(),
                    old.answer_vector.clone(),
                    old.use_vectors.clone(),
                )));
            }
        }
        // Disabled records, and records left out (their old vectors no longer match them).
        let kept: HashSet<&str> = enabled.iter().map(|r| r.id.as_str()).collect();
        let disabled: Vec<&str> = records
            .iter()
            .filter(|r| !kept.contains(r.id.as_str()))
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
        self.recalibrate_quietly(tenant);
        Ok(())
    }

    /// Replaces the whole dense side of `tenant` (after `KnowledgeIndex::rebuild`).
    /// Records whose texts were embedded before keep their vectors.
    pub fn rebuild_faqs(&self, tenant: &str, records: &[FaqRecord]) -> Result<(), BotError> {
        let previous = self.tenant_dense(tenant);
        self.remove_tenant(tenant);
        self.index_faqs_reusing(tenant, records, &previous)
    }

    /// Removes FAQs from the dense side of `tenant`.
    pub fn remove_faqs(&self, tenant: &str, ids: &[&str]) {
        self.update_dense(tenant, |map| {
            for id in ids {
                map.remove(*id);
            }
        });
        self.recalibrate_quietly(tenant);
    }

    /// After a change: mark the tenant for a refit (cheap; the fit itself runs in
    /// [`Bot::recalibrate_stale`], [`Bot::tenant_fit`] or [`Bot::self_check`], so a burst of
    /// single-FAQ writes costs one fit, not one per write).
    fn recalibrate_quietly(&self, tenant: &str) {
        if self.self_calibration.is_none() {
            return;
        }
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string());
    }

    /// Refits every tenant whose FAQs changed since its last fit (after [`Bot::index_faqs`],
    /// [`Bot::rebuild_faqs`] or [`Bot::remove_faqs`]) and returns what each fit gave. The
    /// gateway calls this from a periodic loop on its blocking pool (e.g. with its 2 s
    /// knowledge sync): that is what makes the calibration follow every change on its own,
    /// debounced. A failed fit keeps the previous one and the tenant stays marked.
    pub fn recalibrate_stale(&self) -> Vec<(String, Result<Option<TenantFit>, BotError>)> {
        let tenants: Vec<String> = self
            .stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        tenants
            .into_iter()
            .map(|tenant| {
                // self_calibrate unmarks the tenant, and marks it again if the fit fails.
                let result = self.self_calibrate(&tenant);
                if let Err(error) = &result {
                    tracing::warn!(tenant, %error, "self-calibration failed; keeping the previous one");
                }
                (tenant, result)
            })
            .collect()
    }

    /// True when `tenant`'s FAQs changed since its last fit.
    pub fn calibration_is_stale(&self, tenant: &str) -> bool {
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tenant)
    }

    /// Refits `tenant` now when it is marked stale.
    fn refresh_if_stale(&self, tenant: &str) -> Result<(), BotError> {
        if self.calibration_is_stale(tenant) {
            self.self_calibrate(tenant)?;
        }
        Ok(())
    }

    /// Fits `tenant`'s calibration from its own alternates and the built-in generic
    /// out-of-scope questions ([`crate::selfcheck::fit`]) and uses it for the tenant's turns
    /// from now on (unless its `BotSettings::calibration` is set). With too few alternates
    /// the tenant goes back to [`Calibration::default`] and this returns `None`. Runs on its
    /// own for tenants marked by [`Bot::index_faqs`], [`Bot::rebuild_faqs`] and
    /// [`Bot::remove_faqs`] (see [`Bot::recalibrate_stale`]) unless turned off with
    /// [`Bot::with_self_calibration`]. CPU-bound (see docs/bench-bot.md).
    pub fn self_calibrate(&self, tenant: &str) -> Result<Option<TenantFit>, BotError> {
        let options = self.self_calibration.clone().unwrap_or_default();
        // Fitting now covers every change so far.
        let was_stale = self
            .stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        let fit = match selfcheck::fit(self, tenant, &options) {
            Ok(fit) => fit,
            Err(error) => {
                if was_stale {
                    self.stale
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(tenant.to_string());
                }
                return Err(error);
            }
        };
        let mut fits = self.fits.write().unwrap_or_else(|p| p.into_inner());
        match &fit {
            Some(fit) => {
                fits.insert(tenant.to_string(), Arc::new(fit.clone()));
            }
            None => {
                fits.remove(tenant);
            }
        }
        Ok(fit)
    }

    /// The tenant's self-fitted calibration, when there is one (refitted first when the
    /// tenant's FAQs changed since; a failed refit returns the previous fit).
    pub fn tenant_fit(&self, tenant: &str) -> Option<TenantFit> {
        if let Err(error) = self.refresh_if_stale(tenant) {
            tracing::warn!(tenant, %error, "self-calibration failed; keeping the previous one");
        }
        self.cached_fit(tenant)
    }

    /// The last fit, without refitting (what a turn uses: a turn never pays for a fit).
    fn cached_fit(&self, tenant: &str) -> Option<TenantFit> {
        self.fits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map(|f| (**f).clone())
    }

    /// The calibration a turn of `tenant` with `settings` uses, and where it comes from:
    /// `settings.calibration` when set, else the last self-fitted one when
    /// `settings.self_calibration` is on and a fit exists (never refitted here: turns stay
    /// cheap; see [`Bot::recalibrate_stale`]), else the default.
    pub fn calibration_for(
        &self,
        tenant: &str,
        settings: &BotSettings,
    ) -> (Calibration, CalibrationSource) {
        let (scoring, source) = self.scoring_for(tenant, settings);
        (scoring.calibration, source)
    }

    /// The first stage of the calibration [`Bot::calibration_for`] returns, when it has one
    /// (see [`SecondOpinion`]): the default's is [`Calibration::default_first_stage`], a
    /// self-fitted one's is fitted with it; a tenant's own calibration has none (the second
    /// encoder then runs on every turn when that calibration weighs its features).
    pub fn first_stage_for(&self, tenant: &str, settings: &BotSettings) -> Option<Calibration> {
        self.scoring_for(tenant, settings).0.first_stage
    }

    /// The calibration in force and its first stage, read together.
    fn scoring_for(&self, tenant: &str, settings: &BotSettings) -> (Scoring, CalibrationSource) {
        if let Some(c) = &settings.calibration {
            let scoring = Scoring {
                calibration: c.clone(),
                first_stage: None,
            };
            return (scoring, CalibrationSource::TenantSettings);
        }
        match self
            .cached_fit(tenant)
            .filter(|_| settings.self_calibration)
        {
            Some(fit) => (
                Scoring {
                    calibration: fit.calibration,
                    first_stage: fit.first_stage,
                },
                CalibrationSource::SelfFitted,
            ),
            None => (
                Scoring {
                    calibration: self.default_calibration(),
                    first_stage: Some(Calibration::default_first_stage()),
                },
                CalibrationSource::Default,
            ),
        }
    }

    /// The self-check report of `tenant` at `settings` (the tenant's current settings): how
    /// many of its own alternates, each held out and asked against the rest, the bot answers
    /// right, wrong, or not at all, and how many generic out-of-scope questions it would
    /// answer; when the self-fitted calibration exists but is not in force, the same counts
    /// with it (`self_fitted`). See [`crate::selfcheck`]. CPU-bound, well under a second for
    /// a few hundred FAQs (docs/bench-bot.md).
    pub fn self_check(
        &self,
        tenant: &str,
        settings: &BotSettings,
    ) -> Result<SelfCheckReport, BotError> {
        if self.self_calibration.is_some() {
            self.refresh_if_stale(tenant)?;
        }
        let (scoring, source) = self.scoring_for(tenant, settings);
        let options = self.self_calibration.clone().unwrap_or_default();
        let mut report = selfcheck::check(
            self,
            tenant,
            settings,
            &scoring.calibration,
            scoring.first_stage.as_ref(),
            source,
            &options,
        )?;
        if source != CalibrationSource::SelfFitted {
            if let Some(fit) = self.tenant_fit(tenant) {
                let other = selfcheck::check(
                    self,
                    tenant,
                    settings,
                    &fit.calibration,
                    fit.first_stage.as_ref(),
                    CalibrationSource::SelfFitted,
                    &options,
                )?;
                report.self_fitted = Some(selfcheck::Outcome::of(&other));
            }
        }
        Ok(report)
    }

    pub(crate) fn tenant_dense_arc(&self, tenant: &str) -> Arc<TenantDense> {
        self.tenant_dense(tenant)
    }

    /// The generic out-of-scope questions and their vectors (embedded once).
    pub(crate) fn generic_negatives(&self) -> Result<&[(String, Vec<f32>)], BotError> {
        if let Some(n) = self.negatives.get() {
            return Ok(n);
        }
        let texts = builtin::generic_out_of_scope();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(INDEX_BATCH) {
            let vectors = self.encoder.embed_kind_blocking(TextKind::Query, chunk)?;
            out.extend(chunk.iter().map(|t| t.to_string()).zip(vectors));
        }
        Ok(self.negatives.get_or_init(|| out))
    }

    /// The second encoder's vectors of [`Bot::generic_negatives`], in the same order (empty
    /// without a second encoder).
    pub(crate) fn generic_use_negatives(&self) -> Result<&[Vec<f32>], BotError> {
        if let Some(n) = self.use_negatives.get() {
            return Ok(n);
        }
        let texts = builtin::generic_out_of_scope();
        let out = self.use_vectors(&texts)?;
        Ok(self.use_negatives.get_or_init(|| out))
    }

    /// Hybrid knowledge search, ranked as the bot ranks a turn: tantivy's lexical candidates
    /// UNION the nearest FAQs by cosine over every question and alternate, by
    /// `cosine + 0.3 · answer cosine + 0.03 · token overlap + 0.01 / (BM25 rank + 2)`, each
    /// with the bot's calibrated confidence (the
    /// tenant's default settings). At most `k` hits (up to 20). CPU-bound: one encoder pass,
    /// one tantivy search and a scan; call it off the async executor. This is what a
    /// `kb/search` route and agent assist should call.
    pub fn search(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
        synonyms: &switchboard_knowledge::Synonyms,
    ) -> Result<Vec<SearchHit>, BotError> {
        let text = text.trim();
        if !rules::has_content(text) {
            return Ok(Vec::new());
        }
        let text = truncate_chars(text, BotSettings::default().max_text_chars);
        let mut vectors = self.encoder.embed_kind_blocking(TextKind::Query, &[text])?;
        let vector = vectors.pop().unwrap_or_default();
        self.search_with_embedding(tenant, text, &vector, k, synonyms)
    }

    /// [`Bot::search`] with the query's embedding (`query: ` prefix) already computed, e.g.
    /// by `switchboard_models::EncoderService`.
    pub fn search_with_embedding(
        &self,
        tenant: &str,
        text: &str,
        embedding: &[f32],
        k: usize,
        synonyms: &switchboard_knowledge::Synonyms,
    ) -> Result<Vec<SearchHit>, BotError> {
        self.search_with_settings(
            tenant,
            text,
            embedding,
            k,
            synonyms,
            &BotSettings::default(),
        )
    }

    /// [`Bot::search_with_embedding`] with the tenant's settings (their calibration decides
    /// the hits' confidences; the ranking is the same).
    pub fn search_with_settings(
        &self,
        tenant: &str,
        text: &str,
        embedding: &[f32],
        k: usize,
        synonyms: &switchboard_knowledge::Synonyms,
        settings: &BotSettings,
    ) -> Result<Vec<SearchHit>, BotError> {
        let (scoring, _) = self.scoring_for(tenant, settings);
        let (list, _) = self.ranked(
            tenant,
            text,
            embedding,
            synonyms,
            &scoring,
            self.second_opinion,
            k.min(20),
        )?;
        Ok(list
            .into_iter()
            .map(|c| SearchHit {
                id: c.id,
                question: c.question,
                answer: c.answer,
                tags: c.tags,
                score: c.fused,
                cosine: c.cosine,
                lexical_rank: c.lexical_rank,
                confidence: c.confidence,
            })
            .collect())
    }

    /// Forgets a tenant's dense side and intent head.
    pub fn remove_tenant(&self, tenant: &str) {
        self.dense
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        self.fits
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        self.stale
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
        self.remove_intent_head(tenant);
    }

    /// How many FAQ texts the dense side has embedded so far, over every tenant (a rewrite of
    /// unchanged texts embeds nothing).
    pub fn texts_embedded(&self) -> u64 {
        self.texts_embedded
            .load(std::sync::atomic::Ordering::Relaxed)
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

    /// [`Bot::explain`] with `second_opinion` instead of the bot's (e.g. `Always`, to collect
    /// calibration features with the second encoder's).
    pub fn explain_with_opinion(&self, turn: &Turn, second_opinion: SecondOpinion) -> Explanation {
        self.explain_full(turn, None, second_opinion)
    }

    fn explain_with(&self, turn: &Turn, embedding: Option<&[f32]>) -> Explanation {
        self.explain_full(turn, embedding, self.second_opinion)
    }

    fn explain_full(
        &self,
        turn: &Turn,
        embedding: Option<&[f32]>,
        second_opinion: SecondOpinion,
    ) -> Explanation {
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
            second_opinion: false,
            first_stage_confidence: None,
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
        if rules::angry_tone(text) {
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
        let (candidates, stage) = match self.retrieve(turn, text, query_vector, second_opinion) {
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
            second_opinion: stage.second_opinion,
            first_stage_confidence: stage.first_stage,
        };
        // Never confident without a candidate (a tenant may set the threshold to 0).
        let confident = confidence >= settings.answer_threshold && !candidates.is_empty();

        let score_of = |label: &str| {
            if intent.label == label {
                intent.score
            } else {
                0.0
            }
        };
        if !confident {
            // A complaint word without an angry tone: a person, unless an FAQ answers it.
            if rules::angry(text) {
                return explained(handoff(
                    lang,
                    "complaint",
                    &settings.complaint_skill,
                    intent,
                    confidence,
                    Reply::ComplaintHandoff,
                ));
            }
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
        self.refine_with(None, turn, decision).await
    }

    /// [`Bot::refine_with_llm`] with the tenant's own LLM client instead of the bot's, when
    /// the tenant has one.
    pub async fn refine_with(
        &self,
        tenant_llm: Option<&LlmClient>,
        turn: &Turn,
        decision: Decision,
    ) -> Decision {
        let text = truncate_chars(turn.text.trim(), turn.settings.max_text_chars);
        let llm = tenant_llm.or(self.llm.as_ref());
        crate::llm::maybe_ground(llm, turn.settings.llm_enabled, text, decision).await
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
        second_opinion: SecondOpinion,
    ) -> Result<(Vec<ScoredCandidate>, Stage), BotError> {
        let (scoring, _) = self.scoring_for(&turn.tenant, &turn.settings);
        self.ranked(
            &turn.tenant,
            text,
            query_vector,
            &turn.synonyms,
            &scoring,
            second_opinion,
            10,
        )
    }

    /// The fused ranking (best first, at most `keep`), each with its confidence: from the
    /// first stage alone when it is sure (see [`SecondOpinion`]), else with the second
    /// encoder's cosines from the calibration in force.
    #[allow(clippy::too_many_arguments)]
    fn ranked(
        &self,
        tenant: &str,
        text: &str,
        query_vector: &[f32],
        synonyms: &switchboard_knowledge::Synonyms,
        scoring: &Scoring,
        second_opinion: SecondOpinion,
        keep: usize,
    ) -> Result<(Vec<ScoredCandidate>, Stage), BotError> {
        let lexical = self.index.search(tenant, text, LEXICAL_K, synonyms)?;
        let dense = self.tenant_dense(tenant);
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
            let answers: Vec<&str> = records.iter().map(|r| answer_text(&r.answer)).collect();
            let answer_vectors = self
                .encoder
                .embed_kind_blocking(TextKind::Passage, &answers)?;
            let use_vectors = self.use_vectors(&texts)?;
            let mut vectors = vectors.into_iter();
            let mut answer_vectors = answer_vectors.into_iter();
            let mut use_vectors = use_vectors.into_iter();
            for record in &records {
                let n = DenseFaq::texts(record).len();
                missing.insert(
                    record.id.clone(),
                    Arc::new(DenseFaq::new(
                        record,
                        vectors.by_ref().take(n).collect(),
                        answer_vectors.next(),
                        use_vectors.by_ref().take(n).collect(),
                    )),
                );
            }
        }
        let mut list = fuse(query_vector, text, &lexical, &dense, &missing);
        list.truncate(keep);
        let mut stage = Stage::default();
        let needs_second = self.use_encoder.is_some() && scoring.calibration.uses_second_encoder();
        if let Some(first) = scoring
            .first_stage
            .as_ref()
            .filter(|_| needs_second && second_opinion != SecondOpinion::Always)
        {
            set_confidences(&mut list, first);
            let p = list.first().map_or(0.0, |c| c.confidence);
            stage.first_stage = Some(p);
            if !second_opinion.wants(p) {
                return Ok((list, stage));
            }
        }
        if needs_second {
            if let Some(use_query) = self.use_query(text) {
                for c in &mut list {
                    let faq = dense.get(&c.id).or_else(|| missing.get(&c.id));
                    c.use_cosine =
                        faq.map_or(0.0, |f| f.best_use_cosine_without(Some(&use_query), None));
                }
                stage.second_opinion = true;
            }
        }
        set_confidences(&mut list, &scoring.calibration);
        Ok((list, stage))
    }
}

/// Each candidate's confidence under `calibration`, its margins taken within the top 10 as
/// for a turn.
fn set_confidences(list: &mut [ScoredCandidate], calibration: &Calibration) {
    let features_list_len = list.len().min(10);
    for i in 0..list.len() {
        let features = if i < features_list_len {
            features_of(&list[..features_list_len], i)
        } else {
            features_of(list, i)
        };
        list[i].confidence = calibration.confidence(&features);
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
