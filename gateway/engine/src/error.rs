//! The engine's one error type, with a stable machine-readable code per variant (the shape of
//! quickwit's `ServiceError`). The edge maps it to an HTTP status in one place; the CLI prints it
//! with its cause.

use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Credentials refused for a reason the caller can act on (an expired or replayed token, a
    /// bad signature).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    #[error("these credentials cannot do that")]
    Forbidden,
    /// Authenticated, but refused for a reason with its own code (a role without the right, a
    /// missing CSRF token, a disabled member).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    /// A request body over its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Over a rate limit: nothing was accepted; retry after the given time.
    #[error("too many requests; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// A part of the service is not available now (models not loaded, a queue full).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// A fault of ours or of a dependency; its cause is logged, never shown to a caller.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
    /// A tenant's stored configuration cannot be used (the tenant must fix it).
    #[error("{0}")]
    Misconfigured(String),
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    /// An anonymous visitor, while the tenant requires identified visitors.
    pub fn identity_required() -> Self {
        Self::unauthenticated(
            "identity_required",
            "this site identifies its visitors: open the session with user_id and user_hash",
        )
    }

    pub fn denied(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Denied {
            code,
            message: message.into(),
        }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Unavailable {
            code,
            message: message.into(),
        }
    }

    /// The stable code callers match on.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::Invalid { code, .. }
            | ServiceError::Unavailable { code, .. }
            | ServiceError::Denied { code, .. }
            | ServiceError::Unauthenticated { code, .. } => code,
            ServiceError::Misconfigured(_) => "bad_config",
            ServiceError::TooLarge(_) => "too_large",
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::Unauthorized => "unauthorized",
            ServiceError::Forbidden => "forbidden",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::Internal(_) => "internal",
        }
    }

    /// When a refused request may be retried (rate limits only).
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ServiceError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// The error for a person at a terminal: the message, and for an internal error its cause.
    pub fn describe(&self) -> String {
        match self {
            ServiceError::Internal(cause) => format!("internal error: {cause:#}"),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ServiceError::NotFound(what),
            StoreError::Conflict(message) => ServiceError::Conflict(message),
            StoreError::Invalid(message) => ServiceError::invalid("bad_query", message),
            other if other.is_unstorable_text() => {
                ServiceError::invalid("bad_text", "text may not contain NUL characters (U+0000)")
            }
            other => ServiceError::Internal(anyhow::Error::new(other)),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Runs CPU-bound or blocking work (models, policy calls, index builds) on tokio's blocking
/// pool; `what` names it in the error if the task panicked.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> ServiceResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServiceError::Internal(anyhow::anyhow!("{what} task failed: {error}")))
}
