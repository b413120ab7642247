//! The WeChat customer-service send call and its access-token cache.
//!
//! - `GET {base}/cgi-bin/token?grant_type=client_credential&appid=..&secret=..` answers
//!   `{"access_token": "..", "expires_in": 7200}`; the token is cached and refreshed a margin
//!   before it expires, and dropped and fetched again once when a send answers 40001, 40014 or
//!   42001 (another server fetched a token for the same app, or it expired early).
//! - `POST {base}/cgi-bin/message/custom/send?access_token=..` with the encoded body answers
//!   `{"errcode": 0, "errmsg": "ok"}` or an error code, classified in [`classify_errcode`].
//! - Images out: `POST {base}/cgi-bin/media/upload?access_token=..&type=image` (multipart, part
//!   `media`) answers `{"media_id": ..}`, then a custom send with `msgtype: image`.
//! - Media in: `GET {base}/cgi-bin/media/get?access_token=..&media_id=..` answers the bytes, or a
//!   JSON error (`40007` invalid media id) that is classified like a send's.

use std::time::Duration;

use serde_json::Value;

use crate::adapter::{
    ChannelSender, EncodedRequest, ReplyContext, SendError, SendFuture, SendReceipt,
};
use crate::http;
use crate::media::{self, FetchFuture, FetchedMedia, OutboundMedia};
use crate::token::{FetchedToken, TokenCache};
use crate::{ChannelKind, OutboundMessage};

/// WeChat's API host; tests and proxies point the sender elsewhere.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// Where and how to send for one WeChat app.
#[derive(Clone)]
pub struct WechatSenderConfig {
    pub base_url: String,
    pub appid: String,
    pub appsecret: String,
    /// Refresh the token this long before WeChat says it expires.
    pub refresh_margin: Duration,
    pub timeout: Duration,
}

impl WechatSenderConfig {
    pub fn new(appid: impl Into<String>, appsecret: impl Into<String>) -> Self {
        WechatSenderConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            appid: appid.into(),
            appsecret: appsecret.into(),
            refresh_margin: Duration::from_secs(300),
            timeout: http::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

impl std::fmt::Debug for WechatSenderConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WechatSenderConfig")
            .field("base_url", &self.base_url)
            .field("appid", &self.appid)
            .field("appsecret", &"<secret>")
            .finish()
    }
}

/// Sends customer-service messages for one app; hold one per app for the token cache to work.
pub struct WechatSender {
    config: WechatSenderConfig,
    client: reqwest::Client,
    tokens: TokenCache,
}

/// The temporary media upload API (the sender adds `access_token` and `type`).
pub const UPLOAD_PATH: &str = "/cgi-bin/media/upload";
/// The temporary media download API (the sender adds `access_token` and `media_id`).
pub const MEDIA_GET_PATH: &str = "/cgi-bin/media/get";
/// An error answer from the media API is read up to this size.
const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// Error codes that mean the access token is no longer valid.
const TOKEN_INVALID: [i64; 3] = [40001, 40014, 42001];

impl WechatSender {
    pub fn new(config: WechatSenderConfig) -> Self {
        let client = http::client(config.timeout);
        let tokens = TokenCache::new(config.refresh_margin);
        WechatSender {
            config,
            client,
            tokens,
        }
    }

    /// The cached access token, fetched when missing or about to expire.
    pub async fn access_token(&self) -> Result<String, SendError> {
        self.tokens.get(|| self.fetch_token()).await
    }

    /// How many times `/cgi-bin/token` was called.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    async fn fetch_token(&self) -> Result<FetchedToken, SendError> {
        let url = http::join(&self.config.base_url, "/cgi-bin/token");
        let request = self.client.get(url).query(&[
            ("grant_type", "client_credential"),
            ("appid", self.config.appid.as_str()),
            ("secret", self.config.appsecret.as_str()),
        ]);
        let answer = http::read_json(request).await?;
        if let Some(error) = errcode_error(&answer) {
            // Apart from busy and throttled, an error while fetching the token is about our
            // credentials (appid, appsecret, IP allow list): retrying will not help.
            return Err(match error {
                SendError::Provider {
                    retryable: true, ..
                }
                | SendError::RateLimited(_) => error,
                other => SendError::Credentials(other.to_string()),
            });
        }
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| SendError::BadResponse("token answer has no access_token".to_owned()))?;
        let expires_in = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(7200);
        Ok(FetchedToken {
            token: token.to_owned(),
            expires_in: Duration::from_secs(expires_in),
        })
    }

    /// Sends an encoded request, refreshing the token once if WeChat refuses it.
    pub async fn send_request(&self, request: &EncodedRequest) -> Result<SendReceipt, SendError> {
        self.with_token(|token| async move { self.post_once(request, &token).await })
            .await
    }

    /// Runs one call with the cached token; when WeChat says the token is invalid, drops it and
    /// runs the call once more with a fresh one.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, SendError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, SendError>>,
    {
        let token = self.access_token().await?;
        match call(token.clone()).await {
            Err(SendError::Provider { code, .. }) if TOKEN_INVALID.contains(&code) => {
                tracing::info!(appid = %self.config.appid, code, "wechat access token refused, refreshing");
                self.tokens.invalidate(&token).await;
                let token = self.access_token().await?;
                match call(token.clone()).await {
                    Err(SendError::Provider { code, message, .. })
                        if TOKEN_INVALID.contains(&code) =>
                    {
                        self.tokens.invalidate(&token).await;
                        Err(SendError::TokenRejected(format!(
                            "errcode {code}: {message}"
                        )))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Uploads an image as temporary media (kept 3 days by WeChat) and answers its `media_id`.
    async fn upload_image(&self, media: &OutboundMedia, token: &str) -> Result<String, SendError> {
        let (content_type, body) =
            media::multipart_body("media", &media.name, &media.media_type, &media.bytes);
        let url = http::join(&self.config.base_url, UPLOAD_PATH);
        let request = self
            .client
            .post(url)
            .query(&[("access_token", token), ("type", "image")])
            .header("content-type", content_type)
            .body(body);
        let answer = http::read_json(request).await?;
        if let Some(error) = errcode_error(&answer) {
            return Err(error);
        }
        answer
            .get("media_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| SendError::BadResponse("upload answer has no media_id".to_owned()))
    }

    /// Uploads an image and sends it to `message.external_user_id` as an `image` message.
    pub async fn send_image(
        &self,
        message: &OutboundMessage,
        media: &OutboundMedia,
    ) -> Result<SendReceipt, SendError> {
        if message.external_user_id.is_empty() {
            return Err(SendError::Rejected("recipient openid is empty".to_owned()));
        }
        if let Some(reason) = media::refusal(
            ChannelKind::Wechat,
            true,
            &media.media_type,
            media.bytes.len() as u64,
        ) {
            return Err(SendError::Rejected(reason.to_owned()));
        }
        let media_id = self
            .with_token(|token| async move { self.upload_image(media, &token).await })
            .await?;
        let request = EncodedRequest {
            path: super::CUSTOM_SEND_PATH.to_owned(),
            body: serde_json::json!({
                "touser": message.external_user_id,
                "msgtype": "image",
                "image": { "media_id": media_id },
            }),
        };
        self.send_request(&request).await
    }

    /// Starts downloading a customer's media: the status and type are checked, the body is
    /// left to stream (failing past `max_bytes`).
    pub async fn fetch(&self, media_id: &str, max_bytes: u64) -> Result<FetchedMedia, SendError> {
        if media_id.is_empty() || media_id.len() > 256 {
            return Err(SendError::Rejected(
                "media id is empty or too long".to_owned(),
            ));
        }
        self.with_token(|token| async move { self.fetch_once(media_id, &token, max_bytes).await })
            .await
    }

    async fn fetch_once(
        &self,
        media_id: &str,
        token: &str,
        max_bytes: u64,
    ) -> Result<FetchedMedia, SendError> {
        let url = http::join(&self.config.base_url, MEDIA_GET_PATH);
        let response = self
            .client
            .get(url)
            .query(&[("access_token", token), ("media_id", media_id)])
            .send()
            .await
            .map_err(|error| SendError::Network(http::transport_error(&error)))?;
        let status = response.status().as_u16();
        if status == 429 {
            return Err(SendError::RateLimited("http 429".to_owned()));
        }
        if status >= 500 {
            return Err(SendError::Unavailable { status });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(SendError::Provider {
                code: i64::from(status),
                message: format!("http {status}"),
                retryable: false,
            });
        }
        if !media::is_media_type(&content_type) {
            // WeChat answers errors as JSON (with a text or JSON type): read a bounded amount.
            let mut body = media::bounded_body(response, ERROR_BODY_BYTES);
            let mut bytes = Vec::new();
            while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
                match chunk {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(_) => break,
                }
            }
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(match errcode_error(&answer) {
                Some(error) => error,
                None => SendError::Rejected(format!(
                    "the media api answered `{}`, not media",
                    content_type.chars().take(80).collect::<String>()
                )),
            });
        }
        let content_length = response.content_length();
        if content_length.is_some_and(|length| length > max_bytes) {
            return Err(SendError::Rejected(format!(
                "the media is larger than {max_bytes} bytes"
            )));
        }
        let file_name = header("content-disposition")
            .as_deref()
            .and_then(media::disposition_file_name);
        Ok(FetchedMedia {
            file_name,
            content_length,
            body: media::bounded_body(response, max_bytes),
        })
    }

    async fn post_once(
        &self,
        request: &EncodedRequest,
        token: &str,
    ) -> Result<SendReceipt, SendError> {
        let url = http::join(&self.config.base_url, &request.path);
        let builder = self.client.post(url).query(&[("access_token", token)]);
        let answer = http::post_json(builder, &request.body).await?;
        match errcode_error(&answer) {
            Some(error) => Err(error),
            None => Ok(SendReceipt {
                provider_message_id: answer.get("msgid").map(|id| match id {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                }),
            }),
        }
    }

    /// Encodes and sends a text reply to `message.external_user_id` (an openid).
    pub async fn send_text(&self, message: &OutboundMessage) -> Result<SendReceipt, SendError> {
        let request = super::encode_custom_text(message)
            .map_err(|error| SendError::Rejected(error.to_string()))?;
        self.send_request(&request).await
    }
}

impl ChannelSender for WechatSender {
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
        _context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a> {
        Box::pin(self.send_text(message))
    }

    fn send_media<'a>(
        &'a self,
        message: &'a OutboundMessage,
        media: &'a OutboundMedia,
        _context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a> {
        Box::pin(self.send_image(message, media))
    }

    fn fetch_media<'a>(&'a self, media_id: &'a str, max_bytes: u64) -> FetchFuture<'a> {
        Box::pin(self.fetch(media_id, max_bytes))
    }
}

/// The error in a WeChat answer, if `errcode` is present and not 0.
fn errcode_error(answer: &Value) -> Option<SendError> {
    let code = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if code == 0 {
        return None;
    }
    let message = answer
        .get("errmsg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(classify_errcode(code, message))
}

/// Maps a WeChat `errcode` to a send error: which failures a retry can fix and which the agent
/// must see.
pub fn classify_errcode(code: i64, message: &str) -> SendError {
    let detail = format!("errcode {code}: {message}");
    match code {
        // System busy.
        -1 => SendError::Provider {
            code,
            message: message.to_owned(),
            retryable: true,
        },
        // Reply window (48 hours after the customer's last message) closed, or its message
        // quota used up: nothing can be sent until the customer writes again.
        45015 | 45047 => SendError::ReplyWindowExpired(detail),
        // Invalid openid, not following, blocked us.
        40003 | 43004 | 43019 => SendError::InvalidRecipient(detail),
        // Daily quota, per-minute frequency limit.
        45009 | 45011 => SendError::RateLimited(detail),
        // Invalid appid, invalid appsecret, IP not on the allow list, API not authorized.
        40013 | 40125 | 40164 | 41004 | 48001 => SendError::Credentials(detail),
        _ => SendError::Provider {
            code,
            message: message.to_owned(),
            retryable: false,
        },
    }
}
