//! The shape every webhook channel follows (WeChat, Douyin), the request the gateway hands in,
//! the outcomes that come back, and the typed errors of verification and delivery.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::media::{FetchFuture, OutboundMedia};
use crate::{ChannelKind, InboundMessage, OutboundMessage};

/// The HTTP method of a webhook delivery: providers verify URLs with GET and push with POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
}

/// One delivery as the gateway received it. Header names are lowercase; the body is the raw
/// bytes, because signatures are computed over exactly those bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookRequest {
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, with = "body_as_text")]
    pub body: Vec<u8>,
}

impl WebhookRequest {
    pub fn post(body: impl Into<Vec<u8>>) -> Self {
        WebhookRequest {
            method: HttpMethod::Post,
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn get() -> Self {
        WebhookRequest {
            method: HttpMethod::Get,
            ..Default::default()
        }
    }

    pub fn with_query(mut self, name: &str, value: &str) -> Self {
        self.query.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds a header; the name is lowercased as HTTP header names are case-insensitive.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Fixtures keep bodies as readable text; bodies that are not UTF-8 never occur in them.
mod body_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&String::from_utf8_lossy(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(deserializer)?.into_bytes())
    }
}

/// What the provider needs again to reply to this customer, beyond the customer's id
/// (Douyin: the conversation and message ids). Opaque to the gateway: store it with the
/// conversation (the latest one wins) and hand it back to `encode`/`send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplyContext(pub serde_json::Value);

/// What one verified delivery amounts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// The provider is checking the URL: answer 200 with exactly this body and store nothing.
    Handshake { body: String, content_type: String },
    /// A customer message to admit (dedup, persist, then answer the provider).
    Message {
        message: InboundMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_context: Option<ReplyContext>,
    },
    /// Nothing for a conversation (our own echo, an event we do not handle): answer 200, store nothing.
    Ignored { reason: String },
}

/// Why a delivery was refused. Every variant is the caller's or the network's fault, never a
/// panic; the gateway answers 400 or 401 (see [`WebhookError::is_authentication`]) and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp is invalid or outside the allowed window")]
    StaleTimestamp,
    #[error("body is not valid {format}: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error("encrypted payload is invalid: {0}")]
    Decrypt(String),
    #[error("message was encrypted for app `{found}`, not this app")]
    WrongApp { found: String },
    #[error("unsupported delivery: {0}")]
    Unsupported(String),
    #[error("outbound message cannot be encoded: {0}")]
    Encode(String),
    /// The app has an `encoding_aes_key`, so only safe-mode (encrypted, body-signed) pushes are
    /// accepted: a plain-mode signature does not cover the body.
    #[error("this app accepts only safe-mode (encrypted) pushes")]
    SafeModeRequired,
    /// The signed (timestamp, nonce) of this delivery was already seen within the freshness
    /// window: a replay.
    #[error("this delivery was already received (replayed nonce)")]
    Replayed,
}

impl WebhookError {
    /// True when the delivery failed authentication (answer 401): a forged or tampered request.
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            WebhookError::BadSignature
                | WebhookError::StaleTimestamp
                | WebhookError::WrongApp { .. }
                | WebhookError::Decrypt(_)
                | WebhookError::SafeModeRequired
                | WebhookError::Replayed
        )
    }

    /// A stable machine-readable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Missing(_) => "missing_field",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::StaleTimestamp => "stale_timestamp",
            WebhookError::Malformed { .. } => "malformed",
            WebhookError::Decrypt(_) => "decrypt_failed",
            WebhookError::WrongApp { .. } => "wrong_app",
            WebhookError::Unsupported(_) => "unsupported",
            WebhookError::Encode(_) => "encode_failed",
            WebhookError::SafeModeRequired => "safe_mode_required",
            WebhookError::Replayed => "replayed",
        }
    }
}

/// The provider request that delivers one outbound message: a path under the provider's base
/// URL (query included, access token excluded: the sender adds it) and a JSON body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedRequest {
    pub path: String,
    pub body: serde_json::Value,
}

/// One webhook channel: verify, decode, normalize, encode. Implementations are pure (no IO),
/// cheap to call and hold the app's credentials.
pub trait ChannelAdapter: Send + Sync {
    /// The provider's payload after decoding (and decrypting).
    type Payload: std::fmt::Debug;

    fn kind(&self) -> ChannelKind;

    /// Checks signatures (and timestamps where signed) over the raw request.
    fn verify(&self, request: &WebhookRequest) -> Result<(), WebhookError>;

    /// Turns the raw request into the provider's payload; call only after `verify`.
    fn decode(&self, request: &WebhookRequest) -> Result<Self::Payload, WebhookError>;

    /// Turns a payload into what the gateway acts on. `request` gives headers such as dedup ids.
    fn normalize(
        &self,
        request: &WebhookRequest,
        payload: Self::Payload,
    ) -> Result<WebhookOutcome, WebhookError>;

    /// Turns a reply into the provider's send request.
    fn encode(
        &self,
        message: &OutboundMessage,
        context: Option<&ReplyContext>,
    ) -> Result<EncodedRequest, WebhookError>;

    /// verify, decode and normalize in one call: what a webhook route does.
    fn handle(&self, request: &WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
        self.verify(request)?;
        let payload = self.decode(request)?;
        self.normalize(request, payload)
    }
}

/// Why a send failed, classified so the outbox knows whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Connection refused, reset, timed out: retry with backoff.
    #[error("network error: {0}")]
    Network(String),
    /// The provider answered 5xx: retry with backoff.
    #[error("provider unavailable: http {status}")]
    Unavailable { status: u16 },
    /// The provider throttled us (HTTP 429 or a quota errcode): retry later.
    #[error("rate limited by the provider: {0}")]
    RateLimited(String),
    /// The access token was refused again right after a refresh: retry later.
    #[error("access token rejected after refresh: {0}")]
    TokenRejected(String),
    /// The app's credentials are wrong (appsecret, client secret, IP allow list): fix the config.
    #[error("credentials rejected by the provider: {0}")]
    Credentials(String),
    /// The provider's reply window for this customer has closed (WeChat errcode 45015): the
    /// agent must see that this reply was not delivered.
    #[error("reply window expired: {0}")]
    ReplyWindowExpired(String),
    /// The customer id is not valid for this app (WeChat 40003, unfollowed, blocked).
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    /// The message itself cannot be sent (not encodable, missing reply context).
    #[error("message cannot be sent: {0}")]
    Rejected(String),
    /// Any other provider error code: permanent unless the provider says busy.
    #[error("provider error {code}: {message}")]
    Provider {
        code: i64,
        message: String,
        retryable: bool,
    },
    /// The provider answered 2xx with a body we cannot read: retry, it is usually transient.
    #[error("unreadable provider response: {0}")]
    BadResponse(String),
    /// A tenant's push hook points where the gateway may not call: not https, or a loopback,
    /// private, link-local or otherwise non-global address (checked after DNS resolution).
    #[error("the push hook's destination is not allowed")]
    PushDestinationRefused,
    /// A tenant's push hook call failed (transport error, redirect, or a non-2xx answer). The
    /// message is the same whatever the remote answered, so the delivery state the tenant sees
    /// is no oracle on the remote; the details go to the operator's log only.
    #[error("the push hook call failed")]
    PushFailed { retryable: bool },
}

impl SendError {
    /// True when retrying the same send later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Network(_)
            | SendError::Unavailable { .. }
            | SendError::RateLimited(_)
            | SendError::TokenRejected(_)
            | SendError::BadResponse(_) => true,
            SendError::Provider { retryable, .. } | SendError::PushFailed { retryable } => {
                *retryable
            }
            SendError::Credentials(_)
            | SendError::ReplyWindowExpired(_)
            | SendError::InvalidRecipient(_)
            | SendError::Rejected(_)
            | SendError::PushDestinationRefused => false,
        }
    }

    /// A stable machine-readable code for the delivery state the console shows.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::Network(_) => "network",
            SendError::Unavailable { .. } => "provider_unavailable",
            SendError::RateLimited(_) => "rate_limited",
            SendError::TokenRejected(_) => "token_rejected",
            SendError::Credentials(_) => "bad_credentials",
            SendError::ReplyWindowExpired(_) => "reply_window_expired",
            SendError::InvalidRecipient(_) => "invalid_recipient",
            SendError::Rejected(_) => "rejected",
            SendError::Provider { .. } => "provider_error",
            SendError::BadResponse(_) => "bad_response",
            SendError::PushDestinationRefused => "push_destination_refused",
            SendError::PushFailed { .. } => "push_failed",
        }
    }
}

/// What a successful send returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The provider's id for the sent message, when it gives one.
    pub provider_message_id: Option<String>,
}

/// A boxed future, so senders can sit behind `Arc<dyn ChannelSender>` in the gateway's outbox.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<SendReceipt, SendError>> + Send + 'a>>;

/// Performs the provider's HTTP send call for one outbound message.
pub trait ChannelSender: Send + Sync {
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
        context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a>;

    /// Sends one image to `message.external_user_id` (uploaded to the provider first; the
    /// message's text is not sent). Channels without media refuse.
    fn send_media<'a>(
        &'a self,
        message: &'a OutboundMessage,
        media: &'a OutboundMedia,
        context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a> {
        let _ = (message, media, context);
        Box::pin(async { Err(SendError::Rejected("this channel cannot send media".into())) })
    }

    /// Starts downloading a customer's media by the provider's id; the body stream fails past
    /// `max_bytes`. Channels without a media API refuse.
    fn fetch_media<'a>(&'a self, media_id: &'a str, max_bytes: u64) -> FetchFuture<'a> {
        let _ = (media_id, max_bytes);
        Box::pin(async { Err(SendError::Rejected("this channel has no media api".into())) })
    }
}

/// Compares two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Lowercase hex of a SHA-1 digest over the concatenated parts.
pub(crate) fn sha1_hex(parts: &[&[u8]]) -> String {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0x0f) as usize] as char);
    }
    out
}
