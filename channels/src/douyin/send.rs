//! The Douyin private-message send call and its client-token cache.
//!
//! - `POST {base}/oauth/client_token/` with `{"client_key", "client_secret", "grant_type":
//!   "client_credential"}` answers `{"data": {"access_token", "expires_in", "error_code"}}`.
//! - `POST {base}/im/send/msg/?open_id=<account>` with header `access-token` and the encoded
//!   body answers `{"data": {"error_code": 0, "msg_id": ..}}` (older) or `{"err_no": 0, ..}`.
//!
//! - Images out: `POST {base}/tool/imagex/client_upload/` (multipart, part `image`) answers
//!   `{"data": {"image_id": ..}}`; the private message then carries `msg_type: 2` with
//!   `image.media_id`.
//!
//! The token source is the app's client token; accounts whose send scope needs the account
//! owner's user token can swap it in through [`DouyinSender::with_static_token`].

use std::time::Duration;

use serde_json::{json, Value};

use crate::adapter::{
    ChannelSender, EncodedRequest, ReplyContext, SendError, SendFuture, SendReceipt,
};
use crate::http;
use crate::media::{self, OutboundMedia};
use crate::token::{FetchedToken, TokenCache};
use crate::{ChannelKind, OutboundMessage};

pub const DEFAULT_BASE_URL: &str = "https://open.douyin.com";

/// Douyin's image upload (the answer's `data.image_id` goes into an image message).
pub const IMAGE_UPLOAD_PATH: &str = "/tool/imagex/client_upload/";

/// Codes that mean the token is invalid or expired: drop it and fetch again once.
const TOKEN_INVALID: [i64; 4] = [2190002, 2190008, 28001003, 28001008];
/// "System busy": retry later.
const BUSY: [i64; 2] = [-1, 2100004];

#[derive(Clone)]
pub struct DouyinSenderConfig {
    pub base_url: String,
    pub client_key: String,
    pub client_secret: String,
    pub refresh_margin: Duration,
    pub timeout: Duration,
}

impl DouyinSenderConfig {
    pub fn new(client_key: impl Into<String>, client_secret: impl Into<String>) -> Self {
        DouyinSenderConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            client_key: client_key.into(),
            client_secret: client_secret.into(),
            refresh_margin: Duration::from_secs(300),
            timeout: http::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }
}

impl std::fmt::Debug for DouyinSenderConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DouyinSenderConfig")
            .field("base_url", &self.base_url)
            .field("client_key", &self.client_key)
            .field("client_secret", &"<secret>")
            .finish()
    }
}

pub struct DouyinSender {
    config: DouyinSenderConfig,
    client: reqwest::Client,
    tokens: TokenCache,
    static_token: Option<String>,
}

impl DouyinSender {
    pub fn new(config: DouyinSenderConfig) -> Self {
        let client = http::client(config.timeout);
        let tokens = TokenCache::new(config.refresh_margin);
        DouyinSender {
            config,
            client,
            tokens,
            static_token: None,
        }
    }

    /// Uses a token the gateway manages (an account owner's user token) instead of the client token.
    pub fn with_static_token(mut self, token: impl Into<String>) -> Self {
        self.static_token = Some(token.into());
        self
    }

    pub async fn client_token(&self) -> Result<String, SendError> {
        if let Some(token) = &self.static_token {
            return Ok(token.clone());
        }
        self.tokens.get(|| self.fetch_token()).await
    }

    /// How many times `/oauth/client_token/` was called.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    async fn fetch_token(&self) -> Result<FetchedToken, SendError> {
        let url = http::join(&self.config.base_url, "/oauth/client_token/");
        let body = json!({
            "client_key": self.config.client_key,
            "client_secret": self.config.client_secret,
            "grant_type": "client_credential",
        });
        let answer = http::post_json(self.client.post(url), &body).await?;
        if let Some(error) = answer_error(&answer) {
            return Err(match error {
                SendError::Provider {
                    retryable: true, ..
                } => error,
                other => SendError::Credentials(other.to_string()),
            });
        }
        let data = answer.get("data").unwrap_or(&answer);
        let token = data
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                SendError::BadResponse("client token answer has no access_token".to_owned())
            })?;
        let expires_in = data
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(7200);
        Ok(FetchedToken {
            token: token.to_owned(),
            expires_in: Duration::from_secs(expires_in),
        })
    }

    pub async fn send_request(&self, request: &EncodedRequest) -> Result<SendReceipt, SendError> {
        self.with_token(|token| async move { self.post_once(request, &token).await })
            .await
    }

    /// Runs one call with the token; a refused client token is dropped and fetched once more.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, SendError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, SendError>>,
    {
        let token = self.client_token().await?;
        match call(token.clone()).await {
            Err(SendError::Provider { code, .. })
                if TOKEN_INVALID.contains(&code) && self.static_token.is_none() =>
            {
                tracing::info!(client_key = %self.config.client_key, code, "douyin client token refused, refreshing");
                self.tokens.invalidate(&token).await;
                let token = self.client_token().await?;
                match call(token.clone()).await {
                    Err(SendError::Provider { code, message, .. })
                        if TOKEN_INVALID.contains(&code) =>
                    {
                        self.tokens.invalidate(&token).await;
                        Err(SendError::TokenRejected(format!("error {code}: {message}")))
                    }
                    other => other,
                }
            }
            Err(SendError::Provider { code, message, .. }) if TOKEN_INVALID.contains(&code) => {
                Err(SendError::TokenRejected(format!("error {code}: {message}")))
            }
            other => other,
        }
    }

    /// Uploads an image to Douyin's image service and answers its id.
    async fn upload_image(&self, media: &OutboundMedia, token: &str) -> Result<String, SendError> {
        let (content_type, body) =
            media::multipart_body("image", &media.name, &media.media_type, &media.bytes);
        let url = http::join(&self.config.base_url, IMAGE_UPLOAD_PATH);
        let request = self
            .client
            .post(url)
            .header("access-token", token)
            .header("content-type", content_type)
            .body(body);
        let answer = http::read_json(request).await?;
        if let Some(error) = answer_error(&answer) {
            return Err(error);
        }
        answer
            .pointer("/data/image_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| SendError::BadResponse("upload answer has no image_id".to_owned()))
    }

    /// Uploads an image and sends it in the conversation `context` names.
    pub async fn send_image(
        &self,
        message: &OutboundMessage,
        media: &OutboundMedia,
        context: Option<&ReplyContext>,
    ) -> Result<SendReceipt, SendError> {
        if let Some(reason) = media::refusal(
            ChannelKind::Douyin,
            true,
            &media.media_type,
            media.bytes.len() as u64,
        ) {
            return Err(SendError::Rejected(reason.to_owned()));
        }
        // The text request carries the recipient and the conversation; check them before the upload.
        let caption = OutboundMessage {
            text: "image".to_owned(),
            ..message.clone()
        };
        let mut request = super::encode_text(&caption, context)
            .map_err(|error| SendError::Rejected(error.to_string()))?;
        let image_id = self
            .with_token(|token| async move { self.upload_image(media, &token).await })
            .await?;
        request.body["content"] = json!({ "msg_type": 2, "image": { "media_id": image_id } });
        self.send_request(&request).await
    }

    async fn post_once(
        &self,
        request: &EncodedRequest,
        token: &str,
    ) -> Result<SendReceipt, SendError> {
        let url = http::join(&self.config.base_url, &request.path);
        let builder = self.client.post(url).header("access-token", token);
        let answer = http::post_json(builder, &request.body).await?;
        if let Some(error) = answer_error(&answer) {
            return Err(error);
        }
        let msg_id = answer
            .get("data")
            .and_then(|data| data.get("msg_id"))
            .and_then(|id| match id {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            });
        Ok(SendReceipt {
            provider_message_id: msg_id,
        })
    }

    pub async fn send_text(
        &self,
        message: &OutboundMessage,
        context: Option<&ReplyContext>,
    ) -> Result<SendReceipt, SendError> {
        let request = super::encode_text(message, context)
            .map_err(|error| SendError::Rejected(error.to_string()))?;
        self.send_request(&request).await
    }
}

impl ChannelSender for DouyinSender {
    fn send<'a>(
        &'a self,
        message: &'a OutboundMessage,
        context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a> {
        Box::pin(self.send_text(message, context))
    }

    fn send_media<'a>(
        &'a self,
        message: &'a OutboundMessage,
        media: &'a OutboundMedia,
        context: Option<&'a ReplyContext>,
    ) -> SendFuture<'a> {
        Box::pin(self.send_image(message, media, context))
    }
}

/// The error in a Douyin answer: `err_no` (newer APIs), or `data.error_code` / `extra.error_code`.
fn answer_error(answer: &Value) -> Option<SendError> {
    let candidates = [
        (answer.get("err_no"), answer.get("err_msg")),
        (
            answer.pointer("/data/error_code"),
            answer.pointer("/data/description"),
        ),
        (
            answer.pointer("/extra/error_code"),
            answer.pointer("/extra/description"),
        ),
    ];
    for (code, message) in candidates {
        let code = code.and_then(Value::as_i64).unwrap_or(0);
        if code != 0 {
            let message = message.and_then(Value::as_str).unwrap_or_default();
            return Some(classify_error(code, message));
        }
    }
    None
}

/// Maps a Douyin error code to a send error.
pub fn classify_error(code: i64, message: &str) -> SendError {
    SendError::Provider {
        code,
        message: message.to_owned(),
        retryable: BUSY.contains(&code),
    }
}
