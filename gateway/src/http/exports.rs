//! `GET exports/conversations`: a tenant's conversations with their messages and events as CSV,
//! JSON Lines or XLSX, one row per conversation or per message, filtered like the reports, and
//! streamed as the response body (the export runs on its own task and hands over its output
//! through a bounded channel: see `engine::export`).
//!
//! Exports carry transcripts, so they belong to the roles that read conversations as they happen
//! (area `live`: admins and supervisors), not to every reader of the reports. Each one is an
//! audit entry (`http::audit`), and a tenant runs at most [`EXPORTS_PER_TENANT`] at once on one
//! node (429 `rate_limited` past it). An export that fails half-way ends the response without
//! its last chunk, so a client sees a broken transfer, never a short file that looks whole.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::error::ApiResult;
use crate::http::auth::{require, Area};
use crate::http::record;
use crate::AppState;
use engine::export::{self, ExportQuery, ExportRequest};

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type QueryParams = Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>;

/// Exports one tenant may run at once on one node.
pub const EXPORTS_PER_TENANT: usize = 2;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/tenants/{tenant}/exports/conversations",
        get(conversations),
    )
}

async fn conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Query(query) = query?;
    let settings = state.chat.tenant_settings(&tenant).await;
    let request = ExportRequest::parse(
        &tenant,
        &query,
        store::util::now_ms(),
        settings.utc_offset_minutes,
    )?;
    let slot = state
        .connections
        .open(&format!("export {tenant}"), EXPORTS_PER_TENANT)?;
    record::note(json!({ "export": request.describe() }));
    let file_name = request.file_name();
    let content_type = request.format.content_type();
    let receiver = export::spawn(state.store.clone(), request);
    // The slot goes with the body: it is given back when the response ends or is dropped.
    let body = tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |chunk| {
        let _slot = &slot;
        chunk.map(Bytes::from)
    });
    let disposition = format!("attachment; filename=\"{file_name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::try_from(disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
