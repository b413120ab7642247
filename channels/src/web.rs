//! The web widget protocol: JSON text frames over a WebSocket (`/v1/web/ws`) or the long-poll
//! fallback (`/v1/web/messages`, `/v1/web/poll`). Mobile apps speak the same frames.
//! Every frame is documented in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

/// The largest text a customer may send in one message.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// A frame from the customer's client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// A message; `client_msg_id` makes a resend idempotent.
    /// `attachments`: ids of the customer's own uploads (`POST /v1/web/attachments`); the text
    /// is then a caption and may be empty.
    Send {
        client_msg_id: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        attachments: Vec<String>,
    },
    /// The client has shown every message up to `seq`.
    Ack {
        seq: i64,
    },
    /// Send again every message after `last_seq` (0: the whole conversation).
    Resume {
        last_seq: i64,
    },
    Typing,
    /// The customer rates their last closed conversation: `score` 1 to 5, an optional comment
    /// (answered with `rated`, or an error `bad_rating` / `nothing_to_rate`).
    Rate {
        score: i64,
        #[serde(default)]
        comment: String,
    },
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    Customer,
    Bot,
    Agent,
    System,
}

impl SenderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Customer => "customer",
            SenderKind::Bot => "bot",
            SenderKind::Agent => "agent",
            SenderKind::System => "system",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "customer" => Some(SenderKind::Customer),
            "bot" => Some(SenderKind::Bot),
            "agent" => Some(SenderKind::Agent),
            "system" => Some(SenderKind::System),
            _ => None,
        }
    }
}

/// A frame to the customer's client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The message with `client_msg_id` is stored as `seq` of `conversation_id` (a customer's
    /// first message learns its conversation here).
    Receipt {
        client_msg_id: String,
        conversation_id: String,
        seq: i64,
    },
    Message {
        seq: i64,
        conversation_id: String,
        sender: SenderKind,
        text: String,
        /// RFC 3339.
        at: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        client_msg_id: Option<String>,
        /// FAQ questions the bot offers as buttons (a click sends the question as a message).
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        suggestions: Vec<String>,
        /// For agents and admins only: the bot's decision on bot messages, sensitive-word
        /// `flags` and `masked` on customer and agent messages.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        meta: Option<serde_json::Value>,
        /// On the survey the bot sends after a close: show rating buttons (1 to `scale`) and
        /// answer with a `rate` frame.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        survey: Option<Survey>,
        /// Images and files, each with a download link valid for an hour.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        attachments: Vec<AttachmentView>,
    },
    /// The rating was stored.
    Rated { score: i64 },
    /// The customer's place in the queue (1: next to be served).
    Queue { position: i64 },
    /// The other side is typing.
    Typing,
    Error {
        code: String,
        message: String,
        /// With `rate_limited`: when the refused frame may be sent again.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
}

/// An attachment of a message as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub id: String,
    /// `image` or `file`.
    pub kind: String,
    pub name: String,
    /// Decided from the content when it was uploaded.
    pub media_type: String,
    /// Bytes.
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub height: Option<i64>,
    /// A signed, short-lived link (relative to the server) to the file.
    pub url: String,
    /// The same for a JPEG thumbnail (images).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thumbnail_url: Option<String>,
}

/// The rating a survey message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    /// The highest score (the lowest is 1).
    pub scale: i64,
}

/// Why a client frame was refused. The socket stays open after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not valid json: {0}")]
    InvalidJson(String),
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    #[error("frame does not match its type: {0}")]
    BadShape(String),
    #[error("text is empty")]
    EmptyText,
    #[error("text is {0} bytes, more than the {MAX_TEXT_BYTES} allowed")]
    TooLarge(usize),
    #[error("client_msg_id must be 1 to 128 characters, without control characters")]
    BadClientMessageId,
    #[error("binary frames are not part of this protocol")]
    Binary,
}

impl FrameError {
    /// The stable machine-readable code sent in the error frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::InvalidJson(_) | FrameError::BadShape(_) | FrameError::Binary => {
                "bad_frame"
            }
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::EmptyText => "empty_text",
            FrameError::TooLarge(_) => "too_large",
            FrameError::BadClientMessageId => "bad_client_msg_id",
        }
    }

    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::Error {
            code: self.code().to_owned(),
            message: self.to_string(),
            retry_after_ms: None,
        }
    }
}

const CLIENT_TYPES: [&str; 5] = ["send", "ack", "resume", "typing", "rate"];

/// Decode one text frame of a tagged JSON protocol whose frame types are `known_types`:
/// size first, then JSON, then the type, then the frame's shape.
pub fn decode_frame<T: serde::de::DeserializeOwned>(
    raw: &str,
    known_types: &[&str],
) -> Result<T, FrameError> {
    // A frame far over the text limit is refused before it is parsed.
    if raw.len() > MAX_TEXT_BYTES + 1024 {
        return Err(FrameError::TooLarge(raw.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|error| FrameError::InvalidJson(error.to_string()))?;
    let frame_type = value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    if !known_types.contains(&frame_type.as_str()) {
        return Err(FrameError::UnknownType(frame_type));
    }
    serde_json::from_value(value).map_err(|error| FrameError::BadShape(error.to_string()))
}

/// Decode one text frame from a customer client, checking sizes and required fields.
pub fn decode_client_frame(raw: &str) -> Result<ClientFrame, FrameError> {
    let frame: ClientFrame = decode_frame(raw, &CLIENT_TYPES)?;
    if let ClientFrame::Send {
        client_msg_id,
        text,
        attachments,
    } = &frame
    {
        check_message(client_msg_id, text, attachments.len())?;
    }
    Ok(frame)
}

/// The checks every customer message passes, whatever transport carried it.
pub fn check_send(client_msg_id: &str, text: &str) -> Result<(), FrameError> {
    check_message(client_msg_id, text, 0)
}

/// [`check_send`] for a message with `attachments`: its text is a caption and may be empty.
pub fn check_message(
    client_msg_id: &str,
    text: &str,
    attachments: usize,
) -> Result<(), FrameError> {
    if client_msg_id.is_empty()
        || client_msg_id.chars().count() > 128
        || client_msg_id.chars().any(char::is_control)
    {
        return Err(FrameError::BadClientMessageId);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    if text.trim().is_empty() && attachments == 0 {
        return Err(FrameError::EmptyText);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_client_frame() {
        assert_eq!(
            decode_client_frame(r#"{"type":"send","client_msg_id":"c1","text":"你好"}"#),
            Ok(ClientFrame::Send {
                client_msg_id: "c1".into(),
                text: "你好".into(),
                attachments: vec![],
            })
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"ack","seq":3}"#),
            Ok(ClientFrame::Ack { seq: 3 })
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"resume","last_seq":0}"#),
            Ok(ClientFrame::Resume { last_seq: 0 })
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"typing"}"#),
            Ok(ClientFrame::Typing)
        );
        assert_eq!(
            decode_client_frame(r#"{"type":"rate","score":5}"#),
            Ok(ClientFrame::Rate {
                score: 5,
                comment: String::new()
            })
        );
    }

    #[test]
    fn refuses_bad_frames_with_stable_codes() {
        let code = |raw: &str| decode_client_frame(raw).unwrap_err().code();
        assert_eq!(code("not json"), "bad_frame");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"text":"no type"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"ack","seq":"x"}"#), "bad_frame");
        assert_eq!(
            code(r#"{"type":"send","client_msg_id":"c\u0000","text":"hi"}"#),
            "bad_client_msg_id"
        );
        assert_eq!(
            code(r#"{"type":"send","client_msg_id":"c","text":"  "}"#),
            "empty_text"
        );
        assert_eq!(
            code(r#"{"type":"send","client_msg_id":"","text":"hi"}"#),
            "bad_client_msg_id"
        );
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        let frame = serde_json::json!({"type":"send","client_msg_id":"c","text":long}).to_string();
        assert_eq!(code(&frame), "too_large");
        let exactly = "a".repeat(MAX_TEXT_BYTES);
        let frame =
            serde_json::json!({"type":"send","client_msg_id":"c","text":exactly}).to_string();
        assert!(decode_client_frame(&frame).is_ok());
        // Attachments alone need no text; without them an empty text is refused.
        assert!(
            decode_client_frame(r#"{"type":"send","client_msg_id":"c","attachments":["a1"]}"#)
                .is_ok()
        );
        assert_eq!(code(r#"{"type":"send","client_msg_id":"c"}"#), "empty_text");
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let frame = ServerFrame::Message {
            seq: 2,
            conversation_id: "c".into(),
            sender: SenderKind::Agent,
            text: "hi".into(),
            at: "2026-01-01T00:00:00Z".into(),
            client_msg_id: None,
            suggestions: vec![],
            meta: None,
            survey: None,
            attachments: vec![],
        };
        assert_eq!(
            serde_json::to_value(&frame).unwrap(),
            serde_json::json!({"type":"message","seq":2,"conversation_id":"c","sender":"agent","text":"hi","at":"2026-01-01T00:00:00Z"})
        );
    }
}
