//! One error type for the HTTP surface, with a stable machine-readable code per variant.
//! Responses are `{"code": "...", "message": "..."}`; internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("these credentials cannot do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// Over a rate limit: nothing was accepted; retry after the given time.
    #[error("too many requests; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// A part of the service is not available now (models not loaded, a queue full).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid { code, .. } | ApiError::Unavailable { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Internal(_) => "internal",
        }
    }

    /// When a refused request may be retried (rate limits only).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::NotFound(what) => ApiError::NotFound(what),
            crate::store::StoreError::Conflict(message) => ApiError::Conflict(message),
            crate::store::StoreError::Invalid(message) => ApiError::invalid("bad_query", message),
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        let retry_after_ms = self.retry_after_ms();
        if let Some(ms) = retry_after_ms {
            body["retry_after_ms"] = ms.into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(ms) = retry_after_ms {
            // Whole seconds, rounded up: the header has no finer unit.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(ms.div_ceil(1000).max(1)),
            );
        }
        response
    }
}

// Axum's own extractor rejections (bad JSON, bad query, bad path) answered in our shape.

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::invalid("bad_json", rejection.body_text().to_lowercase())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::invalid("bad_query", rejection.body_text().to_lowercase())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        ApiError::invalid("bad_path", rejection.body_text().to_lowercase())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
