//! The one place provider HTTP calls are made and their transport failures classified.

use std::time::Duration;

use serde_json::Value;

use crate::adapter::SendError;

/// How long one provider call may take before it counts as a network failure.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    // Building a client only fails when the TLS backend cannot start; fall back to the default
    // client rather than panic (it has no timeout, the outbox still bounds each attempt).
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// Joins a configured base URL (with or without a trailing slash) and a path.
pub(crate) fn join(base_url: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

pub(crate) async fn post_json(
    request: reqwest::RequestBuilder,
    body: &Value,
) -> Result<Value, SendError> {
    let body = serde_json::to_vec(body).map_err(|error| SendError::Rejected(error.to_string()))?;
    let request = request
        .header("content-type", "application/json")
        .body(body);
    read_json(request).await
}

pub(crate) async fn read_json(request: reqwest::RequestBuilder) -> Result<Value, SendError> {
    let response = request
        .send()
        .await
        .map_err(|error| SendError::Network(transport_error(&error)))?;
    let status = response.status();
    if status.as_u16() == 429 {
        return Err(SendError::RateLimited("http 429".to_owned()));
    }
    if status.is_server_error() {
        return Err(SendError::Unavailable {
            status: status.as_u16(),
        });
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|error| SendError::Network(transport_error(&error)))?;
    if !status.is_success() {
        return Err(SendError::Provider {
            code: i64::from(status.as_u16()),
            message: format!(
                "http {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
            ),
            retryable: false,
        });
    }
    serde_json::from_slice(&bytes).map_err(|error| SendError::BadResponse(error.to_string()))
}

/// Describes a transport failure without its URL: the URL carries access tokens in its query.
pub(crate) fn transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
