//! # switchboard-bot
//!
//! Owns the decision for one customer turn while a conversation is in the `bot` state: answer from
//! the knowledge base, clarify with close FAQs, hand off to a person, or say honestly that the
//! question is out of scope. It reads from `models` and `knowledge` (and optionally an LLM) and
//! never sends anything itself: the gateway turns a decision into outbound messages.
//!
//! ## Using it from the gateway
//! ```no_run
//! use std::sync::Arc;
//! use switchboard_bot::{Bot, BotSettings, DecisionKind, Turn};
//! use switchboard_knowledge::{FaqRecord, KnowledgeIndex, Synonyms};
//! use switchboard_models::Encoder;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let index = Arc::new(KnowledgeIndex::open("data/kb")?);
//! let encoder = Arc::new(Encoder::load_default()?);
//! let bot = Arc::new(Bot::new(index.clone(), encoder)?); // + .with_llm(LlmSettings{..}) when configured
//! // Whenever the store's FAQs change, after index.upsert / rebuild / delete:
//! let records: Vec<FaqRecord> = vec![];
//! bot.index_faqs("acme", &records)?;        // or rebuild_faqs / remove_faqs
//! // Each customer turn, in the gateway's bounded worker pool (CPU-bound, ~10-25 ms):
//! let turn = Turn::new("acme", "运费怎么算")
//!     .with_unsure_streak(0)                      // unsure decisions in a row so far
//!     .with_sensitive_flag(false)                 // the sensitive-word policy asked for a person
//!     .with_settings(Arc::new(BotSettings::default()))
//!     .with_synonyms(Arc::new(Synonyms::parse("运费=邮费")));
//! let decision = bot.decide(&turn);
//! // Back on the async side (network only; a no-op without an LLM):
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let decision = rt.block_on(bot.refine_with_llm(&turn, decision));
//! let next_streak = if decision.is_unsure() { turn.unsure_streak + 1 } else { 0 };
//! if decision.kind == DecisionKind::Handoff { /* queue with decision.reason, decision.skill_hint */ }
//! println!("{}", serde_json::to_string(&decision)?); // the dry-run JSON of POST .../bot/ask
//! # let _ = next_streak; Ok(()) }
//! ```
//! Self-calibration, self-check and hybrid search (see [`selfcheck`]):
//! ```no_run
//! # use switchboard_bot::{Bot, BotSettings};
//! # fn f(bot: &Bot, synonyms: &switchboard_knowledge::Synonyms) -> Result<(), switchboard_bot::BotError> {
//! // index_faqs / rebuild_faqs / remove_faqs mark the tenant; a periodic loop refits every
//! // marked tenant once (turn it all off with Bot::with_self_calibration(None)):
//! for (tenant, result) in bot.recalibrate_stale() { let _ = (tenant, result); }
//! let report = bot.self_check("acme", &BotSettings::default())?; // the tenant's current settings
//! println!("{}", serde_json::to_string(&report).unwrap_or_default()); // GET .../bot/selfcheck
//! let hits = bot.search("acme", "运费怎么算", 5, synonyms)?;       // GET .../kb/search (hybrid)
//! # let _ = hits; Ok(()) }
//! ```
//! `Bot::decide_with_embedding` takes an embedding from `switchboard_models::EncoderService`
//! (batched, cached) instead of running the encoder itself; `Bot::decide_async` runs both steps
//! from async code on tokio's blocking pool. `Bot::explain` also returns the ranked candidates
//! and features (for dry runs). `eval::evaluate` / `eval::evaluate_with` run labelled lines
//! (`{"q":"...","expect":"<faq id>|handoff|none"}`, parsed by `eval::parse_eval_lines`) and
//! return an [`EvalReport`] whose `Display` is what `switchboard bot eval` prints.
//!
//! ## The decision, in order
//! 1. Sensitive-word flag on the turn → `handoff` (`sensitive_word`).
//! 2. Explicit request for a person (转人工, 人工客服, 真人, real person, human, agent, ...) →
//!    `handoff` (`explicit_request`); angry words (骗子, 垃圾, scam, worst, ...) → `handoff`
//!    (`complaint`). These win even over a matching FAQ. A complaint word without an angry
//!    tone (投诉, 差评, 举报, complaint) hands off only when no FAQ answers confidently (step 6):
//!    "快递员态度不好怎么投诉" is a question when the knowledge base answers it.
//! 3. Text with no letter, digit or ideograph → `out_of_scope` (`no_text`).
//! 4. One encoder pass (`query: ` prefix) gives the vector for the intent head (the tenant's, or
//!    the built-in one) and for retrieval.
//! 5. Retrieval: tantivy's top 20 lexical candidates UNION the 20 nearest FAQs by brute-force
//!    cosine over every question and alternate of the tenant (the dense side kept by
//!    `index_faqs`; lexical hits missing from it are embedded on the fly). Ranked by
//!    `cosine + 0.3 · answer cosine + 0.03 · token overlap + 0.01 / (BM25 rank + 2)` (the
//!    answer's first 300 characters are embedded with the `passage: ` prefix); each candidate
//!    gets a calibrated confidence. [`Bot::search`] returns this ranking (hybrid `kb/search`).
//!    The second encoder (USE multilingual v3, one pass of about 1 ms; see [`Calibration`])
//!    gives each candidate its `use_cosine` for the confidence, not for the ranking.
//! 6. Top confidence ≥ `answer_threshold` → `answer` with the FAQ (`faq_match`).
//!    Otherwise the intent model decides first: `handoff_request` → `handoff`
//!    (`handoff_intent`), `complaint` → `handoff` (`complaint`), `greeting` / `thanks` /
//!    `goodbye` → a short reply in the customer's language (`answer` without `faq_id`).
//! 7. Still unsure: confidence ≥ `clarify_threshold` → `clarify` with up to 3 FAQ questions
//!    whose own confidence ≥ `suggestion_threshold`; else `out_of_scope` (`no_match`: "I can't
//!    help with that here" + the offer of a person, never an FAQ). When this is the
//!    `unsure_handoff_after`-th unsure turn in a row (default 2), `handoff` (`unsure_twice`).
//!
//! Handoffs carry a `skill_hint`: the complaint or sensitive skill, else the first tag of a
//! plausible top FAQ, else `default_skill`. Any model or index error hands off (`bot_error`);
//! `decide` never panics on empty, huge (cut at `max_text_chars`) or punctuation-only text.
//!
//! ## Calibration
//! e5 cosines bunch up (unrelated sentences still score 0.80), so the confidence is a logistic
//! model over features of a candidate: its best cosine, its margin over the best other FAQ,
//! the share of the turn's analyzed tokens found in its question/alternates, whether it is
//! also tantivy's top hit, its answer's cosine and its ranking-score margin, and a second
//! opinion from an independent encoder (Universal Sentence Encoder multilingual v3, loaded with
//! the bundled models when its files are there): the candidate's best USE cosine and its USE
//! margin over the other candidates. USE cosines spread wider than e5's, so they tell "no FAQ
//! fits" from a loose paraphrase better. The label is "the
//! top candidate is the expected FAQ", so the output reads as the probability that answering
//! is right. Which model a turn uses ([`Bot::calibration_for`]):
//! 1. [`BotSettings::calibration`] when the tenant set one (e.g. refitted on its own labelled
//!    lines with [`eval::fit_calibration`]);
//! 2. else, when the tenant turned [`BotSettings::self_calibration`] on (off by default: it
//!    measured on par with the global model, slightly behind), its **self-fitted** model
//!    ([`selfcheck`]): each question and alternate of the tenant's FAQs held out and asked
//!    against the rest, plus built-in generic out-of-scope questions, refitted after every
//!    knowledge-base change ([`Bot::recalibrate_stale`]), with its bias moved so the default
//!    `answer_threshold` (0.5) is the operating point that maximizes `right − 1.5 · wrong` on
//!    those turns;
//! 3. else [`Calibration::default`], fitted
//!    (`examples/calibrate.rs`) on `bot/eval/calibration.jsonl`
//!    ([`Calibration::without_second_encoder`] for a bot without the USE files).
//!
//! Figures: `docs/bench-bot.md`.
//!
//! ## LLM (optional, off by default)
//! With [`Bot::with_llm`] and a tenant's `llm_enabled`, a confident FAQ answer goes to an
//! OpenAI-compatible chat-completions endpoint (async-openai) with the top 3 hits; the model
//! must answer only from them and cite their ids in brackets. A timeout (`timeout_ms`, covering
//! the client's retries), an HTTP error, `NO_ANSWER`, or a reply citing no given id (or an
//! unknown one) keeps the FAQ answer.
//!
//! ## Layout
//! - `bot.rs`: [`Bot`] (shared state, dense side, decision flow), [`Explanation`].
//! - `decision.rs`: [`Turn`], [`Decision`], [`DecisionKind`].
//! - `retrieval.rs`: the dense side and the lexical/dense fusion, [`ScoredCandidate`].
//! - `calibration.rs`: [`Features`], [`Calibration`] (logistic model and its fit).
//! - `rules.rs`: explicit-request and anger phrases, language, the bot's own replies.
//! - `llm.rs`: the grounded LLM step and citation checks.
//! - `eval.rs`: labelled-line evaluation (accuracy, abstentions and wrong answers per class)
//!   and calibration fitting.
//! - `selfcheck.rs`: per-tenant self-calibration and the self-check report.
//! - `settings.rs`: [`BotSettings`] (tenant, serde with defaults), [`LlmSettings`].

mod bot;
mod calibration;
mod decision;
mod error;
pub mod eval;
mod llm;
mod retrieval;
mod rules;
pub mod selfcheck;
mod settings;

pub use bot::{Bot, Explanation, SearchHit};
pub use calibration::{Calibration, Features, SecondOpinion};
pub use decision::{Decision, DecisionKind, Evidence, IntentScore, Turn};
pub use error::{BotError, EvalLineError};
pub use eval::{evaluate, evaluate_with, EvalLine, EvalReport};
pub use llm::{LlmClient, LlmFallback, NO_ANSWER};
pub use retrieval::ScoredCandidate;
pub use rules::{angry, angry_tone, explicit_handoff};
pub use selfcheck::{CalibrationSource, SelfCheckOptions, SelfCheckReport, TenantFit};
pub use settings::{BotSettings, LlmSettings};
