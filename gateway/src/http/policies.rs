//! Policies that enterprises upload: WASM routing and quality components (versions, rollback)
//! and sensitive-word lists with a dry-run check.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, Area};
use crate::http::record;
use crate::http::upload::read_upload;
use crate::AppState;
use engine::policy::parse_kind;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Components over this are refused by the engine anyway; this bounds the request body.
const MAX_COMPONENT_BYTES: usize = 8 * 1024 * 1024;
/// A plain-text word list (65k Chinese words are about 600 KB).
const MAX_WORD_LIST_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/policies/{kind}",
            get(versions).put(upload),
        )
        .route(
            "/v1/tenants/{tenant}/policies/{kind}/activate",
            post(activate),
        )
        .route(
            "/v1/tenants/{tenant}/policies/routing/dry-run",
            post(routing_dry_run),
        )
        .route(
            "/v1/tenants/{tenant}/policies/sensitive-words",
            get(word_lists),
        )
        .route(
            "/v1/tenants/{tenant}/policies/sensitive-words/check",
            post(check),
        )
        .route(
            "/v1/tenants/{tenant}/policies/sensitive-words/{list}",
            get(word_list).put(put_word_list).delete(delete_word_list),
        )
}

/// The active routing (policy or built-in, with business hours) on a sample conversation.
async fn routing_dry_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<engine::chat::handoff::RoutingSample>,
) -> ApiResult<Json<engine::chat::handoff::RoutingDryRun>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Policies).await?;
    let Json(sample) = body?;
    Ok(Json(state.chat.routing_dry_run(&tenant, sample).await?))
}

async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path((tenant, kind)) = path?;
    let caller = require(&state, &headers, &tenant, Area::Policies).await?;
    let kind = parse_kind(&kind)?;
    let (_slot, body) = read_upload(&state, body, MAX_COMPONENT_BYTES).await?;
    let version = state
        .chat
        .policies
        .upload(&tenant, kind, body.to_vec(), &caller.name())
        .await?;
    record::note(serde_json::json!({ "after": { "version": version } }));
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "kind": kind.as_str(), "version": version, "active": true })),
    ))
}

async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, kind)) = path?;
    require(&state, &headers, &tenant, Area::Policies).await?;
    let kind = parse_kind(&kind)?;
    let versions = state.chat.policies.versions(&tenant, kind).await?;
    Ok(Json(
        serde_json::json!({ "kind": kind.as_str(), "versions": versions }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Activate {
    version: i64,
}

async fn activate(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<Activate>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, kind)) = path?;
    require(&state, &headers, &tenant, Area::Policies).await?;
    let kind = parse_kind(&kind)?;
    let Json(body) = body?;
    let before = state
        .chat
        .policies
        .versions(&tenant, kind)
        .await?
        .into_iter()
        .find(|version| version.active)
        .map(|version| version.version);
    state
        .chat
        .policies
        .activate(&tenant, kind, body.version)
        .await?;
    record::note(
        serde_json::json!({ "before": { "version": before }, "after": { "version": body.version } }),
    );
    Ok(Json(
        serde_json::json!({ "kind": kind.as_str(), "version": body.version, "active": true }),
    ))
}

async fn word_lists(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::SensitiveWords).await?;
    let lists = state.chat.policies.word_lists(&tenant).await?;
    let lists: Vec<serde_json::Value> = lists
        .iter()
        .map(|list| {
            serde_json::json!({
                "name": list.name, "action": list.action, "updated_at": list.updated_at,
                "words": list.words.lines().count(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "lists": lists })))
}

/// One list with its words, for editing.
async fn word_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, name)) = path?;
    require(&state, &headers, &tenant, Area::SensitiveWords).await?;
    let list = state
        .chat
        .policies
        .word_lists(&tenant)
        .await?
        .into_iter()
        .find(|list| list.name == name)
        .ok_or(ServiceError::NotFound("word list"))?;
    Ok(Json(serde_json::json!({
        "name": list.name, "action": list.action, "updated_at": list.updated_at,
        "words": list.words.lines().collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WordListBody {
    action: String,
    words: Vec<String>,
}

/// JSON `{"action","words":[...]}`, or plain text (one word a line) with `?action=`.
async fn put_word_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    query: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, list)) = path?;
    require(&state, &headers, &tenant, Area::SensitiveWords).await?;
    let axum::extract::Query(query) = query?;
    let (_slot, body) = read_upload(&state, body, MAX_WORD_LIST_BYTES).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let (action, words) = if is_json {
        let body: WordListBody = serde_json::from_slice(&body)
            .map_err(|error| ServiceError::invalid("bad_json", error.to_string()))?;
        (body.action, body.words)
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ServiceError::invalid("bad_word_list", "the list is not UTF-8 text"))?;
        let action = query.get("action").cloned().ok_or_else(|| {
            ServiceError::invalid(
                "bad_word_list",
                "a plain-text list needs ?action=block|mask|flag|handoff",
            )
        })?;
        (
            action,
            switchboard_policies::sensitive::plain_text_words(text),
        )
    };
    Ok(Json(
        state
            .chat
            .policies
            .put_word_list(&tenant, &list, &action, words)
            .await?,
    ))
}

async fn delete_word_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    let Path((tenant, list)) = path?;
    require(&state, &headers, &tenant, Area::SensitiveWords).await?;
    state.chat.policies.delete_word_list(&tenant, &list).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    text: String,
}

async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<CheckBody>,
) -> ApiResult<Json<switchboard_policies::sensitive::Verdict>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::SensitiveWords).await?;
    let Json(body) = body?;
    if body.text.len() > switchboard_channels::web::MAX_TEXT_BYTES {
        return Err(ServiceError::invalid("too_large", "text is too long").into());
    }
    Ok(Json(state.chat.policies.check(&tenant, &body.text).await))
}
