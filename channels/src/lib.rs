//! # switchboard-channels
//!
//! Pure protocol code for every channel customers write on. Each channel module verifies a
//! provider's delivery, decodes it, normalizes it into one [`InboundMessage`], and encodes an
//! [`OutboundMessage`] back into what the provider expects. Nothing here touches a database or
//! knows about bots: the gateway owns routes, storage and delivery.
//!
//! Layout:
//! - [`web`]: the JSON frames of the web widget (and mobile apps) WebSocket and long-poll protocol.

pub mod web;

use serde::{Deserialize, Serialize};

/// Where a customer wrote from. Stored with the customer identity and the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Web,
    Mobile,
    Wechat,
    Douyin,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Web => "web",
            ChannelKind::Mobile => "mobile",
            ChannelKind::Wechat => "wechat",
            ChannelKind::Douyin => "douyin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "web" => Some(ChannelKind::Web),
            "mobile" => Some(ChannelKind::Mobile),
            "wechat" => Some(ChannelKind::Wechat),
            "douyin" => Some(ChannelKind::Douyin),
            _ => None,
        }
    }
}

/// What a customer sent, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text { text: String },
    Image { url: Option<String>, media_id: Option<String> },
    /// A mini-program card or a link card.
    Card { title: String, url: Option<String>, thumb_media_id: Option<String> },
    /// The customer opened a chat without writing yet (WeChat `user_enter_tempsession`,
    /// Douyin `im_enter_direct_msg`).
    SessionEntered,
}

impl Content {
    /// The text an agent or the bot reads for this content.
    pub fn display_text(&self) -> String {
        match self {
            Content::Text { text } => text.clone(),
            Content::Image { .. } => "[image]".to_owned(),
            Content::Card { title, .. } => format!("[card] {title}"),
            Content::SessionEntered => "[entered the chat]".to_owned(),
        }
    }
}

/// One customer message normalized from any channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: ChannelKind,
    /// The tenant's app on that channel (a WeChat account, a Douyin client); `None` on the web.
    pub app: Option<String>,
    /// The customer's identity on the channel (visitor id, openid, Douyin open id, app user id).
    pub external_user_id: String,
    /// The provider's id for this delivery, used to drop retried deliveries.
    pub dedup_key: Option<String>,
    pub content: Content,
}

/// One message to a customer, encoded by the channel that customer is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub channel: ChannelKind,
    pub app: Option<String>,
    pub external_user_id: String,
    pub text: String,
}
