//! A tenant's settings (`tenants.settings`, JSON): how conversations start, the bot's thresholds,
//! the tenant's time zone. Every field has a default, so `{}` is a valid bot-first tenant.

use serde::{Deserialize, Serialize};
use switchboard_bot::BotSettings;

/// Who takes a new conversation first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkMode {
    /// The bot answers every customer turn until it hands the chat to a person.
    #[default]
    BotFirst,
    /// Every conversation goes straight to the queue.
    HumanFirst,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    pub work_mode: WorkMode,
    /// Thresholds and skills of the bot (see `switchboard_bot::BotSettings`).
    pub bot: BotSettings,
    /// Offset from UTC in minutes (480 for China), given to routing policies for opening hours.
    pub utc_offset_minutes: i32,
    /// Message rate limits per customer, per agent and for the whole tenant.
    pub limits: crate::limits::TenantLimits,
    /// What happens to bot turns when the bot is overloaded.
    pub shedding: Shedding,
    /// Opening hours and holidays, applied by the built-in routing.
    pub business_hours: crate::hours::BusinessHours,
    /// The rating survey after a close.
    pub survey: SurveySettings,
    /// Limits and rules of images and files.
    pub attachments: crate::files::AttachmentSettings,
}

/// Bot work shed under backlog (human conversations are never shed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shedding {
    /// The tenant's bot turns waiting at most; past it new turns are shed.
    pub max_queued_turns: u32,
    /// A shed turn goes straight to the queue (`true`) instead of getting a "busy" reply that
    /// offers a person.
    pub to_person: bool,
}

impl Default for Shedding {
    fn default() -> Self {
        Shedding {
            max_queued_turns: 256,
            to_person: false,
        }
    }
}

impl TenantSettings {
    /// Reads stored settings; unreadable ones (never written by this version) fall back to the
    /// defaults, with a log line.
    pub fn from_stored(tenant: &str, value: &serde_json::Value) -> TenantSettings {
        serde_json::from_value(value.clone()).unwrap_or_else(|error| {
            tracing::error!(tenant, error = %error, "stored tenant settings are invalid; defaults used");
            TenantSettings::default()
        })
    }

    /// Checks settings sent by an admin.
    pub fn validate(&self) -> Result<(), String> {
        let bot = &self.bot;
        for (name, value) in [
            ("answer_threshold", bot.answer_threshold),
            ("clarify_threshold", bot.clarify_threshold),
            ("suggestion_threshold", bot.suggestion_threshold),
            ("handoff_intent_threshold", bot.handoff_intent_threshold),
            ("complaint_intent_threshold", bot.complaint_intent_threshold),
            ("social_intent_threshold", bot.social_intent_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("bot.{name} must be between 0 and 1"));
            }
        }
        if bot.clarify_threshold > bot.answer_threshold {
            return Err("bot.clarify_threshold must not exceed bot.answer_threshold".into());
        }
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return Err("utc_offset_minutes must be between -720 and 840".into());
        }
        for (name, skill) in [
            ("default_skill", &bot.default_skill),
            ("complaint_skill", &bot.complaint_skill),
            ("sensitive_skill", &bot.sensitive_skill),
        ] {
            // The same names a transfer or a routing policy may use: they end up in queue rows,
            // metrics labels and every audit entry of a settings change.
            if skill.trim().is_empty() || !is_skill_name(skill) {
                return Err(format!(
                    "bot.{name} must be a skill name of 1 to 64 bytes without control characters"
                ));
            }
        }
        if self.shedding.max_queued_turns == 0 {
            return Err("shedding.max_queued_turns must be at least 1".into());
        }
        self.business_hours.validate()?;
        self.survey.validate()?;
        self.attachments.validate()?;
        self.limits.validate()
    }
}

/// A skill group's name: 1 to 64 bytes, no control characters.
pub(crate) fn is_skill_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && !name.chars().any(char::is_control)
}

/// Each tenant's settings as this node last read them, re-read after a few seconds (a change on
/// another node arrives within that time; on this node it is forgotten at once).
pub struct TenantSettingsCache {
    store: store::Store,
    cached: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<TenantSettings>)>,
    >,
}

impl TenantSettingsCache {
    pub fn new(store: store::Store) -> Self {
        TenantSettingsCache {
            store,
            cached: Default::default(),
        }
    }

    /// The tenant's settings (defaults when it has none, or when the store cannot be read).
    pub async fn get(&self, tenant: &str) -> std::sync::Arc<TenantSettings> {
        if let Some((checked, settings)) = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            if checked.elapsed() < std::time::Duration::from_secs(2) {
                return settings.clone();
            }
        }
        let settings = match self.store.tenant(tenant).await {
            Ok(Some(record)) => {
                std::sync::Arc::new(TenantSettings::from_stored(tenant, &record.settings))
            }
            Ok(None) => std::sync::Arc::new(Default::default()),
            Err(error) => {
                tracing::error!(tenant, error = %error, "cannot read tenant settings; defaults used");
                std::sync::Arc::new(Default::default())
            }
        };
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                tenant.to_owned(),
                (std::time::Instant::now(), settings.clone()),
            );
        settings
    }

    /// Forgets the cached copy (after a change of the tenant's settings on this node).
    pub fn forget(&self, tenant: &str) {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }
}

/// Tenants' own LLM endpoints as clients, re-read after a few seconds like the settings (a
/// change on this node is forgotten at once). A tenant without one uses the node's, if any.
pub struct TenantLlmCache {
    store: store::Store,
    #[allow(clippy::type_complexity)]
    cached: std::sync::Mutex<
        std::collections::HashMap<
            String,
            (
                std::time::Instant,
                Option<(i64, std::sync::Arc<switchboard_bot::LlmClient>)>,
            ),
        >,
    >,
}

impl TenantLlmCache {
    pub fn new(store: store::Store) -> Self {
        TenantLlmCache {
            store,
            cached: Default::default(),
        }
    }

    /// The tenant's own client, if it configured an endpoint.
    pub async fn get(&self, tenant: &str) -> Option<std::sync::Arc<switchboard_bot::LlmClient>> {
        let known = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned();
        if let Some((checked, client)) = &known {
            if checked.elapsed() < std::time::Duration::from_secs(5) {
                return client.as_ref().map(|(_, client)| client.clone());
            }
        }
        let fresh = match self.store.tenant_llm(tenant).await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(tenant, %error, "cannot read the tenant's LLM endpoint; the node's is used");
                None
            }
        };
        let client = fresh.and_then(|llm| {
            // The same client while the record did not change (it keeps its connections).
            if let Some((stamp, client)) = known.and_then(|(_, client)| client) {
                if stamp == llm.updated_at {
                    return Some((stamp, client));
                }
            }
            let settings = serde_json::from_value::<switchboard_bot::LlmSettings>(serde_json::json!({
                "base_url": llm.base_url, "model": llm.model,
                "api_key": llm.api_key, "timeout_ms": llm.timeout_ms.max(1),
            }));
            match settings {
                Ok(settings) => Some((
                    llm.updated_at,
                    std::sync::Arc::new(switchboard_bot::LlmClient::new(settings)),
                )),
                Err(error) => {
                    tracing::warn!(tenant, %error, "the tenant's LLM endpoint is unusable; the node's is used");
                    None
                }
            }
        });
        let answer = client.as_ref().map(|(_, client)| client.clone());
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), (std::time::Instant::now(), client));
        answer
    }

    pub fn forget(&self, tenant: &str) {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }
}

/// The rating survey a tenant sends after a close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurveySettings {
    /// Ask customers to rate each closed conversation (the bot's alone too).
    pub enabled: bool,
    /// The question; empty: the built-in one (bilingual, with "reply 1–5" on text channels).
    pub prompt: String,
    /// The reply to a rating; empty: the built-in one.
    pub thanks: String,
}

impl Default for SurveySettings {
    fn default() -> Self {
        SurveySettings {
            enabled: true,
            prompt: String::new(),
            thanks: String::new(),
        }
    }
}

impl SurveySettings {
    /// Longest prompt or thanks a tenant may set (characters).
    pub const MAX_TEXT_CHARS: usize = 500;

    pub fn validate(&self) -> Result<(), String> {
        for (name, text) in [("prompt", &self.prompt), ("thanks", &self.thanks)] {
            if text.chars().count() > Self::MAX_TEXT_CHARS {
                return Err(format!(
                    "survey.{name} is longer than {} characters",
                    Self::MAX_TEXT_CHARS
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn prompt_for(&self, channel: &str) -> String {
        if !self.prompt.trim().is_empty() {
            return self.prompt.trim().to_owned();
        }
        if text_channel(channel) {
            "请回复数字 1–5 为本次服务打分（5 分为非常满意）· Reply 1–5 to rate this chat (5 = very satisfied)".into()
        } else {
            "请为本次服务打分 · How was this chat? Please rate it".into()
        }
    }

    pub(crate) fn thanks_text(&self) -> String {
        if self.thanks.trim().is_empty() {
            "感谢您的评价！· Thank you for your rating!".into()
        } else {
            self.thanks.trim().to_owned()
        }
    }
}

/// Channels where the customer answers the survey with a text reply instead of buttons.
fn text_channel(channel: &str) -> bool {
    matches!(channel, "wechat" | "douyin")
}
