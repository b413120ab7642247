//! Large request bodies (knowledge-base imports, training files, policies, word lists, models)
//! are read only after the caller is authenticated: a handler takes the unread [`Body`] and
//! calls [`read_upload`] once `auth::require` has passed. Reading is bounded in size and time,
//! and a node reads at most [`UPLOADS_AT_ONCE`] such bodies at once, so anonymous or slow
//! uploads cannot hold the node's memory.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, Bytes};

use crate::error::{ApiResult, ServiceError};
use crate::AppState;

/// Large bodies read at once on one node; more are refused with `busy` (retry later).
pub const UPLOADS_AT_ONCE: usize = 4;
/// A body must arrive within this time.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A slot for one large upload, held while it is read and processed.
pub type UploadPermit = tokio::sync::OwnedSemaphorePermit;

/// Takes an upload slot, or refuses when the node is reading as many as it may.
pub fn upload_slot(state: &AppState) -> ApiResult<UploadPermit> {
    state.uploads.clone().try_acquire_owned().map_err(|_| {
        ServiceError::unavailable("busy", "too many uploads at once; retry in a moment").into()
    })
}

/// Reads an authenticated caller's body: at most `limit` bytes, within [`UPLOAD_TIMEOUT`].
pub async fn read_upload(
    state: &AppState,
    body: Body,
    limit: usize,
) -> ApiResult<(UploadPermit, Bytes)> {
    let permit = upload_slot(state)?;
    let bytes = read_limited(body, limit, UPLOAD_TIMEOUT).await?;
    Ok((permit, bytes))
}

/// `read`, or `upload_timeout` when it does not end within `timeout` ([`UPLOAD_TIMEOUT`] for
/// a request): the time limit of [`read_upload`], for uploads read otherwise (a multipart
/// form's parts). The caller holds an [`upload_slot`] while it reads.
pub(crate) async fn within<T, E: From<ServiceError>>(
    timeout: Duration,
    read: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            Err(ServiceError::invalid(
                "upload_timeout",
                format!("the body did not arrive within {} s", timeout.as_secs()),
            )
            .into())
        })
}

async fn read_limited(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ServiceError> {
    within(timeout, async move {
        axum::body::to_bytes(body, limit).await.map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                ServiceError::TooLarge(format!("the body is larger than {} bytes", limit))
            } else {
                ServiceError::invalid("bad_body", error.to_string())
            }
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large_and_a_slow_one_times_out() {
        let big = Body::from(vec![b'x'; 2048]);
        let error = read_limited(big, 1024, Duration::from_secs(5))
            .await
            .expect_err("over the limit");
        assert_eq!(error.code(), "too_large");
        let fits = read_limited(Body::from("hello"), 1024, Duration::from_secs(5))
            .await
            .expect("fits");
        assert_eq!(&fits[..], b"hello");
        // A body that never ends.
        let (_sender, never) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stream = tokio_stream::wrappers::ReceiverStream::new(never);
        let error = read_limited(Body::from_stream(stream), 1024, Duration::from_millis(50))
            .await
            .expect_err("times out");
        assert_eq!(error.code(), "upload_timeout");
    }
}
