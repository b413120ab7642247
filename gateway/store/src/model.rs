//! The store's model: what it keeps (tenants, customers, agents, conversations, messages,
//! events, policies, intent models, quality scores) and its one error type. Plain data: no
//! queries here.

use serde::{Deserialize, Serialize};
use switchboard_channels::web::SenderKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    /// The database url names no backend this store speaks.
    #[error("unsupported database url (use sqlite://PATH or postgres://...): {0}")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// PostgreSQL refused a text value it cannot store: one with a NUL character (U+0000),
    /// which SQLite stores. Bad input, not a fault of the store.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => {
                // character_not_in_repertoire, untranslatable_character
                matches!(error.code().as_deref(), Some("22021" | "22P05"))
            }
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    Bot,
    Queued,
    Assigned,
    Closed,
}

impl ConversationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Bot => "bot",
            ConversationState::Queued => "queued",
            ConversationState::Assigned => "assigned",
            ConversationState::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "bot" => Some(ConversationState::Bot),
            "queued" => Some(ConversationState::Queued),
            "assigned" => Some(ConversationState::Assigned),
            "closed" => Some(ConversationState::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    #[serde(skip)]
    pub admin_key_hash: String,
    pub settings: serde_json::Value,
    pub created_at: i64,
}

/// Contact fields as the API shows them to the tenant's admins and agents (decrypted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerProfile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

impl CustomerProfile {
    /// The longest each field may be, in characters.
    pub const LIMITS: [(&'static str, usize); 4] = [
        ("name", 200),
        ("phone", 64),
        ("email", 254),
        ("address", 500),
    ];

    /// The first field with a control character other than a tab or a line break (a NUL, an
    /// escape sequence).
    pub fn with_control_characters(&self) -> Option<&'static str> {
        let values = [&self.name, &self.phone, &self.email, &self.address];
        let bad = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
        Self::LIMITS
            .into_iter()
            .zip(values)
            .find(|(_, value)| value.as_ref().is_some_and(|v| v.chars().any(bad)))
            .map(|((field, _), _)| field)
    }

    /// The first field longer than its limit, with the limit.
    pub fn too_long(&self) -> Option<(&'static str, usize)> {
        let values = [&self.name, &self.phone, &self.email, &self.address];
        Self::LIMITS
            .into_iter()
            .zip(values)
            .find(|((_, limit), value)| value.as_ref().is_some_and(|v| v.chars().count() > *limit))
            .map(|(field, _)| field)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: String,
    pub tenant_id: String,
    pub channel: String,
    pub external_id: String,
    #[serde(flatten)]
    pub profile: CustomerProfile,
    pub attributes: CustomerAttributes,
    pub created_at: i64,
    /// Visitor tokens carry it; raising it revokes them all.
    #[serde(skip)]
    pub token_version: i64,
}

/// What routing policies know of a customer besides contact fields: set by the tenant's admins
/// (never by the customer), stored as plain JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerAttributes {
    /// 0 = not a VIP.
    #[serde(default)]
    pub vip_level: u8,
    #[serde(default)]
    pub crm_tags: Vec<String>,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl Customer {
    /// The customer as logs may show it: contact fields masked.
    pub fn masked(&self) -> String {
        let phone = self.profile.phone.as_deref().map(crate::crypto::mask_phone);
        let email = self.profile.email.as_deref().map(crate::crypto::mask_email);
        let address = self
            .profile
            .address
            .as_deref()
            .map(crate::crypto::mask_address);
        format!(
            "{} phone={phone:?} email={email:?} address={address:?}",
            self.id
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    pub id: String,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub name: String,
    pub skills: Vec<String>,
    pub max_concurrent: i64,
    #[serde(skip)]
    pub token_version: i64,
    pub created_at: i64,
}

impl Agent {
    /// Whether this agent serves a skill group (`*` serves every group).
    pub fn serves(&self, skill_group: &str) -> bool {
        self.skills
            .iter()
            .any(|skill| skill == skill_group || skill == "*")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: String,
    pub tenant_id: String,
    pub customer_id: String,
    pub channel: String,
    pub state: ConversationState,
    pub skill_group: String,
    pub priority: i64,
    pub agent_id: Option<String>,
    #[serde(skip)]
    pub queue_key: i64,
    pub handoff_reason: Option<String>,
    pub last_seq: i64,
    pub customer_acked_seq: i64,
    pub agent_acked_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub assigned_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub conversation_id: String,
    pub seq: i64,
    pub sender: SenderKind,
    pub sender_id: Option<String>,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub created_at: i64,
    /// Extras: the bot's decision (`decision`, `faq_id`, `suggestions`, `reason`, `confidence`),
    /// sensitive-word `flags`, `masked`. Absent on plain messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationEvent {
    pub id: i64,
    pub conversation_id: String,
    pub kind: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CannedReply {
    pub id: String,
    pub shortcut: String,
    pub text: String,
}

/// One queue's figures for `/metrics`.
#[derive(Debug, Clone)]
pub struct QueueSummary {
    pub tenant: String,
    pub skill_group: String,
    pub waiting: i64,
    pub oldest_wait_ms: i64,
}

/// The result of storing a message.
#[derive(Debug, Clone)]
pub struct Appended {
    pub message: MessageRecord,
    /// The conversation after the append.
    pub conversation: Conversation,
    /// The client_msg_id was already stored: `message` is the original, nothing was written.
    pub duplicate: bool,
    /// This message opened the customer's first conversation.
    pub created: bool,
    /// This message reopened a closed conversation.
    pub reopened: bool,
}

/// Where a new or reopened conversation goes first.
#[derive(Debug, Clone)]
pub struct Entry {
    pub state: ConversationState,
    pub skill_group: String,
    pub priority: i64,
}

/// Who caused a state change, for the event log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: &'static str,
    pub id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            kind: "system",
            id: None,
        }
    }
    pub fn agent(id: &str) -> Self {
        Actor {
            kind: "agent",
            id: Some(id.to_owned()),
        }
    }
    pub fn customer(id: &str) -> Self {
        Actor {
            kind: "customer",
            id: Some(id.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConversationFilter {
    pub state: Option<String>,
    pub channel: Option<String>,
    pub agent: Option<String>,
    /// Updated at or after (ms).
    pub from: Option<i64>,
    /// Updated before (ms).
    pub to: Option<i64>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A tenant's own intent classifier as stored.
#[derive(Debug, Clone)]
pub struct IntentModelRecord {
    pub tenant_id: String,
    /// `head` (trained here on the shared encoder) or `onnx` (brought by the tenant).
    pub kind: String,
    pub head: Option<Vec<u8>>,
    pub model: Option<Vec<u8>>,
    pub tokenizer: Option<Vec<u8>>,
    pub labels: Option<String>,
    /// The training or validation report (JSON).
    pub report: serde_json::Value,
    pub updated_at: i64,
}

/// One uploaded policy version (without its bytes).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyVersion {
    pub version: i64,
    pub sha256: String,
    pub size: i64,
    pub created_at: i64,
    /// A member's email, `admin key`, or empty for versions from before it was recorded.
    pub uploaded_by: String,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SensitiveListRecord {
    pub name: String,
    pub action: String,
    /// One word a line.
    #[serde(skip)]
    pub words: String,
    pub updated_at: i64,
}

/// One quality assessment of one close.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRecord {
    pub conversation_id: String,
    pub closed_at: i64,
    pub score: i64,
    pub findings: serde_json::Value,
    /// `policy` or `builtin`.
    pub decided_by: String,
    pub policy_version: Option<i64>,
    pub created_at: i64,
}

/// What a bot message does to its conversation's unsure streak (how many unsure decisions in a
/// row the bot made; the bot hands off after a tenant's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsureStreak {
    /// An unsure decision (clarify, out of scope).
    Lengthen,
    /// Any other decision.
    Reset,
    /// Not a decision (the busy reply of a shed turn).
    Keep,
}

/// What an upsert did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertCounts {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// What a member of a tenant may do in the operator console and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    /// Everything.
    Admin,
    /// The knowledge base, the bot, intents and sensitive words.
    KnowledgeManager,
    /// The live view, conversations and transfers.
    Supervisor,
    /// The agent console.
    Agent,
}

impl MemberRole {
    pub const ALL: [MemberRole; 4] = [
        MemberRole::Admin,
        MemberRole::KnowledgeManager,
        MemberRole::Supervisor,
        MemberRole::Agent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Admin => "admin",
            MemberRole::KnowledgeManager => "knowledge_manager",
            MemberRole::Supervisor => "supervisor",
            MemberRole::Agent => "agent",
        }
    }

    pub fn parse(text: &str) -> Option<MemberRole> {
        MemberRole::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

/// A member of a tenant (never with their password hash).
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub role: MemberRole,
    /// The agent record this member works the agent console as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A change to a member; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct MemberUpdate {
    pub name: Option<String>,
    pub role: Option<MemberRole>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    pub agent_id: Option<String>,
}

/// One change to record in the audit log.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub tenant_id: String,
    /// `member`, `admin_key` or `cli`.
    pub actor_kind: String,
    /// The member's email, or `admin key`.
    pub actor: String,
    /// What was done, e.g. `PATCH settings`.
    pub action: String,
    /// The path of what changed, below the tenant.
    pub target: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Before/after summary (an object).
    pub summary: serde_json::Value,
}

/// One audit log entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub status: i64,
    pub summary: serde_json::Value,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    /// Part of the actor (case-insensitive).
    pub actor: Option<String>,
    /// Part of the action (case-insensitive).
    pub action: Option<String>,
    /// Only entries with a smaller id (the `next_before` of the previous page).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// Long work a console watches: `running`, then `done` (with `result`) or `failed` (with the
/// error). A running job whose node stopped reads as `failed` with `job_lost`.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub tenant_id: String,
    /// `intents_train`, `kb_import`.
    pub kind: String,
    pub state: String,
    /// Kind-specific, e.g. `{"phase": "indexing", "done": 120, "total": 500}`.
    pub progress: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub started_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A tenant's own LLM endpoint (the key decrypted; empty when none).
#[derive(Clone, PartialEq, Eq)]
pub struct TenantLlm {
    pub base_url: String,
    pub model: String,
    pub api_key: String,
    pub timeout_ms: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for TenantLlm {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TenantLlm")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}
