//! WeChat push bodies: XML (official accounts, optionally mini-programs) or JSON (mini-programs).
//! Both are flat objects of named fields; we keep every top-level field as text.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

use crate::adapter::WebhookError;

/// The body format an app chose in its push settings; detected from the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    Xml,
    Json,
}

impl BodyFormat {
    pub fn detect(body: &[u8]) -> Result<Self, WebhookError> {
        match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'<') => Ok(BodyFormat::Xml),
            Some(b'{') => Ok(BodyFormat::Json),
            _ => Err(WebhookError::Malformed {
                format: "xml or json",
                detail: "body starts with neither `<` nor `{`".to_owned(),
            }),
        }
    }
}

/// One decoded push: a message or an event, with every top-level field as text.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WechatMessage {
    pub fields: BTreeMap<String, String>,
}

impl WechatMessage {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    pub fn require(&self, name: &'static str) -> Result<&str, WebhookError> {
        self.field(name).ok_or(WebhookError::Missing(name))
    }

    /// The account (official account or mini-program original id) the customer wrote to.
    pub fn to_user_name(&self) -> Option<&str> {
        self.field("ToUserName")
    }

    /// The customer's openid.
    pub fn from_user_name(&self) -> Option<&str> {
        self.field("FromUserName")
    }

    pub fn msg_type(&self) -> Option<&str> {
        self.field("MsgType")
    }

    pub fn parse(body: &[u8], format: BodyFormat) -> Result<Self, WebhookError> {
        let fields = match format {
            BodyFormat::Xml => parse_flat_xml(body)?,
            BodyFormat::Json => parse_flat_json(body)?,
        };
        Ok(WechatMessage { fields })
    }
}

fn malformed(format: &'static str, detail: impl ToString) -> WebhookError {
    WebhookError::Malformed {
        format,
        detail: detail.to_string(),
    }
}

/// Reads `<xml><Name>value</Name>...</xml>` into a map of the root's children. Nested elements
/// (a passive reply's `<Video>`) are kept as empty fields. A DOCTYPE is refused outright: no
/// entity from a push is ever expanded.
pub(crate) fn parse_flat_xml(body: &[u8]) -> Result<BTreeMap<String, String>, WebhookError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("xml", "body is not utf-8"))?;
    let mut reader = Reader::from_str(text);
    let mut fields = BTreeMap::new();
    let mut depth = 0usize;
    let mut saw_root = false;
    let mut current: Option<(String, String)> = None;
    loop {
        match reader
            .read_event()
            .map_err(|error| malformed("xml", error))?
        {
            Event::Start(start) => {
                depth += 1;
                if depth > 16 {
                    return Err(malformed("xml", "elements are nested too deeply"));
                }
                if depth == 1 {
                    if saw_root {
                        return Err(malformed("xml", "more than one root element"));
                    }
                    saw_root = true;
                } else if depth == 2 {
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    current = Some((name, String::new()));
                }
            }
            Event::Empty(empty) => {
                if depth == 1 {
                    let name = String::from_utf8_lossy(empty.name().as_ref()).into_owned();
                    fields.insert(name, String::new());
                } else if depth == 0 {
                    saw_root = true;
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value)) = current.take() {
                        fields.insert(name, value);
                    }
                }
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| malformed("xml", "unbalanced end tag"))?;
            }
            Event::Text(text) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&text.decode().map_err(|error| malformed("xml", error))?);
                }
            }
            Event::CData(data) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&data.decode().map_err(|error| malformed("xml", error))?);
                }
            }
            Event::GeneralRef(reference) if depth == 2 => {
                let resolved = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .map_err(|error| malformed("xml", error))?
                } else {
                    match &*reference {
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"amp" => Some('&'),
                        b"quot" => Some('"'),
                        b"apos" => Some('\''),
                        _ => None,
                    }
                };
                let character =
                    resolved.ok_or_else(|| malformed("xml", "unknown entity reference"))?;
                if let Some((_, value)) = current.as_mut() {
                    value.push(character);
                }
            }
            Event::DocType(_) => return Err(malformed("xml", "doctype is not allowed")),
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root || depth != 0 {
        return Err(malformed("xml", "no complete root element"));
    }
    Ok(fields)
}

/// Reads a JSON object into a map of its scalar fields as text (numbers keep their digits, so a
/// 64-bit MsgId survives).
pub(crate) fn parse_flat_json(body: &[u8]) -> Result<BTreeMap<String, String>, WebhookError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| malformed("json", error))?;
    let object = value
        .as_object()
        .ok_or_else(|| malformed("json", "body is not an object"))?;
    let mut fields = BTreeMap::new();
    for (name, value) in object {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::Bool(flag) => flag.to_string(),
            _ => continue,
        };
        fields.insert(name.clone(), text);
    }
    Ok(fields)
}

/// Wraps text in CDATA, splitting any `]]>` so the text cannot close the section early.
pub(crate) fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}
