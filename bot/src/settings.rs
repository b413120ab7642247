//! Tenant settings of the bot (thresholds, skills) and the LLM connection.

use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;

/// A tenant's bot settings. Every field has a default that works for the demo shop; tenants
/// override single fields in their settings JSON (`deny_unknown_fields` catches typos).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotSettings {
    /// Calibrated confidence at or above which the bot answers with the top FAQ. Raise it to
    /// trade answered questions for fewer wrong answers (see docs/bench-bot.md for the curve).
    pub answer_threshold: f32,
    /// Confidence at or above which an unsure bot suggests FAQs (clarify) instead of saying
    /// the question is out of scope.
    pub clarify_threshold: f32,
    /// A suggestion is shown only when its own confidence is at least this: buttons that
    /// are plainly unrelated make the bot look lost.
    pub suggestion_threshold: f32,
    /// Hand off when this many unsure turns (clarify or out of scope) come in a row,
    /// counting the current one. 0 turns the rule off.
    pub unsure_handoff_after: u32,
    /// Probability of the intent model's `handoff_request` at or above which the bot hands
    /// off (when retrieval is not confident; explicit phrases always hand off).
    pub handoff_intent_threshold: f32,
    /// Probability of `complaint` at or above which the bot hands off (when retrieval is
    /// not confident; angry words always hand off).
    pub complaint_intent_threshold: f32,
    /// Probability of `greeting`, `thanks` or `goodbye` at or above which the bot replies
    /// socially (when retrieval is not confident).
    pub social_intent_threshold: f32,
    /// Skill hint of a handoff with no better hint (no FAQ tag close enough).
    pub default_skill: String,
    /// Skill hint of a complaint handoff.
    pub complaint_skill: String,
    /// Skill hint of a handoff asked for by the sensitive-word policy.
    pub sensitive_skill: String,
    /// Text beyond this many characters is ignored (bounds encoder and search time).
    pub max_text_chars: usize,
    /// Whether a configured LLM may rewrite confident answers for this tenant.
    pub llm_enabled: bool,
    /// The logistic model turning retrieval features into a confidence; `None` uses the
    /// self-fitted one when `self_calibration` is on, else [`Calibration::default`] (fitted on
    /// `bot/eval/calibration.jsonl`).
    pub calibration: Option<Calibration>,
    /// Decide with the calibration the bot fits from this tenant's own alternates after every
    /// knowledge-base change ([`crate::selfcheck`]) instead of the global default. Off by
    /// default: on the demo shop and on StackFAQ the two measured within a few lines of each
    /// other, the global one slightly ahead (docs/bench-bot.md). The self-check report shows
    /// both, so an operator can compare on the tenant's own knowledge base.
    pub self_calibration: bool,
}

impl Default for BotSettings {
    fn default() -> Self {
        BotSettings {
            answer_threshold: 0.5,
            clarify_threshold: 0.25,
            suggestion_threshold: 0.1,
            unsure_handoff_after: 2,
            handoff_intent_threshold: 0.6,
            complaint_intent_threshold: 0.7,
            social_intent_threshold: 0.6,
            default_skill: "general".into(),
            complaint_skill: "complaints".into(),
            sensitive_skill: "review".into(),
            max_text_chars: 1_000,
            llm_enabled: true,
            calibration: None,
            self_calibration: false,
        }
    }
}

impl BotSettings {
    /// The calibration set in the settings, else the global default (what a turn uses when
    /// `self_calibration` is off; see `Bot::calibration_for` for the full rule).
    pub fn calibration(&self) -> Calibration {
        self.calibration.clone().unwrap_or_default()
    }
}

/// Connection to an OpenAI-compatible chat-completions endpoint. No LLM is used unless the
/// gateway configures one ([`crate::Bot::with_llm`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// Base URL including the version path, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8000/v1` for a local server.
    pub base_url: String,
    /// Model name sent in every request.
    pub model: String,
    /// Bearer key; may be empty for local servers. Never printed by `Debug`.
    #[serde(default)]
    pub api_key: String,
    /// The whole call (with the client's retries) must finish within this, else the FAQ
    /// answer is sent as is.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many knowledge hits the LLM sees (the confident top one first).
    #[serde(default = "default_max_hits")]
    pub max_hits: usize,
}

fn default_timeout_ms() -> u64 {
    3_000
}

fn default_max_hits() -> usize {
    3
}

impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &if self.api_key.is_empty() { "" } else { "***" })
            .field("timeout_ms", &self.timeout_ms)
            .field("max_hits", &self.max_hits)
            .finish()
    }
}
