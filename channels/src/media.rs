//! Media between Switchboard and a provider channel: what each provider lets an agent send,
//! the bytes a provider's media API answers (a bounded stream, never whole in memory), and the
//! `multipart/form-data` body of an upload.
//!
//! - WeChat (official accounts and mini-programs): customers' images arrive as a `MediaId`,
//!   fetched with `GET /cgi-bin/media/get`; agents' images go up with `POST
//!   /cgi-bin/media/upload?type=image` and out as a customer-service `image` message. The
//!   customer-service API has no file message, so only PNG, JPEG and GIF images up to 10 MB
//!   can be sent.
//! - Douyin: agents' images go up with `POST /tool/imagex/client_upload/` and out as an image
//!   private message (JPEG, PNG and WebP up to 10 MB); Douyin's image pushes carry no media to
//!   fetch, so they stay the text `[image]`.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::adapter::SendError;
use crate::ChannelKind;

/// The largest image a provider takes from us (both WeChat and Douyin say 10 MB).
pub const MAX_OUTBOUND_IMAGE_BYTES: u64 = 10 * 1024 * 1024;

/// Why an attachment cannot go to a provider's customer (the agent sees it when sending).
pub fn refusal(
    channel: ChannelKind,
    is_image: bool,
    media_type: &str,
    size: u64,
) -> Option<&'static str> {
    let types: &[&str] = match channel {
        ChannelKind::Wechat => &["image/png", "image/jpeg", "image/gif"],
        ChannelKind::Douyin => &["image/png", "image/jpeg", "image/webp"],
        ChannelKind::Web | ChannelKind::Mobile => return None,
    };
    if !is_image {
        return Some(match channel {
            ChannelKind::Wechat => "WeChat customers can only be sent images, not files",
            _ => "Douyin customers can only be sent images, not files",
        });
    }
    if !types.contains(&media_type) {
        return Some(match channel {
            ChannelKind::Wechat => "WeChat takes PNG, JPEG and GIF images only",
            _ => "Douyin takes PNG, JPEG and WebP images only",
        });
    }
    if size > MAX_OUTBOUND_IMAGE_BYTES {
        return Some("the provider takes images up to 10 MB");
    }
    None
}

/// An attachment on its way to a provider: read from the blob store, at most
/// [`MAX_OUTBOUND_IMAGE_BYTES`].
#[derive(Debug, Clone)]
pub struct OutboundMedia {
    pub name: String,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A provider's answer to a media download, before its body is read.
pub struct FetchedMedia {
    /// The file name the provider gave (`Content-Disposition`), if any.
    pub file_name: Option<String>,
    /// The declared length, if any (checked against the limit before reading).
    pub content_length: Option<u64>,
    /// The bytes, in chunks; past the limit given to the fetch the stream ends with an error.
    pub body: BoxStream<'static, Result<Bytes, SendError>>,
}

impl std::fmt::Debug for FetchedMedia {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FetchedMedia")
            .field("file_name", &self.file_name)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FetchedMedia, SendError>> + Send + 'a>>;

/// Media types a provider may answer a download with; anything else (an HTML error page, a
/// JSON error we could not read) is not media.
pub(crate) fn is_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("image/") || essence == "application/octet-stream"
}

/// The `filename` of a `Content-Disposition` header (quoted or not), without any path.
pub(crate) fn disposition_file_name(header: &str) -> Option<String> {
    let start = header.find("filename=")? + "filename=".len();
    let rest = &header[start..];
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default(),
        None => rest.split(';').next().unwrap_or_default().trim(),
    };
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    (!name.is_empty()).then(|| name.chars().take(200).collect())
}

/// The body of a response as a stream of chunks that fails once more than `max_bytes` arrived.
pub(crate) fn bounded_body(
    response: reqwest::Response,
    max_bytes: u64,
) -> BoxStream<'static, Result<Bytes, SendError>> {
    let stream = futures_util::stream::unfold(Some((response, 0u64)), move |state| async move {
        let (mut response, seen) = state?;
        match response.chunk().await {
            Ok(None) => None,
            Ok(Some(chunk)) => {
                let seen = seen + chunk.len() as u64;
                if seen > max_bytes {
                    return Some((
                        Err(SendError::Rejected(format!(
                            "the media is larger than {max_bytes} bytes"
                        ))),
                        None,
                    ));
                }
                Some((Ok(chunk), Some((response, seen))))
            }
            Err(error) => Some((
                Err(SendError::Network(format!(
                    "media body failed{}",
                    if error.is_timeout() {
                        ": timed out"
                    } else {
                        ""
                    }
                ))),
                None,
            )),
        }
    });
    Box::pin(stream)
}

/// A `multipart/form-data` body with one file part: the `content-type` header value and the
/// bytes. The boundary is random and checked against the content.
pub(crate) fn multipart_body(
    field: &str,
    file_name: &str,
    media_type: &str,
    content: &[u8],
) -> (String, Vec<u8>) {
    let boundary = loop {
        let candidate = format!("switchboard-{:032x}", rand::random::<u128>());
        if !contains(content, candidate.as_bytes()) {
            break candidate;
        }
    };
    // Quotes, backslashes and line breaks cannot end the header early.
    let safe_name: String = file_name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\'))
        .collect();
    let safe_name = if safe_name.is_empty() {
        "file".to_owned()
    } else {
        safe_name
    };
    let mut body = Vec::with_capacity(content.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{safe_name}\"\r\n\
             Content-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
            content.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_each_provider_takes_can_be_sent() {
        let mb = 1024 * 1024;
        assert_eq!(refusal(ChannelKind::Wechat, true, "image/png", mb), None);
        assert_eq!(refusal(ChannelKind::Douyin, true, "image/webp", mb), None);
        assert!(refusal(ChannelKind::Wechat, true, "image/webp", mb).is_some());
        assert!(refusal(ChannelKind::Douyin, true, "image/gif", mb).is_some());
        assert!(refusal(ChannelKind::Wechat, false, "application/pdf", mb).is_some());
        assert!(refusal(ChannelKind::Wechat, true, "image/jpeg", 11 * mb).is_some());
        assert_eq!(
            refusal(ChannelKind::Web, false, "application/pdf", 50 * mb),
            None
        );
    }

    #[test]
    fn file_names_come_from_the_disposition_without_paths() {
        assert_eq!(
            disposition_file_name("attachment; filename=\"cup.jpg\"").as_deref(),
            Some("cup.jpg")
        );
        assert_eq!(
            disposition_file_name("attachment; filename=../../etc/x.png; size=3").as_deref(),
            Some("x.png")
        );
        assert_eq!(disposition_file_name("inline"), None);
        assert!(is_media_type("image/jpeg"));
        assert!(is_media_type("application/octet-stream; x=y"));
        assert!(!is_media_type("text/html"));
        assert!(!is_media_type("application/json"));
    }

    #[test]
    fn a_multipart_body_frames_the_file_and_its_name_cannot_break_out() {
        let (content_type, body) =
            multipart_body("media", "a\"b\r\n.png", "image/png", b"\x89PNG-bytes");
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"media\"; filename=\"ab.png\"\r\n"));
        assert!(text.contains("\r\n\r\n\u{fffd}PNG-bytes\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
