//! One customer turn in, one decision out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_knowledge::Synonyms;

use crate::settings::BotSettings;

/// One customer turn as the gateway hands it to the bot.
#[derive(Debug, Clone)]
pub struct Turn {
    pub tenant: String,
    /// The customer's text, as received.
    pub text: String,
    /// How many unsure decisions (clarify or out of scope, see [`Decision::is_unsure`]) the
    /// bot made in a row in this conversation before this turn. The gateway keeps it: +1 on
    /// an unsure decision, back to 0 on any other.
    pub unsure_streak: u32,
    /// The tenant's sensitive-word policy flagged this turn and asks for a person.
    pub sensitive_flagged: bool,
    /// The tenant's settings (shared, cheap to clone).
    pub settings: Arc<BotSettings>,
    /// The tenant's synonym groups for lexical search.
    pub synonyms: Arc<Synonyms>,
    /// The intent of this turn from the tenant's own classifier (bring your own model), used
    /// instead of the intent head. Its labels act like the built-in ones of the same name
    /// (`handoff_request`, `complaint`, `greeting`, `thanks`, `goodbye`).
    pub intent: Option<IntentScore>,
}

impl Turn {
    /// A first turn with default settings and no synonyms.
    pub fn new(tenant: impl Into<String>, text: impl Into<String>) -> Turn {
        Turn {
            tenant: tenant.into(),
            text: text.into(),
            unsure_streak: 0,
            sensitive_flagged: false,
            settings: Arc::new(BotSettings::default()),
            synonyms: Arc::new(Synonyms::none()),
            intent: None,
        }
    }

    pub fn with_unsure_streak(mut self, streak: u32) -> Turn {
        self.unsure_streak = streak;
        self
    }

    pub fn with_sensitive_flag(mut self, flagged: bool) -> Turn {
        self.sensitive_flagged = flagged;
        self
    }

    pub fn with_settings(mut self, settings: Arc<BotSettings>) -> Turn {
        self.settings = settings;
        self
    }

    pub fn with_synonyms(mut self, synonyms: Arc<Synonyms>) -> Turn {
        self.synonyms = synonyms;
        self
    }

    /// The turn's intent as the tenant's own classifier sees it (see [`Turn::intent`]).
    pub fn with_intent(mut self, label: impl Into<String>, score: f32) -> Turn {
        self.intent = Some(IntentScore {
            label: label.into(),
            score,
        });
        self
    }
}

/// What the bot does with a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Send `answer` (an FAQ answer with its `faq_id`, or a short social reply without one).
    Answer,
    /// Send `answer` (a short "did you mean") and show `suggestions` as buttons.
    Clarify,
    /// Send `answer` (a short "connecting you") and queue the conversation with `reason`
    /// and `skill_hint`.
    Handoff,
    /// Send `answer`: an honest "I can't help with that here" with the offer of a person.
    OutOfScope,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Answer => "answer",
            DecisionKind::Clarify => "clarify",
            DecisionKind::Handoff => "handoff",
            DecisionKind::OutOfScope => "out_of_scope",
        }
    }
}

/// The intent model's best label for the turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    pub label: String,
    pub score: f32,
}

/// A knowledge hit kept with a decision for the optional LLM step (not serialized).
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub id: String,
    pub question: String,
    pub answer: String,
}

/// The bot's decision for one turn. Serializes as the dry-run JSON of
/// `POST /v1/tenants/{tenant}/bot/ask`:
/// `{"decision":"answer","faq_id":"zh-ship-fee","answer":"...","suggestions":[],
///   "intent":{"label":"out_of_scope","score":0.91},"confidence":0.97,"reason":"faq_match"}`
/// (`skill_hint` is present on handoffs only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(rename = "decision")]
    pub kind: DecisionKind,
    /// The FAQ answered from (answers from the knowledge base only).
    pub faq_id: Option<String>,
    /// The text to send to the customer, in the customer's language.
    pub answer: String,
    /// Up to 3 FAQ questions for clarify buttons (a click sends the question as a turn).
    pub suggestions: Vec<String>,
    /// The intent model's best label (`out_of_scope` when no built-in intent applies).
    pub intent: IntentScore,
    /// Calibrated probability that the best FAQ answers the turn (0 when retrieval did not run).
    pub confidence: f32,
    /// Why: `faq_match`, `llm_answer`, `low_confidence`, `no_match`, `no_text`, `greeting`,
    /// `thanks`, `goodbye`, `explicit_request`, `handoff_intent`, `complaint`,
    /// `unsure_twice`, `sensitive_word`, `bot_error`.
    pub reason: String,
    /// Queue or skill group the gateway may route a handoff to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_hint: Option<String>,
    /// The top knowledge hits behind an answer, for the LLM step; never serialized.
    #[serde(skip)]
    pub evidence: Vec<Evidence>,
}

impl Decision {
    /// Clarify and out of scope: the gateway adds one to the conversation's unsure streak.
    pub fn is_unsure(&self) -> bool {
        matches!(self.kind, DecisionKind::Clarify | DecisionKind::OutOfScope)
    }
}
