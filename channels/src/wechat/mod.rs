//! WeChat official accounts and mini-programs.
//!
//! - `GET` with `signature`, `timestamp`, `nonce`, `echostr`: URL verification, answered with
//!   `echostr` when `signature = sha1(sort(token, timestamp, nonce))`.
//! - `POST` in plain mode: the same signature, the body is the message (XML or JSON). Accepted
//!   only from apps without an `encoding_aes_key`: the signature does not cover the body.
//! - `POST` with `encrypt_type=aes` (safe or compatible mode): `msg_signature` covers token,
//!   timestamp, nonce and the body's `Encrypt`, which decrypts (see [`crypto`]) to the message;
//!   the appid inside must be this app's. An app with a key accepts only these
//!   ([`WebhookError::SafeModeRequired`] otherwise).
//! - Replays: [`push_nonce`] names the signed (timestamp, nonce) of a push; the gateway
//!   remembers it for the freshness window and refuses it when seen again
//!   ([`WebhookError::Replayed`]), since a plain-mode signature could otherwise carry any body.
//! - Messages: `text`, `image`, `miniprogrampage` (a mini-program card) and the
//!   `user_enter_tempsession` event. Dedup key: `MsgId`, or `FromUserName:CreateTime` for events.
//! - Replies: within the 5-second window the gateway answers `success` (see [`ACK_BODY`]) or a
//!   passive reply ([`WechatAdapter::passive_text_reply`], sealed with
//!   [`WechatAdapter::seal_reply`] in safe mode); everything else goes through the
//!   customer-service API with [`send::WechatSender`].

pub mod crypto;
pub mod message;
pub mod send;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::adapter::{
    ChannelAdapter, EncodedRequest, HttpMethod, ReplyContext, WebhookError, WebhookOutcome,
    WebhookRequest,
};
use crate::{ChannelKind, Content, InboundMessage, OutboundMessage};

pub use crypto::{AesKey, KeyError};
pub use message::{BodyFormat, WechatMessage};
pub use send::{WechatSender, WechatSenderConfig};

/// What WeChat expects back when there is no passive reply: it then neither retries nor tells
/// the customer the service is unavailable.
pub const ACK_BODY: &str = "success";

/// The path of the customer-service send API (the sender adds `?access_token=`).
pub const CUSTOM_SEND_PATH: &str = "/cgi-bin/message/custom/send";

/// One WeChat app's push settings, as stored by the gateway.
#[derive(Clone)]
pub struct WechatConfig {
    /// The official account's or mini-program's appid (checked inside every encrypted payload).
    pub appid: String,
    /// The push Token: the shared secret of every signature.
    pub token: String,
    /// The 43-character EncodingAESKey; `None` when the app only uses plain mode.
    pub encoding_aes_key: Option<String>,
    /// Refuse deliveries whose `timestamp` is further than this from now (`None`: no check;
    /// WeChat signs the timestamp, so a bound limits how long a captured request can be replayed).
    pub max_timestamp_skew: Option<Duration>,
}

impl std::fmt::Debug for WechatConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WechatConfig")
            .field("appid", &self.appid)
            .field("token", &"<secret>")
            .field(
                "encoding_aes_key",
                &self.encoding_aes_key.as_ref().map(|_| "<secret>"),
            )
            .field("max_timestamp_skew", &self.max_timestamp_skew)
            .finish()
    }
}

/// A decoded WeChat delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum WechatPayload {
    /// URL verification: answer `echostr` as is.
    UrlVerification { echostr: String },
    Message {
        message: WechatMessage,
        format: BodyFormat,
        encrypted: bool,
    },
}

/// The adapter for one WeChat app.
#[derive(Debug, Clone)]
pub struct WechatAdapter {
    appid: String,
    token: String,
    aes_key: Option<AesKey>,
    max_timestamp_skew: Option<Duration>,
}

impl WechatAdapter {
    pub fn new(config: WechatConfig) -> Result<Self, KeyError> {
        let aes_key = match config.encoding_aes_key.as_deref() {
            Some(key) if !key.is_empty() => Some(AesKey::from_encoding_aes_key(key)?),
            _ => None,
        };
        Ok(WechatAdapter {
            appid: config.appid,
            token: config.token,
            aes_key,
            max_timestamp_skew: config.max_timestamp_skew,
        })
    }

    pub fn appid(&self) -> &str {
        &self.appid
    }

    fn check_timestamp(&self, timestamp: &str) -> Result<(), WebhookError> {
        let Some(skew) = self.max_timestamp_skew else {
            return Ok(());
        };
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| WebhookError::StaleTimestamp)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        if now.abs_diff(sent) > skew.as_secs() {
            return Err(WebhookError::StaleTimestamp);
        }
        Ok(())
    }

    fn key(&self) -> Result<&AesKey, WebhookError> {
        self.aes_key.as_ref().ok_or_else(|| {
            WebhookError::Unsupported(
                "safe mode push but no encoding_aes_key is configured".to_owned(),
            )
        })
    }

    /// A plaintext passive text reply to `inbound`, in the format the app pushes in. Official
    /// accounts show it to the customer; mini-programs accept only `success` as a passive reply
    /// and must be answered through the customer-service API instead.
    pub fn passive_text_reply(
        &self,
        inbound: &WechatMessage,
        format: BodyFormat,
        text: &str,
        create_time: i64,
    ) -> Result<String, WebhookError> {
        let customer = inbound.require("FromUserName")?;
        let account = inbound.require("ToUserName")?;
        Ok(match format {
            BodyFormat::Xml => format!(
                "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content></xml>",
                message::cdata(customer),
                message::cdata(account),
                message::cdata(text),
            ),
            BodyFormat::Json => json!({
                "ToUserName": customer,
                "FromUserName": account,
                "CreateTime": create_time,
                "MsgType": "text",
                "Content": text,
            })
            .to_string(),
        })
    }

    /// Encrypts and signs a passive reply for safe mode, with the given 16 random bytes (tests
    /// pass the official vectors' bytes; production passes `rand::random()`). `timestamp` is
    /// ours, `nonce` is echoed from the push's query.
    pub fn seal_reply(
        &self,
        plaintext: &str,
        format: BodyFormat,
        timestamp: &str,
        nonce: &str,
        random: [u8; 16],
    ) -> Result<String, WebhookError> {
        let key = self.key()?;
        let encrypted = crypto::encrypt_with_random(key, random, plaintext, &self.appid);
        let signature = crypto::signature(&[&self.token, timestamp, nonce, &encrypted]);
        Ok(match format {
            BodyFormat::Xml => format!(
                "<xml>\n<Encrypt>{}</Encrypt>\n<MsgSignature>{}</MsgSignature>\n<TimeStamp>{timestamp}</TimeStamp>\n<Nonce>{}</Nonce>\n</xml>",
                message::cdata(&encrypted),
                message::cdata(&signature),
                message::cdata(nonce),
            ),
            BodyFormat::Json => {
                let timestamp: i64 = timestamp
                    .parse()
                    .map_err(|_| WebhookError::Encode("timestamp must be a unix time in seconds".to_owned()))?;
                json!({
                    "Encrypt": encrypted,
                    "MsgSignature": signature,
                    "TimeStamp": timestamp,
                    "Nonce": nonce,
                })
                .to_string()
            }
        })
    }

    /// Decrypts the `Encrypt` field of a safe-mode body.
    fn open_envelope(&self, body: &[u8], format: BodyFormat) -> Result<String, WebhookError> {
        let envelope = WechatMessage::parse(body, format)?;
        let encrypted = envelope.require("Encrypt")?;
        crypto::decrypt_for_app(self.key()?, encrypted, &self.appid)
    }
}

fn is_safe_mode(request: &WebhookRequest) -> bool {
    request
        .query_param("encrypt_type")
        .is_some_and(|kind| kind.eq_ignore_ascii_case("aes"))
}

/// The signed `(timestamp, nonce)` of a push (present once [`ChannelAdapter::verify`] passed):
/// what the gateway remembers to refuse a replay. `None` for URL verification (GET).
pub fn push_nonce(request: &WebhookRequest) -> Option<(&str, &str)> {
    if request.method != HttpMethod::Post {
        return None;
    }
    let timestamp = request.query_param("timestamp").filter(|t| !t.is_empty())?;
    let nonce = request.query_param("nonce").filter(|n| !n.is_empty())?;
    Some((timestamp, nonce))
}

fn required<'a>(request: &'a WebhookRequest, name: &'static str) -> Result<&'a str, WebhookError> {
    request
        .query_param(name)
        .filter(|value| !value.is_empty())
        .ok_or(WebhookError::Missing(name))
}

impl ChannelAdapter for WechatAdapter {
    type Payload = WechatPayload;

    fn kind(&self) -> ChannelKind {
        ChannelKind::Wechat
    }

    fn verify(&self, request: &WebhookRequest) -> Result<(), WebhookError> {
        let timestamp = required(request, "timestamp")?;
        let nonce = required(request, "nonce")?;
        let (given, expected) = if request.method == HttpMethod::Post && is_safe_mode(request) {
            let given = required(request, "msg_signature")?;
            let format = BodyFormat::detect(&request.body)?;
            let envelope = WechatMessage::parse(&request.body, format)?;
            let encrypted = envelope.require("Encrypt")?;
            (
                given,
                crypto::signature(&[&self.token, timestamp, nonce, encrypted]),
            )
        } else {
            let given = required(request, "signature")?;
            (given, crypto::signature(&[&self.token, timestamp, nonce]))
        };
        if !crypto::signature_matches(&expected, given) {
            return Err(WebhookError::BadSignature);
        }
        // With a key configured the app is in safe mode: a plain-mode push (whose signature
        // covers token, timestamp and nonce but not the body) is refused, whatever the request
        // says. URL verification (GET) is plain-signed in every mode and carries no message.
        if request.method == HttpMethod::Post && self.aes_key.is_some() && !is_safe_mode(request) {
            return Err(WebhookError::SafeModeRequired);
        }
        self.check_timestamp(timestamp)
    }

    fn decode(&self, request: &WebhookRequest) -> Result<WechatPayload, WebhookError> {
        if request.method == HttpMethod::Get {
            let echostr = required(request, "echostr")?;
            return Ok(WechatPayload::UrlVerification {
                echostr: echostr.to_owned(),
            });
        }
        let format = BodyFormat::detect(&request.body)?;
        if is_safe_mode(request) {
            let plaintext = self.open_envelope(&request.body, format)?;
            let inner_format = BodyFormat::detect(plaintext.as_bytes())?;
            let message = WechatMessage::parse(plaintext.as_bytes(), inner_format)?;
            return Ok(WechatPayload::Message {
                message,
                format: inner_format,
                encrypted: true,
            });
        }
        let message = WechatMessage::parse(&request.body, format)?;
        Ok(WechatPayload::Message {
            message,
            format,
            encrypted: false,
        })
    }

    fn normalize(
        &self,
        _request: &WebhookRequest,
        payload: WechatPayload,
    ) -> Result<WebhookOutcome, WebhookError> {
        let message = match payload {
            WechatPayload::UrlVerification { echostr } => {
                return Ok(WebhookOutcome::Handshake {
                    body: echostr,
                    content_type: "text/plain".to_owned(),
                })
            }
            WechatPayload::Message { message, .. } => message,
        };
        let msg_type = message.require("MsgType")?;
        let content = match msg_type {
            "text" => Content::Text {
                text: message.require("Content")?.to_owned(),
            },
            "image" => Content::Image {
                url: message.field("PicUrl").map(str::to_owned),
                media_id: message.field("MediaId").map(str::to_owned),
            },
            "miniprogrampage" => Content::Card {
                title: message.field("Title").unwrap_or_default().to_owned(),
                url: message.field("PagePath").map(str::to_owned),
                thumb_media_id: message.field("ThumbMediaId").map(str::to_owned),
            },
            "event" => match message.field("Event") {
                Some("user_enter_tempsession") => Content::SessionEntered,
                Some(event) => {
                    return Ok(WebhookOutcome::Ignored {
                        reason: format!("event `{event}` is not handled"),
                    })
                }
                None => return Err(WebhookError::Missing("Event")),
            },
            other => {
                return Ok(WebhookOutcome::Ignored {
                    reason: format!("message type `{other}` is not handled"),
                })
            }
        };
        let customer = message.require("FromUserName")?.to_owned();
        let dedup_key = match message.field("MsgId") {
            Some(msg_id) => msg_id.to_owned(),
            None => format!("{customer}:{}", message.require("CreateTime")?),
        };
        Ok(WebhookOutcome::Message {
            message: InboundMessage {
                channel: ChannelKind::Wechat,
                app: Some(self.appid.clone()),
                external_user_id: customer,
                dedup_key: Some(dedup_key),
                content,
            },
            reply_context: None,
        })
    }

    fn encode(
        &self,
        message: &OutboundMessage,
        _context: Option<&ReplyContext>,
    ) -> Result<EncodedRequest, WebhookError> {
        encode_custom_text(message)
    }
}

/// The customer-service send body for a text reply.
pub fn encode_custom_text(message: &OutboundMessage) -> Result<EncodedRequest, WebhookError> {
    if message.external_user_id.is_empty() {
        return Err(WebhookError::Encode("recipient openid is empty".to_owned()));
    }
    if message.text.trim().is_empty() {
        return Err(WebhookError::Encode("text is empty".to_owned()));
    }
    Ok(EncodedRequest {
        path: CUSTOM_SEND_PATH.to_owned(),
        body: json!({
            "touser": message.external_user_id,
            "msgtype": "text",
            "text": { "content": message.text },
        }),
    })
}
