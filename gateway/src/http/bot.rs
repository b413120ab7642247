//! The bot's API for knowledge managers and tenant admins: intents (train, classify, bring your
//! own model) and the bot's dry run.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, require_reader, Area};
use crate::http::upload::{read_upload, upload_slot, within, UPLOAD_TIMEOUT};
use crate::AppState;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// A training file: up to 100k examples fit (a file is refused at its first example or label
/// over `switchboard_models::MAX_EXAMPLES` / `MAX_LABELS`, while it is parsed).
const MAX_TRAINING_BYTES: usize = 32 * 1024 * 1024;
/// A tenant's own classifier with its tokenizer.
const MAX_MODEL_BYTES: usize = 256 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/intents/train", post(train))
        .route("/v1/tenants/{tenant}/intents/classify", post(classify))
        .route(
            "/v1/tenants/{tenant}/intents/model",
            get(get_model)
                .put(put_model)
                .delete(delete_model)
                .layer(DefaultBodyLimit::max(MAX_MODEL_BYTES)),
        )
        .route("/v1/tenants/{tenant}/bot/ask", post(ask))
        .route(
            "/v1/tenants/{tenant}/bot/llm",
            get(get_llm).put(put_llm).delete(delete_llm),
        )
        .route("/v1/tenants/{tenant}/bot/selfcheck", get(self_check))
}

#[derive(Deserialize)]
struct FileQuery {
    /// `jsonl` or `csv`; otherwise guessed from the content.
    format: Option<String>,
}

async fn train(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path(tenant) = path?;
    let caller = require(&state, &headers, &tenant, Area::Bot).await?;
    let Query(query) = query?;
    let (slot, body) = read_upload(&state, body, MAX_TRAINING_BYTES).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ServiceError::invalid("bad_training_file", "the file is not UTF-8 text"))?;
    let name = query
        .format
        .map(|format| format!("upload.{format}"))
        .or_else(|| {
            let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
            content_type
                .contains("csv")
                .then(|| "upload.csv".to_owned())
        });
    // A bad file is refused at once, line by line; training itself runs as a job that keeps
    // the upload slot until it ends.
    let examples = engine::intents::parse_training(text, name.as_deref())?;
    let count = examples.len();
    let chat = state.chat.clone();
    let trainee = tenant.clone();
    let job = engine::jobs::start(
        &state.store,
        &tenant,
        "intents_train",
        &caller.name(),
        move |progress| async move {
            let _slot = slot;
            progress.report(serde_json::json!({ "phase": "training", "examples": count }));
            let outcome = chat.intents.train(&trainee, examples).await?;
            serde_json::to_value(outcome)
                .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))
        },
    )
    .await?;
    crate::http::record::note(serde_json::json!({ "job": job.id, "examples": count }));
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job": job })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    text: String,
}

fn checked_text(text: &str) -> ApiResult<&str> {
    if text.trim().is_empty() {
        return Err(ServiceError::invalid("empty_text", "text is empty").into());
    }
    if text.len() > switchboard_channels::web::MAX_TEXT_BYTES {
        return Err(ServiceError::invalid("too_large", "text is too long").into());
    }
    Ok(text)
}

async fn classify(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<TextBody>,
) -> ApiResult<Json<engine::intents::Classified>> {
    let Path(tenant) = path?;
    require_reader(&state, &headers, &tenant, Area::Bot).await?;
    let Json(body) = body?;
    let text = checked_text(&body.text)?;
    Ok(Json(state.chat.intents.classify(&tenant, text).await?))
}

async fn get_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    Ok(Json(match state.store.intent_model(&tenant).await? {
        Some(record) => serde_json::json!({
            "kind": record.kind, "report": record.report, "updated_at": record.updated_at,
        }),
        None => serde_json::json!({ "kind": "builtin" }),
    }))
}

/// Bring your own model: a multipart form with `model` (ONNX), `tokenizer` (tokenizer.json)
/// and `labels` (JSON array or one label a line).
async fn put_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    let _slot = upload_slot(&state)?;
    let multipart = multipart
        .map_err(|error| ServiceError::invalid("bad_upload", error.body_text().to_lowercase()))?;
    let (model, tokenizer, labels) = read_model_form(multipart, UPLOAD_TIMEOUT).await?;
    let report = state
        .chat
        .intents
        .upload_onnx(&tenant, model, tokenizer, labels)
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// The parts of a model upload: `model`, `tokenizer`, `labels`, all arrived within `timeout`
/// ([`UPLOAD_TIMEOUT`], as every upload body) or `upload_timeout`.
async fn read_model_form(
    mut multipart: Multipart,
    timeout: Duration,
) -> ApiResult<(Vec<u8>, Vec<u8>, String)> {
    within(timeout, async move {
        let (mut model, mut tokenizer, mut labels) = (None, None, None);
        while let Some(field) = multipart.next_field().await.map_err(|error| {
            ServiceError::invalid("bad_upload", error.body_text().to_lowercase())
        })? {
            let name = field.name().unwrap_or_default().to_owned();
            let bytes = field.bytes().await.map_err(|error| {
                ServiceError::invalid("bad_upload", error.body_text().to_lowercase())
            })?;
            match name.as_str() {
                "model" => model = Some(bytes.to_vec()),
                "tokenizer" => tokenizer = Some(bytes.to_vec()),
                "labels" => {
                    labels = Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                        ServiceError::invalid("bad_labels", "the label list is not UTF-8 text")
                    })?)
                }
                other => {
                    return Err(ServiceError::invalid(
                        "bad_upload",
                        format!("unexpected part `{other}`: send model, tokenizer and labels"),
                    )
                    .into())
                }
            }
        }
        match (model, tokenizer, labels) {
            (Some(model), Some(tokenizer), Some(labels)) => Ok((model, tokenizer, labels)),
            _ => Err(ServiceError::invalid(
                "bad_upload",
                "send three parts: model (onnx), tokenizer (tokenizer.json) and labels",
            )
            .into()),
        }
    })
    .await
}

async fn delete_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<StatusCode> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    state.chat.intents.reset(&tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The dry run: the live decision path, nothing stored.
async fn ask(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<TextBody>,
) -> ApiResult<Json<switchboard_bot::Decision>> {
    let Path(tenant) = path?;
    require_reader(&state, &headers, &tenant, Area::Knowledge).await?;
    let Json(body) = body?;
    let text = checked_text(&body.text)?;
    let flagged = state.chat.policies.check(&tenant, text).await.action
        == switchboard_policies::sensitive::Action::Handoff;
    Ok(Json(state.chat.decide(&tenant, text, 0, flagged).await?))
}

/// How many of the tenant's own questions and alternates the bot answers right, wrong or not
/// at all at its current settings (each held out against the rest), with generic out-of-scope
/// questions: what the operator console shows after a knowledge-base change (to knowledge
/// managers and admins; one check per tenant at a time).
async fn self_check(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<switchboard_bot::SelfCheckReport>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Knowledge).await?;
    Ok(Json(state.chat.bot_self_check(&tenant).await?))
}

/// The tenant's own LLM endpoint as the API shows it: never the key, only whether one is set.
fn llm_view(llm: &store::TenantLlm) -> serde_json::Value {
    serde_json::json!({
        "base_url": llm.base_url, "model": llm.model, "timeout_ms": llm.timeout_ms,
        "api_key_set": !llm.api_key.is_empty(), "updated_at": llm.updated_at,
    })
}

async fn get_llm(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    let llm = state.store.tenant_llm(&tenant).await?;
    Ok(Json(serde_json::json!({
        "llm": llm.as_ref().map(llm_view),
        // Without one of its own, the tenant's bot uses the node's endpoint, if any.
        "node_llm": state.settings.llm.is_some(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmBody {
    base_url: String,
    model: String,
    /// Left out: the stored key stays; `""`: no key.
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    timeout_ms: Option<i64>,
}

async fn put_llm(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<LlmBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    let Json(body) = body?;
    let bad = |message: &str| ServiceError::invalid("bad_llm", message.to_owned());
    let base_url = body.base_url.trim();
    // The bot calls this address with customers' questions and shows what it answers: the same
    // rules as every URL a tenant gives (https, a public address unless the node allows others).
    if base_url.len() > 2048
        || switchboard_channels::outbound_guard::check_url(
            base_url,
            state.outbound.settings().push_policy(),
        )
        .is_err()
    {
        return Err(
            bad("base_url must be an https URL of a public host (at most 2048 bytes)").into(),
        );
    }
    let model = body.model.trim();
    if model.is_empty() || model.len() > 200 || model.chars().any(char::is_control) {
        return Err(bad("model is 1 to 200 characters").into());
    }
    if body.api_key.as_ref().is_some_and(|key| key.len() > 4096) {
        return Err(bad("api_key is at most 4096 bytes").into());
    }
    let timeout_ms = body.timeout_ms.unwrap_or(3_000);
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(bad("timeout_ms is 100 to 60000").into());
    }
    // The stored key goes only to the address it was given for: whoever moves the endpoint
    // gives its key (or "" for none), so no one can point the bot, and the key, at their host.
    if body.api_key.is_none() {
        let stored = state.store.tenant_llm(&tenant).await?;
        if stored.is_some_and(|llm| !llm.api_key.is_empty() && llm.base_url != base_url) {
            return Err(ServiceError::invalid(
                "api_key_required",
                "the endpoint changed: give its api_key (\"\" for none); the stored key is kept only for the same base_url",
            )
            .into());
        }
    }
    let llm = state
        .store
        .set_tenant_llm(
            &tenant,
            base_url,
            model,
            body.api_key.as_deref(),
            timeout_ms,
        )
        .await?;
    state.chat.llms.forget(&tenant);
    crate::http::record::note(serde_json::json!({ "after": {
        "base_url": llm.base_url, "model": llm.model, "timeout_ms": llm.timeout_ms,
        "api_key_changed": body.api_key.is_some(),
    }}));
    Ok(Json(serde_json::json!({ "llm": llm_view(&llm) })))
}

async fn delete_llm(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<StatusCode> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Bot).await?;
    state.store.delete_tenant_llm(&tenant).await?;
    state.chat.llms.forget(&tenant);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use axum::extract::{FromRequest, Request};

    use super::*;

    type Sender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

    /// A multipart request whose body is `start`, then ends (or, while the returned sender is
    /// held, never does).
    async fn form(start: &'static str, ends: bool) -> (Multipart, Option<Sender>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender.send(Ok(Bytes::from(start))).await.expect("send");
        let sender = (!ends).then_some(sender);
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let request = Request::builder()
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=X")
            .body(body)
            .expect("request");
        let form = Multipart::from_request(request, &())
            .await
            .expect("multipart");
        (form, sender)
    }

    const PARTS: &str = "--X\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nm\r\n\
        --X\r\ncontent-disposition: form-data; name=\"tokenizer\"\r\n\r\nt\r\n\
        --X\r\ncontent-disposition: form-data; name=\"labels\"\r\n\r\na\nb\r\n--X--\r\n";

    /// A model upload whose body stops arriving ends with `upload_timeout`, as the other upload
    /// routes (before, it held its upload slot for as long as the peer kept the connection).
    #[tokio::test]
    async fn a_stalled_model_upload_times_out() {
        let (whole, _) = form(PARTS, true).await;
        let (model, tokenizer, labels) = read_model_form(whole, UPLOAD_TIMEOUT)
            .await
            .expect("a whole form");
        assert_eq!(
            (&model[..], &tokenizer[..], &labels[..]),
            (&b"m"[..], &b"t"[..], "a\nb")
        );

        let stalled = "--X\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nmod";
        let (stalled, _open) = form(stalled, false).await;
        let read = read_model_form(stalled, Duration::from_millis(50));
        let error = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the read ends on its own")
            .expect_err("times out");
        assert_eq!(error.0.code(), "upload_timeout");
        assert_eq!(crate::error::status_of(&error.0), StatusCode::BAD_REQUEST);
    }
}
