//! Plain Rust mirrors of the WIT types in `policies/wit/policy.wit`.
//!
//! The gateway builds these from its own records; the host converts them to the generated WIT
//! bindings at the call, so no generated type leaves this crate. All are serde types so the CLI
//! (`switchboard policy check`) and tests can read sample inputs as JSON.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Bot,
    Agent,
    System,
}

/// An image or another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    File,
}

/// An image or file sent with a message (WIT 0.2.0 and later; older policies never see it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The file name as the sender gave it (cleaned): the sender's words, not a fact.
    pub name: String,
    /// Sniffed from the content (`image/png`, `application/pdf`).
    pub media_type: String,
    #[serde(default)]
    pub size_bytes: u64,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub speaker: Speaker,
    /// Agent or customer id; empty for bot and system messages.
    #[serde(default)]
    pub author_id: String,
    /// The text, or the caption of a message with attachments (possibly empty).
    pub text: String,
    /// Unix time in milliseconds when the message was stored.
    pub at_unix_ms: u64,
    /// Images and files sent with the message, in order (WIT 0.2.0 and later).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// How many images and files; the routing input's summary of what the customer sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentCounts {
    #[serde(default)]
    pub images: u32,
    #[serde(default)]
    pub files: u32,
}

impl AttachmentCounts {
    /// Counts the attachments of the customer's messages (agents', the bot's and system
    /// messages' are not counted).
    pub fn sent_by_customer<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Self {
        let mut counts = AttachmentCounts::default();
        for attachment in messages
            .into_iter()
            .filter(|message| message.speaker == Speaker::Customer)
            .flat_map(|message| &message.attachments)
        {
            match attachment.kind {
                AttachmentKind::Image => counts.images = counts.images.saturating_add(1),
                AttachmentKind::File => counts.files = counts.files.saturating_add(1),
            }
        }
        counts
    }

    pub fn total(&self) -> u32 {
        self.images.saturating_add(self.files)
    }
}

/// A free-form CRM attribute (`region` = `north`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    /// 0 = not a VIP; the built-in strategy raises the priority with each level.
    #[serde(default)]
    pub vip_level: u8,
    #[serde(default)]
    pub crm_tags: Vec<String>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// One online agent of a skill group and their load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLoad {
    pub agent_id: String,
    pub active_conversations: u32,
    pub max_conversations: u32,
}

/// A skill group's queue at the moment of the handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillGroupSnapshot {
    pub name: String,
    pub queue_length: u32,
    #[serde(default)]
    pub online_agents: Vec<AgentLoad>,
}

/// The input of a routing policy: the conversation when the bot hands it to a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub tenant: String,
    pub conversation_id: String,
    /// `web`, `wechat`, `douyin`, `mobile`, ...
    pub channel: String,
    pub customer: Customer,
    /// BCP 47 tag (`zh-CN`, `en`).
    pub language: String,
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub intent_confidence: f32,
    /// `asked_for_human`, `low_confidence`, `complaint`, `sensitive`, ...
    pub handoff_reason: String,
    /// A skill group suggested by the bot or the knowledge base.
    #[serde(default)]
    pub skill_hint: Option<String>,
    /// Oldest first; the host passes at most [`MAX_LAST_MESSAGES`] (the newest ones).
    #[serde(default)]
    pub last_messages: Vec<Message>,
    /// The images and files the customer sent in this conversation, messages older than
    /// `last_messages` included (WIT 0.2.0 and later). The gateway counts over the
    /// conversation's newest [`ATTACHMENT_COUNT_WINDOW`] messages.
    #[serde(default)]
    pub customer_attachments: AttachmentCounts,
    #[serde(default)]
    pub queues: Vec<SkillGroupSnapshot>,
    /// The time of the handoff: policies have no clock of their own, so tests are repeatable.
    pub now_unix_ms: u64,
    /// The tenant's offset from UTC in minutes (480 for China), for opening hours.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// How many of [`Handoff::last_messages`] reach a policy.
pub const MAX_LAST_MESSAGES: usize = 20;

/// How many of a conversation's newest messages the gateway looks at to fill
/// [`Handoff::customer_attachments`] (a bound on the work of one handoff).
pub const ATTACHMENT_COUNT_WINDOW: usize = 200;

/// Where a routed conversation goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub skill_group: String,
    /// 0 (lowest) ..= 9 (highest).
    pub priority: u8,
    pub preferred_agent: Option<String>,
}

/// The answer of a routing policy (or of the built-in strategy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum RoutingDecision {
    Route(Route),
    /// Do not queue; `message` is sent to the customer.
    Reject {
        message: String,
    },
}

/// The input of a quality policy: a closed conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedConversation {
    pub tenant: String,
    pub conversation_id: String,
    pub channel: String,
    pub language: String,
    pub opened_at_unix_ms: u64,
    #[serde(default)]
    pub handed_off_at_unix_ms: Option<u64>,
    #[serde(default)]
    pub assigned_at_unix_ms: Option<u64>,
    pub closed_at_unix_ms: u64,
    pub closed_by: Speaker,
    /// Every message, oldest first.
    pub transcript: Vec<Message>,
}

/// A labelled observation about a conversation (`slow_first_response`, `forbidden_phrase`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub label: String,
    pub detail: String,
    /// The transcript index the finding is about, if any.
    pub message_index: Option<u32>,
}

/// The answer of a quality policy (or of the built-in scorer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// 0 ..= 100.
    pub score: u8,
    pub findings: Vec<Finding>,
}
