//! Background jobs a console watches: `GET jobs/{id}` (progress, result or error) and the
//! newest jobs of a kind.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, Area};
use crate::AppState;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/jobs", get(list))
        .route("/v1/tenants/{tenant}/jobs/{id}", get(one))
}

/// The area whose members see a kind of job.
fn area_of(kind: &str) -> Area {
    match kind {
        "kb_import" => Area::Knowledge,
        _ => Area::Bot,
    }
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    // Authenticate before looking anything up; then the job's kind names the area.
    crate::http::auth::authenticate(&state, &headers, &tenant).await?;
    let job = state
        .store
        .job(&tenant, &id)
        .await?
        .ok_or(ServiceError::NotFound("job"))?;
    require(&state, &headers, &tenant, area_of(&job.kind)).await?;
    Ok(Json(json!({ "job": job })))
}

#[derive(Deserialize)]
struct ListQuery {
    kind: String,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    let Query(query) = query?;
    require(&state, &headers, &tenant, area_of(&query.kind)).await?;
    let jobs = state
        .store
        .jobs(&tenant, &query.kind, query.limit.unwrap_or(10))
        .await?;
    Ok(Json(json!({ "jobs": jobs })))
}
