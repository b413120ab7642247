//! The one map from the engine's [`ServiceError`] to an HTTP answer: a status per variant and
//! `{"code": "...", "message": "..."}` (plus `retry_after_ms` and `Retry-After` when rate
//! limited). Internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use engine::ServiceError;

/// A [`ServiceError`] on its way out as an HTTP answer. Handlers return [`ApiResult`] and use
/// `?` on engine and store results.
#[derive(Debug)]
pub struct HttpError(pub ServiceError);

pub type ApiResult<T> = Result<T, HttpError>;

/// The HTTP status of each error.
pub fn status_of(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::BadRequest(_) | ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
        ServiceError::Unauthorized | ServiceError::Unauthenticated { .. } => {
            StatusCode::UNAUTHORIZED
        }
        ServiceError::Forbidden | ServiceError::Denied { .. } => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Internal(_) | ServiceError::Misconfigured(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// What converts into a [`ServiceError`] converts into an [`HttpError`] (for `?`).
macro_rules! via_service_error {
    ($($from:ty),*) => {$(
        impl From<$from> for HttpError {
            fn from(error: $from) -> Self {
                HttpError(error.into())
            }
        }
    )*};
}

via_service_error!(ServiceError, store::StoreError, anyhow::Error);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let error = self.0;
        if let ServiceError::Internal(cause) = &error {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut body = serde_json::json!({ "code": error.code(), "message": error.to_string() });
        let retry_after_ms = error.retry_after_ms();
        if let Some(ms) = retry_after_ms {
            body["retry_after_ms"] = ms.into();
        }
        let mut response = (status_of(&error), Json(body)).into_response();
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

/// Axum's own extractor rejections (bad JSON, bad query, bad path), answered in our shape.
macro_rules! rejection {
    ($($rejection:ident => $code:literal),*) => {$(
        impl From<axum::extract::rejection::$rejection> for HttpError {
            fn from(rejection: axum::extract::rejection::$rejection) -> Self {
                HttpError(ServiceError::invalid($code, rejection.body_text().to_lowercase()))
            }
        }
    )*};
}

rejection!(JsonRejection => "bad_json", QueryRejection => "bad_query", PathRejection => "bad_path");
