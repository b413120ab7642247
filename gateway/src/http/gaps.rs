//! The knowledge-gap loop for knowledge managers: the groups of questions the bot could not
//! answer (largest first), dismissing and restoring a group, and a draft FAQ from a group
//! (published through the FAQ routes of `http::kb`).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use switchboard_knowledge::FaqRecord;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, Area};
use crate::http::record;
use crate::AppState;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type QueryParams<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/kb/gaps", get(list))
        .route(
            "/v1/tenants/{tenant}/kb/gaps/{group}/dismiss",
            post(dismiss),
        )
        .route(
            "/v1/tenants/{tenant}/kb/gaps/{group}/restore",
            post(restore),
        )
        .route("/v1/tenants/{tenant}/kb/gaps/{group}/draft", post(draft))
}

#[derive(Deserialize)]
struct ListQuery {
    /// Dismissed groups too.
    #[serde(default)]
    dismissed: bool,
    limit: Option<usize>,
}

/// Groups the questions kept since the last call (bounded work), then lists the groups.
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    let Query(query) = query?;
    // Without the encoder (no ONNX Runtime) the groups made so far are still listed.
    let (refreshed, refresh_error) = match engine::gaps::refresh(&state.store, &tenant).await {
        Ok(refreshed) => (Some(refreshed), None),
        Err(ServiceError::Unavailable { code, message }) => {
            tracing::warn!(tenant, code, message, "knowledge gaps not regrouped");
            (None, Some(code))
        }
        Err(error) => return Err(error.into()),
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let groups = engine::gaps::groups(&state.store, &tenant, query.dismissed, limit).await?;
    Ok(Json(json!({
        "groups": groups,
        "refreshed": refreshed,
        "refresh_error": refresh_error,
    })))
}

async fn set_dismissed(
    state: &AppState,
    headers: &HeaderMap,
    path: PathParams<(String, String)>,
    dismissed: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, group)) = path?;
    require(state, headers, &tenant, Area::Knowledge).await?;
    state
        .store
        .set_gap_group_dismissed(&tenant, &group, dismissed)
        .await?;
    record::note(json!({ "group": group, "dismissed": dismissed }));
    Ok(Json(json!({ "id": group, "dismissed": dismissed })))
}

async fn dismiss(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    set_dismissed(&state, &headers, path, true).await
}

async fn restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    set_dismissed(&state, &headers, path, false).await
}

/// The draft FAQ of a group (not saved: `PUT kb/faqs/{id}` publishes it).
async fn draft(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<FaqRecord>> {
    let Path((tenant, group)) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    let faq = engine::gaps::draft(&state.store, &tenant, &group).await?;
    record::note(json!({ "group": group, "faq_id": faq.id }));
    Ok(Json(faq))
}
