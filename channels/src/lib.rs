//! # switchboard-channels
//!
//! Pure protocol code for every channel customers write on. Each channel module verifies a
//! provider's delivery, decodes it, normalizes it into one [`InboundMessage`], and encodes an
//! [`OutboundMessage`] back into what the provider expects. Nothing here touches a database or
//! knows about bots: the gateway owns routes, storage and delivery.
//!
//! Layout:
//! - [`web`]: the JSON frames of the web widget (and mobile apps) WebSocket and long-poll protocol.
//! - [`adapter`]: the shape every webhook channel follows, the webhook request the gateway hands
//!   in, what comes out, and the typed send errors the outbox retries on (or not).
//! - [`wechat`]: official accounts and mini-programs (signatures, safe-mode AES, XML and JSON,
//!   passive replies, customer-service send with a cached access token).
//! - [`douyin`]: Douyin private messages (webhook signature, challenge, IM events, send).
//! - [`mobile`]: bearer JWTs from a tenant's app server and the nonce cache that refuses replays;
//!   mobile apps then speak the [`web`] frames.
//! - [`media`]: images between agents or customers and a provider (what each takes, downloads
//!   as bounded streams, upload bodies).
//! - [`conformance`]: the one fixture check every webhook adapter passes.
//! - [`outbound_guard`]: where the gateway may call a tenant-configured URL (a mobile push hook):
//!   https only, no redirects, and only global addresses after DNS resolution.
//!
//! ## The adapter shape
//! The gateway owns the routes; an adapter owns the protocol. For every delivery the gateway
//! builds one [`adapter::WebhookRequest`] (method, query, lowercased headers, raw body bytes) and
//! calls, in order ([`adapter::ChannelAdapter::handle`] does all three):
//! 1. `verify`: signatures (and timestamps where the provider signs them) over the raw bytes;
//! 2. `decode`: bytes into the provider's payload (decrypting when the provider encrypts);
//! 3. `normalize`: the payload into a [`adapter::WebhookOutcome`]: a handshake to answer, one
//!    [`InboundMessage`] with its dedup key (plus an opaque [`adapter::ReplyContext`] to keep
//!    for replies), or an ignored delivery (our own echo, an event with nothing for a
//!    conversation).
//!
//! Replies go the other way: `encode` turns an [`OutboundMessage`] (and the reply context)
//! into the provider's send request, and each channel's sender performs that call against a
//! configurable base URL, answering [`adapter::SendError`]s that say whether a retry can help.

pub mod adapter;
pub mod conformance;
pub mod douyin;
mod http;
pub mod media;
pub mod mobile;
pub mod outbound_guard;
mod token;
pub mod web;
pub mod wechat;

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
    Text {
        text: String,
    },
    Image {
        url: Option<String>,
        media_id: Option<String>,
    },
    /// A mini-program card or a link card.
    Card {
        title: String,
        url: Option<String>,
        thumb_media_id: Option<String>,
    },
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
