//! Small request bodies (the widget's JSON, webhook pushes) must arrive in time. Anyone may call
//! these routes, and axum reads a body for as long as the caller takes to send it: a script that
//! sent part of a body and stalled held its connection, a task and the bytes it had sent for good.
//! Here such a body is read whole, within `body_timeout_ms` and axum's 2 MB, before the route.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{HttpError, ServiceError};
use crate::AppState;

/// The most a small body may hold (axum's own default limit, which these routes had).
const SMALL_BODY_BYTES: usize = 2 << 20;

/// A route layer: reads the body within the node's `body_timeout_ms`, then runs the route on it.
pub async fn in_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > SMALL_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    let wait = std::time::Duration::from_millis(state.settings.body_timeout_ms);
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(wait, axum::body::to_bytes(body, SMALL_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        // Over the limit without a length declared, or the caller went away.
        Ok(Err(_)) => too_large().into_response(),
        Err(_) => HttpError(ServiceError::invalid(
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms",
                state.settings.body_timeout_ms
            ),
        ))
        .into_response(),
    }
}

fn too_large() -> HttpError {
    HttpError(ServiceError::TooLarge(format!(
        "the request body is over {SMALL_BODY_BYTES} bytes"
    )))
}
