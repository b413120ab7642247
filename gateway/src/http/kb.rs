//! The knowledge base API for knowledge managers: import, CRUD, export, search, synonyms.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use switchboard_knowledge::{write_csv, write_jsonl, FaqRecord, ImportFormat};

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, require_reader, Area};
use crate::http::record;
use crate::http::upload::read_upload;
use crate::AppState;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type QueryParams<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The largest file one import takes (100,000 FAQs fit comfortably).
const MAX_IMPORT_BYTES: usize = 128 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/kb/import", post(import))
        .route("/v1/tenants/{tenant}/kb/faqs", get(list))
        .route(
            "/v1/tenants/{tenant}/kb/faqs/{id}",
            get(get_one).put(put_one).delete(delete_one),
        )
        .route("/v1/tenants/{tenant}/kb/export", get(export))
        .route("/v1/tenants/{tenant}/kb/search", get(search))
        .route(
            "/v1/tenants/{tenant}/kb/synonyms",
            get(get_synonyms).put(put_synonyms),
        )
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
    /// Import as a background job (`202 {"job"}`, progress at `GET jobs/{id}`).
    #[serde(default)]
    background: bool,
}

/// The declared format: `?format=`, else the content type; `None` lets the content decide.
fn declared_format(
    query: &FormatQuery,
    headers: &HeaderMap,
) -> Result<Option<ImportFormat>, ServiceError> {
    let named = query.format.clone().or_else(|| {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|value| {
                !matches!(
                    value.as_str(),
                    "" | "application/octet-stream" | "text/plain"
                )
            })
    });
    named
        .map(|name| {
            ImportFormat::from_name(&name)
                .map_err(|error| ServiceError::invalid("bad_format", error.to_string()))
        })
        .transpose()
}

async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams<FormatQuery>,
    body: Body,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    let caller = require(&state, &headers, &tenant, Area::Knowledge).await?;
    let Query(query) = query?;
    let format = declared_format(&query, &headers)?;
    let (slot, body) = read_upload(&state, body, MAX_IMPORT_BYTES).await?;
    if !query.background {
        let report = state
            .knowledge
            .import(&tenant, body.to_vec(), format, &|_, _| {})
            .await?;
        record::note(json!({ "counts": report.counts }));
        return Ok(Json(report).into_response());
    }
    let knowledge = state.knowledge.clone();
    let importer = tenant.clone();
    let job = engine::jobs::start(
        &state.store,
        &tenant,
        "kb_import",
        &caller.name(),
        move |progress| async move {
            let _slot = slot;
            progress.report(json!({ "phase": "parsing" }));
            let report = knowledge
                .import(&importer, body.to_vec(), format, &|done, total| {
                    progress.report(json!({ "phase": "indexing", "done": done, "total": total }));
                })
                .await?;
            serde_json::to_value(report)
                .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))
        },
    )
    .await?;
    record::note(json!({ "job": job.id }));
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: String,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require_reader(&state, &headers, &tenant, Area::Knowledge).await?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let faqs = state.store.list_faqs(&tenant, &query.after, limit).await?;
    let next = (faqs.len() as i64 == limit)
        .then(|| faqs.last().map(|f| f.id.clone()))
        .flatten();
    Ok(Json(serde_json::json!({ "faqs": faqs, "next": next })))
}

async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<FaqRecord>> {
    let Path((tenant, id)) = path?;
    require_reader(&state, &headers, &tenant, Area::Knowledge).await?;
    Ok(Json(
        state
            .store
            .faq(&tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound("faq"))?,
    ))
}

/// The record body of a PUT: the id comes from the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaqBody {
    question: String,
    answer: String,
    #[serde(default)]
    alternates: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    locale: String,
    #[serde(default = "enabled_default")]
    enabled: bool,
}

fn enabled_default() -> bool {
    true
}

async fn put_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: Result<Json<FaqBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<FaqRecord>)> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    let Json(body) = body?;
    let record = FaqRecord {
        id,
        question: body.question,
        answer: body.answer,
        alternates: body.alternates,
        tags: body.tags,
        locale: body.locale,
        enabled: body.enabled,
        updated_at_ms: 0,
    };
    let (stored, created) = state.knowledge.put(&tenant, record).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(stored),
    ))
}

async fn delete_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    state.knowledge.delete(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams<FormatQuery>,
) -> ApiResult<impl IntoResponse> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    let Query(query) = query?;
    let format = match query.format.as_deref() {
        None => ImportFormat::Jsonl,
        Some(name) => ImportFormat::from_name(name)
            .map_err(|error| ServiceError::invalid("bad_format", error.to_string()))?,
    };
    let (records, _) = state.store.all_faqs(&tenant).await?;
    let mut out = Vec::new();
    let (written, content_type, extension) = match format {
        ImportFormat::Jsonl => (
            write_jsonl(&mut out, &records),
            "application/x-ndjson",
            "jsonl",
        ),
        ImportFormat::Csv => (
            write_csv(&mut out, &records),
            "text/csv; charset=utf-8",
            "csv",
        ),
        ImportFormat::Xlsx => {
            return Err(ServiceError::invalid("bad_format", "export is jsonl or csv").into())
        }
    };
    written.map_err(|error| ServiceError::Internal(error.into()))?;
    let disposition = format!("attachment; filename=\"{tenant}-faqs.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    k: Option<usize>,
    /// `lexical` (the default: tantivy only, nothing when no word matches) or `hybrid` (the
    /// bot's ranking: lexical and dense candidates with a calibrated confidence).
    mode: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: QueryParams<SearchQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require_reader(&state, &headers, &tenant, Area::Knowledge).await?;
    let Query(query) = query?;
    match query.mode.as_deref() {
        None | Some("lexical") => {}
        Some("hybrid") => {
            let k = query.k.unwrap_or(5).clamp(1, 20);
            let hits = state.chat.bot_search(&tenant, &query.q, k).await?;
            let hits: Vec<_> = hits
                .into_iter()
                .map(|hit| {
                    serde_json::json!({
                        "id": hit.id, "question": hit.question, "answer": hit.answer,
                        "score": hit.score, "cosine": hit.cosine,
                        "lexical_rank": hit.lexical_rank, "confidence": hit.confidence,
                    })
                })
                .collect();
            return Ok(Json(serde_json::Value::Array(hits)));
        }
        Some(_) => {
            return Err(ServiceError::invalid("bad_query", "mode is lexical or hybrid").into())
        }
    }
    let hits = state
        .knowledge
        .search(&tenant, &query.q, query.k.unwrap_or(5).clamp(1, 50))
        .await?;
    let hits: Vec<_> = hits
        .into_iter()
        .map(|hit| serde_json::json!({ "id": hit.id, "question": hit.question, "answer": hit.answer, "score": hit.score }))
        .collect();
    Ok(Json(serde_json::Value::Array(hits)))
}

async fn get_synonyms(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.store.kb_synonyms(&tenant).await?,
    ))
}

/// One group a line, members joined by `=` (`快递=物流=包裹`).
async fn put_synonyms(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    // Read only once the caller is known, at most 1 MiB.
    let (_slot, body) = read_upload(&state, body, 1024 * 1024).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ServiceError::invalid("bad_synonyms", "synonyms are UTF-8 text"))?;
    state.knowledge.set_synonyms(&tenant, text).await?;
    Ok(StatusCode::NO_CONTENT)
}
