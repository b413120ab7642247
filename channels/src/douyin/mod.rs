//! Douyin (抖音) private messages through the open platform's webhooks.
//!
//! - Every push carries `X-Douyin-Signature = sha1_hex(client_secret + raw body)`, checked on
//!   the raw bytes before anything is parsed.
//! - `verify_webhook` (the URL check) is answered with `{"challenge": <the same value>}`.
//! - `im_receive_msg`: the tenant's account received a private message from a customer;
//!   `im_enter_direct_msg`: a customer opened the chat; `im_send_msg`: the account sent one
//!   (our own sends carry our client key in `content.source` and are ignored as echoes).
//! - `content` is an object in some pushes and a JSON string in others: both are accepted.
//! - Dedup key: the signed body's `content.server_message_id` (Douyin retries a push three times
//!   with the same body), or a digest of the signed body when it has none. The `Msg-Id` header
//!   is not signed, so it is never trusted: a captured push replayed with a new header is still
//!   the same message.
//! - Freshness: with [`DouyinAdapter::with_max_age`], a customer message whose signed
//!   `content.create_time` (milliseconds or seconds) is further from now than the window, or
//!   missing, is refused ([`WebhookError::StaleTimestamp`]), so a captured push cannot be
//!   replayed once the window has passed.

pub mod send;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::adapter::{
    constant_time_eq, sha1_hex, ChannelAdapter, EncodedRequest, ReplyContext, WebhookError,
    WebhookOutcome, WebhookRequest,
};
use crate::{ChannelKind, Content, InboundMessage, OutboundMessage};

pub use send::{DouyinSender, DouyinSenderConfig};

pub const SIGNATURE_HEADER: &str = "x-douyin-signature";
pub const MSG_ID_HEADER: &str = "msg-id";
/// The private-message send API (the sender adds `open_id` of the tenant's account).
pub const SEND_PATH: &str = "/im/send/msg/";
/// Pushes larger than this are refused before parsing.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// One Douyin app's credentials, as stored by the gateway.
#[derive(Clone)]
pub struct DouyinConfig {
    pub client_key: String,
    pub client_secret: String,
}

impl std::fmt::Debug for DouyinConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DouyinConfig")
            .field("client_key", &self.client_key)
            .field("client_secret", &"<secret>")
            .finish()
    }
}

/// A decoded push.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DouyinEvent {
    pub event: String,
    #[serde(default)]
    pub client_key: String,
    #[serde(default)]
    pub from_user_id: String,
    #[serde(default)]
    pub to_user_id: String,
    #[serde(default)]
    pub log_id: Option<String>,
    /// Always an object after decoding, whether it came as an object or as a JSON string.
    #[serde(default)]
    pub content: Value,
}

/// What Douyin's send API needs to answer in the same conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct DouyinReplyContext {
    /// The tenant's account (the `open_id` query parameter of the send call).
    pub account_open_id: String,
    pub conversation_id: String,
    /// The customer's message being answered (`server_message_id`).
    pub msg_id: String,
}

impl DouyinReplyContext {
    pub fn to_context(&self) -> ReplyContext {
        ReplyContext(serde_json::to_value(self).unwrap_or(Value::Null))
    }

    pub fn from_context(context: &ReplyContext) -> Result<Self, WebhookError> {
        serde_json::from_value(context.0.clone()).map_err(|error| {
            WebhookError::Encode(format!("reply context is not a douyin context: {error}"))
        })
    }
}

#[derive(Debug, Clone)]
pub struct DouyinAdapter {
    config: DouyinConfig,
    max_age: Option<Duration>,
}

impl DouyinAdapter {
    /// An adapter without a freshness check (see [`DouyinAdapter::with_max_age`]).
    pub fn new(config: DouyinConfig) -> Self {
        DouyinAdapter {
            config,
            max_age: None,
        }
    }

    /// Refuse customer messages whose signed `content.create_time` is further than `max_age`
    /// from now, either way, or missing (`None`: no check).
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    fn check_fresh(&self, content: &Value) -> Result<(), WebhookError> {
        let Some(max_age) = self.max_age else {
            return Ok(());
        };
        let created = match content.get("create_time") {
            Some(Value::Number(number)) => number.as_i64(),
            Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or(WebhookError::StaleTimestamp)?;
        // Douyin sends milliseconds; accept seconds too.
        let created_ms = if created.unsigned_abs() < 100_000_000_000 {
            created.saturating_mul(1000)
        } else {
            created
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let window = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(created_ms).saturating_abs() > window {
            return Err(WebhookError::StaleTimestamp);
        }
        Ok(())
    }

    /// The signature Douyin sends for `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        sha1_hex(&[self.config.client_secret.as_bytes(), body])
    }
}

fn text_field(content: &Value, name: &str) -> Option<String> {
    match content.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

impl ChannelAdapter for DouyinAdapter {
    type Payload = DouyinEvent;

    fn kind(&self) -> ChannelKind {
        ChannelKind::Douyin
    }

    fn verify(&self, request: &WebhookRequest) -> Result<(), WebhookError> {
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(WebhookError::Missing("x-douyin-signature header"))?;
        let expected = self.sign(&request.body);
        if !constant_time_eq(
            expected.as_bytes(),
            given.trim().to_ascii_lowercase().as_bytes(),
        ) {
            return Err(WebhookError::BadSignature);
        }
        Ok(())
    }

    fn decode(&self, request: &WebhookRequest) -> Result<DouyinEvent, WebhookError> {
        let malformed = |detail: String| WebhookError::Malformed {
            format: "json",
            detail,
        };
        if request.body.len() > MAX_BODY_BYTES {
            return Err(malformed(format!(
                "body is {} bytes, more than {MAX_BODY_BYTES}",
                request.body.len()
            )));
        }
        let mut event: DouyinEvent =
            serde_json::from_slice(&request.body).map_err(|error| malformed(error.to_string()))?;
        if let Value::String(text) = &event.content {
            event.content = if text.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_str(text)
                    .map_err(|error| malformed(format!("content string is not json: {error}")))?
            };
        }
        if !(event.content.is_object() || event.content.is_null()) {
            return Err(malformed(
                "content is neither an object nor a json string".to_owned(),
            ));
        }
        Ok(event)
    }

    fn normalize(
        &self,
        request: &WebhookRequest,
        event: DouyinEvent,
    ) -> Result<WebhookOutcome, WebhookError> {
        let content = &event.content;
        match event.event.as_str() {
            "verify_webhook" => {
                let challenge = content
                    .get("challenge")
                    .cloned()
                    .ok_or(WebhookError::Missing("content.challenge"))?;
                Ok(WebhookOutcome::Handshake {
                    body: json!({ "challenge": challenge }).to_string(),
                    content_type: "application/json".to_owned(),
                })
            }
            "im_send_msg" => {
                let source = text_field(content, "source").unwrap_or_default();
                let reason = if source == self.config.client_key {
                    "echo of a message we sent"
                } else {
                    "message sent by the account outside switchboard"
                };
                Ok(WebhookOutcome::Ignored {
                    reason: reason.to_owned(),
                })
            }
            "im_receive_msg" | "im_enter_direct_msg" => {
                if text_field(content, "source")
                    .is_some_and(|source| source == self.config.client_key)
                {
                    return Ok(WebhookOutcome::Ignored {
                        reason: "echo of a message we sent".to_owned(),
                    });
                }
                if event.from_user_id.is_empty() {
                    return Err(WebhookError::Missing("from_user_id"));
                }
                self.check_fresh(content)?;
                let body = if event.event == "im_enter_direct_msg" {
                    Content::SessionEntered
                } else {
                    match text_field(content, "message_type").as_deref() {
                        Some("text") => Content::Text {
                            text: text_field(content, "text")
                                .ok_or(WebhookError::Missing("content.text"))?,
                        },
                        Some("image" | "user_local_image") => Content::Image {
                            url: text_field(content, "resource_url"),
                            media_id: text_field(content, "resource_id"),
                        },
                        Some(other) => {
                            return Ok(WebhookOutcome::Ignored {
                                reason: format!("message type `{other}` is not handled"),
                            })
                        }
                        None => return Err(WebhookError::Missing("content.message_type")),
                    }
                };
                // Only what the signature covers: the unsigned `Msg-Id` header could be changed
                // to make a replayed push look new.
                let dedup_key = text_field(content, "server_message_id")
                    .or_else(|| Some(format!("body:{}", sha1_hex(&[&request.body]))));
                let reply_context = match (
                    text_field(content, "conversation_short_id"),
                    event.to_user_id.is_empty(),
                ) {
                    (Some(conversation_id), false) => Some(
                        DouyinReplyContext {
                            account_open_id: event.to_user_id.clone(),
                            conversation_id,
                            msg_id: text_field(content, "server_message_id").unwrap_or_default(),
                        }
                        .to_context(),
                    ),
                    _ => None,
                };
                Ok(WebhookOutcome::Message {
                    message: InboundMessage {
                        channel: ChannelKind::Douyin,
                        app: Some(self.config.client_key.clone()),
                        external_user_id: event.from_user_id,
                        dedup_key,
                        content: body,
                    },
                    reply_context,
                })
            }
            other => Ok(WebhookOutcome::Ignored {
                reason: format!("event `{other}` is not handled"),
            }),
        }
    }

    fn encode(
        &self,
        message: &OutboundMessage,
        context: Option<&ReplyContext>,
    ) -> Result<EncodedRequest, WebhookError> {
        encode_text(message, context)
    }
}

/// The private-message send request for a text reply in the conversation `context` names.
pub fn encode_text(
    message: &OutboundMessage,
    context: Option<&ReplyContext>,
) -> Result<EncodedRequest, WebhookError> {
    let context = context.ok_or_else(|| {
        WebhookError::Encode("douyin replies need the conversation's reply context".to_owned())
    })?;
    let context = DouyinReplyContext::from_context(context)?;
    if message.external_user_id.is_empty() {
        return Err(WebhookError::Encode(
            "recipient open id is empty".to_owned(),
        ));
    }
    if message.text.trim().is_empty() {
        return Err(WebhookError::Encode("text is empty".to_owned()));
    }
    let open_id: String = form_urlencoded(&context.account_open_id);
    Ok(EncodedRequest {
        path: format!("{SEND_PATH}?open_id={open_id}"),
        body: json!({
            "to_user_id": message.external_user_id,
            "conversation_id": context.conversation_id,
            "msg_id": context.msg_id,
            "scene": "im_replay_msg",
            "content": { "msg_type": 1, "text": { "text": message.text } },
        }),
    })
}

/// Percent-encodes a query value (open ids are mostly URL-safe, but not guaranteed).
fn form_urlencoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
